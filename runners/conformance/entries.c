/* entries.c: the table's clock, sleep, yield, thread-locals and resource
 * counts, which sim implements on its own (virtual time, fibers). */
#include "conformance.h"

#include <stdatomic.h>
#include <string.h>

/* ---- now_ns never goes back; sleep_ns(d) sleeps at least d ---- */

static uint64_t clock_seen_by_worker;

static void clock_read(void *arg) { clock_seen_by_worker = R->now_ns(); }

static void test_clock_and_sleep(void)
{
    uint64_t prev = R->now_ns();
    EXPECT_GT(prev, 0);
    for (int i = 0; i < 100000; i++) {
        uint64_t now = R->now_ns();
        if (!EXPECT_GE(now, prev))
            break;
        prev = now;
    }
    worker w;                   /* another thread's reading, then ours: still in order */
    worker_start(&w, clock_read, NULL);
    worker_join(&w);
    EXPECT_GE(R->now_ns(), clock_seen_by_worker);

    static const uint64_t pauses_ns[] = { 0, 1000, 100000, 1000000, 20000000 };
    for (size_t i = 0; i < sizeof pauses_ns / sizeof *pauses_ns; i++) {
        uint64_t t0 = R->now_ns();
        R->sleep_ns(pauses_ns[i]);
        uint64_t slept = R->now_ns() - t0;
        EXPECT_GE(slept, pauses_ns[i]);
        EXPECT_LT(slept, pauses_ns[i] + scaled_ns(1000)); /* a sanity bound, not a speed test */
    }
}

/* ---- yield returns, and a thread that spins on it lets another run ---- */

static atomic_bool yield_flag;

static void yield_setter(void *arg) { atomic_store(&yield_flag, true); }

static void test_yield(void)
{
    for (int i = 0; i < 1000; i++)
        R->yield();
    atomic_store(&yield_flag, false);
    worker w;
    worker_start(&w, yield_setter, NULL);
    /* On sim the setter runs only because this spin yields; the spin is
     * bounded by count too, as a virtual clock need not move while it spins. */
    uint64_t deadline = deadline_in(5000);
    for (long i = 0; !atomic_load(&yield_flag) && i < 10000000 && R->now_ns() < deadline; i++)
        R->yield();
    EXPECT_TRUE(atomic_load(&yield_flag));
    worker_join(&w);
}

/* ---- thread_locals: zeroed for a new thread, its own, stable ---- */

enum { LOCALS_THREADS = 2 };
static struct {
    latch wrote;                /* both threads filled their block */
    void *block[LOCALS_THREADS + 1];
    bool zeroed[LOCALS_THREADS + 1], kept[LOCALS_THREADS + 1], stable[LOCALS_THREADS + 1];
} tl;

static bool all_bytes(const unsigned char *p, unsigned char v)
{
    for (size_t i = 0; i < AR_THREAD_LOCALS_BYTES; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* Thread i checks its block is zero, fills it with its own byte, waits for
 * the others to fill theirs, then checks its own is intact. */
static void locals_thread(void *arg)
{
    int i = (int)(intptr_t)arg;
    unsigned char *p = R->thread_locals();
    tl.block[i] = p;
    tl.zeroed[i] = all_bytes(p, 0);
    memset(p, 0xA0 + i, AR_THREAD_LOCALS_BYTES);
    if (i < LOCALS_THREADS) {
        latch_add(&tl.wrote);
        latch_wait(&tl.wrote, LOCALS_THREADS, deadline_in(5000));
    }
    tl.stable[i] = R->thread_locals() == p;
    tl.kept[i] = all_bytes(p, (unsigned char)(0xA0 + i));
}

static void test_thread_locals(void)
{
    memset(&tl, 0, sizeof tl);
    void *mine = R->thread_locals();
    REQUIRE(EXPECT_TRUE(mine != NULL));
    EXPECT_TRUE(R->thread_locals() == mine);
    latch_init(&tl.wrote);
    worker w[LOCALS_THREADS];
    for (intptr_t i = 0; i < LOCALS_THREADS; i++)
        worker_start(&w[i], locals_thread, (void *)i);
    for (int i = 0; i < LOCALS_THREADS; i++)
        worker_join(&w[i]);
    worker later;               /* after the others ended: zeroed again, whatever it reuses */
    worker_start(&later, locals_thread, (void *)(intptr_t)LOCALS_THREADS);
    worker_join(&later);
    latch_destroy(&tl.wrote);
    for (int i = 0; i <= LOCALS_THREADS; i++) {
        EXPECT_TRUE(tl.block[i] != NULL && tl.block[i] != mine);
        EXPECT_TRUE(tl.zeroed[i]);
        EXPECT_TRUE(tl.stable[i]);
        EXPECT_TRUE(tl.kept[i]);
    }
    EXPECT_TRUE(tl.block[0] != tl.block[1]);
out:;
}

/* ---- resources: each count moves exactly as things are made and freed ---- */

static ar_resources snapshot(void)
{
    ar_resources r;
    R->resources(&r);
    return r;
}

/* Every count of got equals want's; descriptors too unless want says -1. */
#define EXPECT_RESOURCES(step, want) expect_resources(__FILE__, __LINE__, step, want)
static void expect_resources(const char *file, int line, const char *step, ar_resources want)
{
    ar_resources got = snapshot();
    const long w[] = { want.loops, want.tcp, want.timers, want.threads, want.mutexes, want.conds,
                       got.descriptors >= 0 ? want.descriptors : -1 };
    const long g[] = { got.loops, got.tcp, got.timers, got.threads, got.mutexes, got.conds,
                       got.descriptors };
    static const char *const names[] = { "loops", "tcp", "timers", "threads", "mutexes", "conds",
                                         "descriptors" };
    for (size_t i = 0; i < sizeof w / sizeof *w; i++)
        if (w[i] != g[i] && !(i == 6 && w[i] < 0)) {
            conf_fail(file, line, "after %s: %s is %ld, expected %ld", step, names[i], g[i], w[i]);
            return;
        }
}

static struct {
    loop_thread lt;
    tcp_pair pair;
    ar_resources before_run;
    int closed;
} res;

static void res_nothing(void *arg) {}

static void res_closed(void *arg)
{
    if (++res.closed == 3)
        R->loop_stop(res.lt.loop);
}

static void res_close_all(void *arg)
{
    R->tcp_close(res.pair.server, res_closed, NULL);
    R->tcp_close(res.pair.client, res_closed, NULL);
    R->tcp_close(res.pair.listener, res_closed, NULL);
}

static void res_ready(tcp_pair *p)
{
    R->timer_start(res.lt.loop, 1, res_close_all, NULL); /* fired and freed within the run */
    ar_resources now = snapshot();  /* the accepted stream is the one new handle */
    EXPECT_EQ(now.tcp, res.before_run.tcp + 1);
    EXPECT_EQ(now.timers, res.before_run.timers + 1);
    EXPECT_EQ(now.threads, res.before_run.threads + 1);
    if (now.descriptors >= 0)
        EXPECT_EQ(now.descriptors, res.before_run.descriptors + 1);
}

static void test_resources(void)
{
    memset(&res, 0, sizeof res);
    ar_resources base = snapshot(), want = base;
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
    want.loops++;
    want.descriptors = -1;      /* a loop's own descriptors are its business */
    EXPECT_RESOURCES("loop_new", want);

    want = snapshot();
    ar_mutex *m = R->mutex_new();
    want.mutexes++;
    EXPECT_RESOURCES("mutex_new", want);
    ar_cond *c = R->cond_new();
    want.conds++;
    EXPECT_RESOURCES("cond_new", want);
    R->cond_free(c);
    want.conds--;
    EXPECT_RESOURCES("cond_free", want);
    R->mutex_free(m);
    want.mutexes--;
    EXPECT_RESOURCES("mutex_free", want);

    worker w;                   /* a worker is a thread plus its latch's mutex and cond */
    worker_start(&w, res_nothing, NULL);
    want.threads++, want.mutexes++, want.conds++;
    EXPECT_RESOURCES("thread_start", want);
    worker_join(&w);
    want.threads--, want.mutexes--, want.conds--;
    EXPECT_RESOURCES("thread_join", want);

    R->timer_start(loop, 60000, res_nothing, NULL); /* still pending at loop_free */
    want.timers++;
    EXPECT_RESOURCES("timer_start", want);
    if (tcp_pair_start(&res.pair, loop, res_ready)) {
        want.tcp += 2;          /* the listener, and the connecting stream */
        want.descriptors = -1;  /* 2 sockets, and libuv opens a spare at a loop's first listen */
        EXPECT_RESOURCES("tcp_listen and tcp_connect", want);
        res.before_run = want = snapshot();
        lt_start(&res.lt, loop);
        lt_join(&res.lt);       /* the third close callback stops the loop */
        want.tcp -= 2;          /* all three closed and freed by the time run returns */
        want.descriptors -= 2;
        EXPECT_RESOURCES("the run that closed every handle", want);
    }
    R->loop_free(loop);
    want = base;
    EXPECT_RESOURCES("loop_free", want);
out:;
}

const conf_test conf_entry_tests[] = {
    { "clock_and_sleep", test_clock_and_sleep },
    { "yield", test_yield },
    { "thread_locals", test_thread_locals },
    { "resources", test_resources },
    { NULL, NULL },
};
