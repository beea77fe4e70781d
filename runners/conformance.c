/* conformance.c: the contract of runner.h, as one program run per runner.
 *
 *   build/tools/conformance --runner NAME [--test NAME] [--list] [--list-runners]
 *
 * Prints "ok <test> <ms>ms" or "FAIL <test>: file:line: `expr` (values)" per
 * test, then "conformance <runner>: N passed, M failed"; exits 0 only when all
 * passed, 2 on bad arguments. Every wait is bounded (cond_wait_until with a
 * deadline), so a broken runner fails a test instead of hanging; a loop_run
 * that never returns ends the program with a FAIL line, as its thread cannot
 * be joined. Deadlines stretch by ASYNCRACE_TIMEOUT_MULTIPLIER (valgrind).
 * Nothing is faked: real loops, real threads, real loopback sockets.
 */
#include "runner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const ar_runner *R;
static double time_scale = 1.0;
static const char *current_test;
static int passed, failed;

/* ---- failures: the first one of a test is kept, from any thread ---- */

static pthread_mutex_t failure_lock = PTHREAD_MUTEX_INITIALIZER;
static bool failure_seen;
static char failure_text[512];

static void record_failure(const char *file, int line, const char *fmt, ...)
{
    pthread_mutex_lock(&failure_lock);
    if (!failure_seen) {
        failure_seen = true;
        int n = snprintf(failure_text, sizeof failure_text, "%s:%d: ", file, line);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(failure_text + n, sizeof failure_text - (size_t)n, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&failure_lock);
}

typedef enum { EQ, NE, LT, LE, GT, GE } cmp_op;
static const char *const cmp_text[] = { "==", "!=", "<", "<=", ">", ">=" };

static bool expect_cmp(const char *file, int line, const char *ea, cmp_op op, const char *eb,
                       long long a, long long b)
{
    bool ok = op == EQ ? a == b : op == NE ? a != b : op == LT ? a < b
            : op == LE ? a <= b : op == GT ? a > b : a >= b;
    if (!ok)
        record_failure(file, line, "`%s %s %s` (%lld %s %lld)", ea, cmp_text[op], eb, a,
                       cmp_text[op], b);
    return ok;
}

static bool expect_true(const char *file, int line, const char *expr, bool value)
{
    if (!value)
        record_failure(file, line, "`%s` (false)", expr);
    return value;
}

static bool expect_streq(const char *file, int line, const char *ea, const char *eb,
                         const char *a, const char *b)
{
    bool ok = strcmp(a, b) == 0;
    if (!ok)
        record_failure(file, line, "`%s == %s` (\"%s\" == \"%s\")", ea, eb, a, b);
    return ok;
}

#define EXPECT_CMP(a, op, b) \
    expect_cmp(__FILE__, __LINE__, #a, op, #b, (long long)(a), (long long)(b))
#define EXPECT_EQ(a, b) EXPECT_CMP(a, EQ, b)
#define EXPECT_NE(a, b) EXPECT_CMP(a, NE, b)
#define EXPECT_LT(a, b) EXPECT_CMP(a, LT, b)
#define EXPECT_LE(a, b) EXPECT_CMP(a, LE, b)
#define EXPECT_GT(a, b) EXPECT_CMP(a, GT, b)
#define EXPECT_GE(a, b) EXPECT_CMP(a, GE, b)
#define EXPECT_TRUE(c) expect_true(__FILE__, __LINE__, #c, (c))
#define EXPECT_STREQ(a, b) expect_streq(__FILE__, __LINE__, #a, #b, (a), (b))
#define REQUIRE(expectation) do { if (!(expectation)) goto out; } while (0)
#define FATAL(what) fatal(__FILE__, __LINE__, what)

static _Noreturn void fatal(const char *file, int line, const char *what)
{
    record_failure(file, line, "%s", what);
    printf("FAIL %s: %s\n", current_test, failure_text);
    printf("conformance %s: %d passed, %d failed\n", R->name, passed, failed + 1);
    fflush(stdout);
    _exit(1);                   /* a stuck loop thread cannot be joined or freed */
}

/* ---- time, descriptors ---- */

static uint64_t scaled_ns(uint64_t ms) { return (uint64_t)((double)ms * 1e6 * time_scale); }
static uint64_t deadline_in(uint64_t ms) { return R->now_ns() + scaled_ns(ms); }
static long long ms_since(uint64_t t0) { return (long long)((R->now_ns() - t0) / 1000000u); }

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        FATAL("opendir(/proc/self/fd) failed");
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static long sockets_in_time_wait(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    long tw = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "TCP: inuse %*d orphan %*d tw %ld", &tw) == 1)
            break;
    if (f)
        fclose(f);
    return tw;
}

/* tcp_listen, with the reason in the failure: port 0 finds no free port when
 * other programs leave the ephemeral range full of TIME_WAIT sockets. */
#define LISTEN(loop, backlog, fn, arg, port) listen_at(__FILE__, __LINE__, loop, backlog, fn, arg, port)
static ar_tcp *listen_at(const char *file, int line, ar_loop *loop, int backlog,
                         ar_accept_fn fn, void *arg, uint16_t *port)
{
    ar_tcp *l = R->tcp_listen(loop, backlog, fn, arg, port);
    if (!l)
        record_failure(file, line, "tcp_listen on 127.0.0.1:0 returned NULL: %s "
                       "(%ld sockets in TIME_WAIT)", strerror(errno), sockets_in_time_wait());
    else
        expect_cmp(file, line, "*port", NE, "0", *port, 0);
    return l;
}

/* ---- latches and loop threads, on the runner's own mutex and cond ---- */

typedef struct {
    ar_mutex *m;
    ar_cond *c;
    long count;
} latch;

static void latch_init(latch *l)
{
    l->m = R->mutex_new();
    l->c = R->cond_new();
    l->count = 0;
    if (!l->m || !l->c)
        FATAL("mutex_new or cond_new returned NULL");
}

static void latch_destroy(latch *l)
{
    R->cond_free(l->c);
    R->mutex_free(l->m);
}

static void latch_add(latch *l)
{
    R->mutex_lock(l->m);
    l->count++;
    R->cond_broadcast(l->c);
    R->mutex_unlock(l->m);
}

static long latch_count(latch *l)
{
    R->mutex_lock(l->m);
    long n = l->count;
    R->mutex_unlock(l->m);
    return n;
}

static bool latch_wait(latch *l, long target, uint64_t deadline_ns)
{
    R->mutex_lock(l->m);
    while (l->count < target && R->now_ns() < deadline_ns)
        R->cond_wait_until(l->c, l->m, deadline_ns);
    bool reached = l->count >= target;
    R->mutex_unlock(l->m);
    return reached;
}

typedef struct {
    ar_loop *loop;
    ar_thread *thread;
    pthread_t tid;              /* written by the loop thread before loop_run */
    latch started, returned;
} loop_thread;

static void loop_thread_main(void *arg)
{
    loop_thread *lt = arg;
    lt->tid = pthread_self();
    latch_add(&lt->started);
    R->loop_run(lt->loop);
    latch_add(&lt->returned);
}

static void lt_start(loop_thread *lt, ar_loop *loop)
{
    lt->loop = loop;
    latch_init(&lt->started);
    latch_init(&lt->returned);
    lt->thread = R->thread_start(loop_thread_main, lt);
    if (!lt->thread)
        FATAL("thread_start returned NULL");
    if (!latch_wait(&lt->started, 1, deadline_in(5000)))
        FATAL("a loop thread did not start within 5 s");
}

static void lt_join(loop_thread *lt)
{
    if (!latch_wait(&lt->returned, 1, deadline_in(5000)))
        FATAL("loop_run did not return within 5 s of loop_stop");
    R->thread_join(lt->thread);
    latch_destroy(&lt->started);
    latch_destroy(&lt->returned);
}

static void lt_stop_join(loop_thread *lt)
{
    R->loop_stop(lt->loop);
    lt_join(lt);
}

static bool on_thread(const loop_thread *lt) { return pthread_equal(pthread_self(), lt->tid); }

/* A helper thread whose join is bounded: it signals a latch as it ends. */
typedef struct {
    ar_thread *thread;
    ar_thread_fn fn;
    void *arg;
    latch finished;
} worker;

static void worker_main(void *p)
{
    worker *w = p;
    w->fn(w->arg);
    latch_add(&w->finished);
}

static void worker_start(worker *w, ar_thread_fn fn, void *arg)
{
    w->fn = fn;
    w->arg = arg;
    latch_init(&w->finished);
    w->thread = R->thread_start(worker_main, w);
    if (!w->thread)
        FATAL("thread_start returned NULL");
}

static void worker_join(worker *w)
{
    if (!latch_wait(&w->finished, 1, deadline_in(10000)))
        FATAL("a helper thread did not finish within 10 s");
    R->thread_join(w->thread);
    latch_destroy(&w->finished);
}

/* ---- 1. posts run in FIFO order on the loop's thread ---- */

enum { FIFO_FIRST = 500, FIFO_TOTAL = 1000 };
static struct {
    loop_thread lt;
    int seq[FIFO_TOTAL];
    int next, cancelled;
    latch done;
} fifo;

static void fifo_cb(void *arg, bool cancelled)
{
    int seq = *(int *)arg;
    if (cancelled) {
        fifo.cancelled++;
        return;
    }
    EXPECT_TRUE(on_thread(&fifo.lt));
    EXPECT_EQ(seq, fifo.next);
    fifo.next = seq + 1;
    if (seq < FIFO_FIRST)       /* a post from inside a callback joins the end of the queue */
        R->post(fifo.lt.loop, fifo_cb, &fifo.seq[seq + FIFO_FIRST]);
    if (fifo.next == FIFO_TOTAL)
        latch_add(&fifo.done);
}

static void test_posts_fifo_on_loop_thread(void)
{
    memset(&fifo, 0, sizeof fifo);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    latch_init(&fifo.done);
    for (int i = 0; i < FIFO_TOTAL; i++)
        fifo.seq[i] = i;
    fifo.lt.loop = loop;
    for (int i = 0; i < FIFO_FIRST; i++)
        R->post(loop, fifo_cb, &fifo.seq[i]);
    lt_start(&fifo.lt, loop);
    EXPECT_TRUE(latch_wait(&fifo.done, 1, deadline_in(10000)));
    lt_stop_join(&fifo.lt);
    R->loop_free(loop);
    EXPECT_EQ(fifo.next, FIFO_TOTAL);
    EXPECT_EQ(fifo.cancelled, 0);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&fifo.done);
out:;
}

/* ---- 2. posts from other threads arrive exactly once, in order per thread ---- */

enum { PRODUCERS = 4, PER_PRODUCER = 10000, SEQ_BITS = 20 };
static struct {
    loop_thread lt;
    latch go, done;
    long next[PRODUCERS];
    long total, cancelled;
} cross;

static void cross_cb(void *arg, bool cancelled)
{
    uintptr_t v = (uintptr_t)arg;
    long producer = (long)(v >> SEQ_BITS), seq = (long)(v & ((1u << SEQ_BITS) - 1));
    if (cancelled) {
        cross.cancelled++;
        return;
    }
    EXPECT_TRUE(on_thread(&cross.lt));
    if (!EXPECT_LT(producer, PRODUCERS))
        return;
    EXPECT_EQ(seq, cross.next[producer]);
    cross.next[producer] = seq + 1;
    if (++cross.total == PRODUCERS * PER_PRODUCER)
        latch_add(&cross.done);
}

static void cross_producer(void *arg)
{
    uintptr_t producer = (uintptr_t)arg;
    if (!latch_wait(&cross.go, 1, deadline_in(10000)))
        return;
    for (uintptr_t seq = 0; seq < PER_PRODUCER; seq++)
        R->post(cross.lt.loop, cross_cb, (void *)(producer << SEQ_BITS | seq));
}

static void test_cross_thread_posts(void)
{
    memset(&cross, 0, sizeof cross);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    latch_init(&cross.go);
    latch_init(&cross.done);
    lt_start(&cross.lt, loop);
    worker producers[PRODUCERS];
    for (uintptr_t p = 0; p < PRODUCERS; p++)
        worker_start(&producers[p], cross_producer, (void *)p);
    latch_add(&cross.go);
    EXPECT_TRUE(latch_wait(&cross.done, 1, deadline_in(30000)));
    for (int p = 0; p < PRODUCERS; p++)
        worker_join(&producers[p]);
    lt_stop_join(&cross.lt);
    R->loop_free(loop);
    EXPECT_EQ(cross.total, PRODUCERS * PER_PRODUCER);
    for (int p = 0; p < PRODUCERS; p++)
        EXPECT_EQ(cross.next[p], PER_PRODUCER);
    EXPECT_EQ(cross.cancelled, 0);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&cross.go);
    latch_destroy(&cross.done);
out:;
}

/* ---- 3. stops: from another thread while idle, and before run ---- */

static struct {
    loop_thread lt;
    int ran, cancelled;
    latch ran_latch;
} stopper;

static void stop_probe_cb(void *arg, bool cancelled)
{
    if (cancelled) {
        stopper.cancelled++;
        return;
    }
    EXPECT_TRUE(on_thread(&stopper.lt));
    stopper.ran++;
    latch_add(&stopper.ran_latch);
}

static void test_stop_from_other_thread(void)
{
    memset(&stopper, 0, sizeof stopper);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    latch_init(&stopper.ran_latch);
    /* A stop made before run: the run returns at once, running nothing. */
    R->post(loop, stop_probe_cb, NULL);
    R->loop_stop(loop);
    lt_start(&stopper.lt, loop);
    lt_join(&stopper.lt);
    EXPECT_EQ(latch_count(&stopper.ran_latch), 0);
    /* That stop was consumed: the next run takes the post, then idles until stopped. */
    lt_start(&stopper.lt, loop);
    EXPECT_TRUE(latch_wait(&stopper.ran_latch, 1, deadline_in(5000)));
    sleep_ms(20);               /* let it block in its poll */
    uint64_t t0 = R->now_ns();
    R->loop_stop(loop);
    EXPECT_TRUE(latch_wait(&stopper.lt.returned, 1, deadline_in(2000)));
    EXPECT_LT(ms_since(t0), (long long)(1000 * time_scale));
    lt_join(&stopper.lt);
    R->loop_free(loop);
    EXPECT_EQ(stopper.ran, 1);
    EXPECT_EQ(stopper.cancelled, 0);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&stopper.ran_latch);
out:;
}

/* ---- 4. posts left at a stop are cancelled by loop_free, exactly once ---- */

enum { BATCH = 1000, RACE_PRODUCERS = 4, RACE_PER = 5000, RACE_TOTAL = RACE_PRODUCERS * RACE_PER };
static struct {
    loop_thread lt;
    pthread_t main_tid;
    int runs[RACE_TOTAL], cancels[RACE_TOTAL];
    bool cancel_off_main;
    long ran_total;
    latch some_ran;
} pend;

static void pend_item_cb(void *arg, bool cancelled)
{
    intptr_t id = (intptr_t)arg;
    if (cancelled) {
        pend.cancels[id]++;
        pend.cancel_off_main |= !pthread_equal(pthread_self(), pend.main_tid);
        return;
    }
    pend.runs[id]++;
    if (++pend.ran_total == BATCH)
        latch_add(&pend.some_ran);
}

/* A timer stops the loop between posts: the stop comes before this turn's
 * post snapshot, so neither half may run. */
static void pend_stopper(void *arg)
{
    for (intptr_t i = 0; i < BATCH; i++) {
        if (i == BATCH / 2)
            R->loop_stop(pend.lt.loop);
        R->post(pend.lt.loop, pend_item_cb, (void *)i);
    }
}

static long sum(const int *v, int n)
{
    long s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s;
}

static void expect_each_once(int n)
{
    for (int i = 0; i < n; i++)
        if (!EXPECT_EQ(pend.runs[i] + pend.cancels[i], 1))
            break;
}

static void pend_producer(void *arg)
{
    intptr_t first = (intptr_t)arg;
    for (intptr_t i = first; i < first + RACE_PER; i++)
        R->post(pend.lt.loop, pend_item_cb, (void *)i);
}

static void stop_with_posts_in_flight(void)
{
    memset(pend.runs, 0, sizeof pend.runs);
    memset(pend.cancels, 0, sizeof pend.cancels);
    pend.ran_total = 0;
    pend.some_ran.count = 0;    /* no other thread is running */
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    lt_start(&pend.lt, loop);
    worker producers[RACE_PRODUCERS];
    for (intptr_t p = 0; p < RACE_PRODUCERS; p++)
        worker_start(&producers[p], pend_producer, (void *)(p * RACE_PER));
    EXPECT_TRUE(latch_wait(&pend.some_ran, 1, deadline_in(10000)));
    lt_stop_join(&pend.lt);     /* producers may still be posting: allowed after a stop */
    for (int p = 0; p < RACE_PRODUCERS; p++)
        worker_join(&producers[p]);
    R->loop_free(loop);
    expect_each_once(RACE_TOTAL);
    EXPECT_EQ(sum(pend.runs, RACE_TOTAL) + sum(pend.cancels, RACE_TOTAL), RACE_TOTAL);
out:;
}

static void test_stop_with_pending_posts_frees(void)
{
    memset(&pend, 0, sizeof pend);
    pend.main_tid = pthread_self();
    int fds = open_fds();
    latch_init(&pend.some_ran);
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    pend.lt.loop = loop;
    R->timer_start(loop, 1, pend_stopper, NULL);
    lt_start(&pend.lt, loop);
    lt_join(&pend.lt);          /* the timer stops it: nobody calls loop_stop here */
    for (intptr_t i = BATCH; i < 2 * BATCH; i++)
        R->post(loop, pend_item_cb, (void *)i);
    EXPECT_EQ(sum(pend.runs, 2 * BATCH), 0);
    R->loop_free(loop);
    expect_each_once(2 * BATCH);
    EXPECT_EQ(sum(pend.cancels, 2 * BATCH), 2 * BATCH);
    EXPECT_TRUE(!pend.cancel_off_main);
    sleep_ms(20);               /* nothing runs after loop_free */
    EXPECT_EQ(sum(pend.runs, 2 * BATCH) + sum(pend.cancels, 2 * BATCH), 2 * BATCH);
    stop_with_posts_in_flight();
    EXPECT_EQ(open_fds(), fds);
out:
    latch_destroy(&pend.some_ran);
}

/* ---- 5. a callback that re-posts itself does not starve timers or stop ---- */

static struct {
    loop_thread lt;
    long reposts;
    int cancelled;
    bool timer_fired;
} rep;

static void rep_timer(void *arg)
{
    rep.timer_fired = true;
    R->loop_stop(rep.lt.loop);
}

static void rep_cb(void *arg, bool cancelled)
{
    if (cancelled) {
        rep.cancelled++;
        return;
    }
    if (rep.reposts++ == 0)     /* armed once posts surely run: a late thread must not lose them */
        R->timer_start(rep.lt.loop, 20, rep_timer, NULL);
    R->post(rep.lt.loop, rep_cb, NULL);
}

static void test_self_repost_yields(void)
{
    memset(&rep, 0, sizeof rep);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    rep.lt.loop = loop;
    R->post(loop, rep_cb, NULL);
    lt_start(&rep.lt, loop);
    if (!latch_wait(&rep.lt.returned, 1, deadline_in(5000))) {
        record_failure(__FILE__, __LINE__, "a 20 ms timer did not stop the loop within 5 s: "
                       "re-posts starve the loop");
        R->loop_stop(loop);
    }
    lt_join(&rep.lt);
    EXPECT_TRUE(rep.timer_fired);
    EXPECT_GT(rep.reposts, 0);
    R->loop_free(loop);
    EXPECT_EQ(rep.cancelled, 1); /* the one re-post queued when the loop stopped */
    EXPECT_EQ(open_fds(), fds);
out:;
}

/* ---- 6. timers fire once, in deadline order; cancelled ones never ---- */

/* Started in the order D Z X C Y B A E (D first: deadlines print from it).
 * F is started by C's callback; X is cancelled by A's, Y before run; Z is
 * still pending at loop_free. */
enum { T_A, T_B, T_C, T_D, T_E, T_F, T_X, T_Y, T_Z, T_COUNT, T_FIRING = T_F + 1 };
static const char timer_names[] = "ABCDEFXYZ";
static const uint64_t timer_ms[T_COUNT] = { 0, 1, 5, 50, 100, 1, 10, 3, 10000 };
static struct {
    loop_thread lt;
    struct { ar_timer *handle; uint64_t started_ns, fired_ns; int fired; } t[T_COUNT];
    int order[T_COUNT];
    char names[T_COUNT + 1];
    int n_fired;
    latch done;
} tm;

static void timer_probe(void *arg);

static void start_probe(ar_loop *loop, int i)
{
    tm.t[i].started_ns = R->now_ns();
    tm.t[i].handle = R->timer_start(loop, timer_ms[i], timer_probe, (void *)(intptr_t)i);
}

static uint64_t probe_deadline_ns(int i) { return tm.t[i].started_ns + timer_ms[i] * 1000000u; }

static void timer_probe(void *arg)
{
    int i = (int)(intptr_t)arg;
    EXPECT_TRUE(on_thread(&tm.lt));
    tm.t[i].fired++;
    tm.t[i].fired_ns = R->now_ns();
    if (tm.n_fired < T_COUNT) {
        tm.names[tm.n_fired] = timer_names[i];
        tm.order[tm.n_fired++] = i;
    }
    if (i == T_A)
        R->timer_cancel(tm.t[T_X].handle); /* before it fired, on the loop thread */
    if (i == T_C)
        start_probe(tm.lt.loop, T_F);
    latch_add(&tm.done);
}

static void expect_timer(int i)
{
    long long ms = (long long)timer_ms[i];
    long long took_us = (long long)(tm.t[i].fired_ns - tm.t[i].started_ns) / 1000;
    EXPECT_EQ(tm.t[i].fired, 1);
    EXPECT_GE(took_us, (ms ? ms - 1 : 0) * 1000); /* libuv counts whole ms */
    EXPECT_LE(took_us, ms * 1000 + (long long)(scaled_ns(1000) / 1000));
}

static void test_timers(void)
{
    static const int start_order[] = { T_D, T_Z, T_X, T_C, T_Y, T_B, T_A, T_E };
    memset(&tm, 0, sizeof tm);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    latch_init(&tm.done);
    tm.lt.loop = loop;
    sleep_ms(30);               /* timers count from timer_start, not from loop_new */
    for (size_t k = 0; k < sizeof start_order / sizeof *start_order; k++)
        start_probe(loop, start_order[k]);
    R->timer_cancel(tm.t[T_Y].handle);
    lt_start(&tm.lt, loop);
    EXPECT_TRUE(latch_wait(&tm.done, T_FIRING, deadline_in(5000)));
    sleep_ms(20);               /* X's deadline has passed: it must still not fire */
    lt_stop_join(&tm.lt);
    R->loop_free(loop);         /* Z is still pending: dropped unfired */
    EXPECT_EQ(tm.n_fired, T_FIRING);
    for (int k = 1; k < tm.n_fired; k++) { /* deadline order, to libuv's whole ms */
        int a = tm.order[k - 1], b = tm.order[k];
        if (probe_deadline_ns(a) > probe_deadline_ns(b) + 1000000u) {
            record_failure(__FILE__, __LINE__, "fired as %s: %c (deadline +%lld us) before %c "
                           "(deadline +%lld us)", tm.names, timer_names[a],
                           (long long)(probe_deadline_ns(a) - tm.t[T_D].started_ns) / 1000,
                           timer_names[b],
                           (long long)(probe_deadline_ns(b) - tm.t[T_D].started_ns) / 1000);
            break;
        }
    }
    for (int i = T_A; i < T_FIRING; i++)
        expect_timer(i);
    for (int i = T_FIRING; i < T_COUNT; i++)
        EXPECT_EQ(tm.t[i].fired, 0);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&tm.done);
out:;
}

/* ---- 7, 8. 1 MiB echo over loopback, on one loop or two ---- */

#define ECHO_BYTES ((size_t)1 << 20)
static const size_t echo_chunks[] = { 1, 7, 1000, 4096, 65549, 3, 333, 16384, 100000, 2, 8191 };
static struct {
    loop_thread server_lt, client_lt;
    loop_thread *client_thread; /* &server_lt when both ends share a loop */
    ar_tcp *listener, *server, *client;
    size_t received, echoed;
    long client_writes, client_written, server_writes, server_written;
    uint8_t *source;
    latch closed;
} echo;

static uint8_t pattern_at(size_t i) { return (uint8_t)((i * 2654435761u) >> 11 ^ i); }

static void echo_closed(void *arg) { latch_add(&echo.closed); }

static void echo_server_wrote(void *arg, int status)
{
    EXPECT_EQ(status, 0);
    EXPECT_EQ((intptr_t)arg, echo.server_written);
    echo.server_written++;
}

static void echo_server_read(void *arg, const void *data, ssize_t n)
{
    EXPECT_TRUE(on_thread(&echo.server_lt));
    if (n > 0) {
        echo.echoed += (size_t)n;
        void *index = (void *)(intptr_t)echo.server_writes++;
        EXPECT_EQ(R->tcp_write(echo.server, data, (size_t)n, echo_server_wrote, index), 0);
        return;
    }
    EXPECT_EQ(n, 0);            /* EOF: the client closed after reading everything */
    R->tcp_close(echo.server, echo_closed, NULL);
}

static void echo_accepted(void *arg, ar_tcp *conn, int err)
{
    EXPECT_TRUE(on_thread(&echo.server_lt));
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL))
        return;
    echo.server = conn;
    EXPECT_EQ(R->tcp_read_start(conn, echo_server_read, NULL), 0);
    R->tcp_close(echo.listener, echo_closed, NULL);
}

static void echo_client_wrote(void *arg, int status)
{
    EXPECT_EQ(status, 0);
    EXPECT_EQ((intptr_t)arg, echo.client_written);
    echo.client_written++;
}

static void echo_client_read(void *arg, const void *data, ssize_t n)
{
    EXPECT_TRUE(on_thread(echo.client_thread));
    if (!EXPECT_GT(n, 0)) {     /* EOF or error before every byte came back */
        R->tcp_close(echo.client, echo_closed, NULL);
        return;
    }
    const uint8_t *bytes = data;
    for (size_t i = 0; i < (size_t)n; i++) {
        size_t at = echo.received + i;
        if (bytes[i] != pattern_at(at)) {
            record_failure(__FILE__, __LINE__, "echoed byte %zu: expected %u, got %u", at,
                           pattern_at(at), bytes[i]);
            break;
        }
    }
    echo.received += (size_t)n;
    EXPECT_LE(echo.received, ECHO_BYTES);
    if (echo.received == ECHO_BYTES)
        R->tcp_close(echo.client, echo_closed, NULL);
}

static void echo_connected(void *arg, ar_tcp *conn, int err)
{
    EXPECT_TRUE(on_thread(echo.client_thread));
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL))
        return;
    echo.client = conn;
    EXPECT_EQ(R->tcp_read_start(conn, echo_client_read, NULL), 0);
    size_t n_chunks = sizeof echo_chunks / sizeof *echo_chunks;
    for (size_t off = 0, i = 0; off < ECHO_BYTES; i++) {
        size_t len = echo_chunks[i % n_chunks];
        len = len < ECHO_BYTES - off ? len : ECHO_BYTES - off;
        EXPECT_EQ(R->tcp_write(conn, echo.source + off, len, echo_client_wrote, (void *)i), 0);
        echo.client_writes++;
        off += len;
    }
    memset(echo.source, 0, ECHO_BYTES); /* tcp_write copied: the wire must not see this */
}

static void run_echo(bool two_loops)
{
    memset(&echo, 0, sizeof echo);
    int fds = open_fds();
    echo.source = malloc(ECHO_BYTES);
    REQUIRE(EXPECT_TRUE(echo.source != NULL));
    for (size_t i = 0; i < ECHO_BYTES; i++)
        echo.source[i] = pattern_at(i);
    latch_init(&echo.closed);
    ar_loop *server_loop = R->loop_new();
    ar_loop *client_loop = two_loops ? R->loop_new() : server_loop;
    REQUIRE(EXPECT_TRUE(server_loop && client_loop));
    uint16_t port = 0;
    REQUIRE((echo.listener = LISTEN(server_loop, 16, echo_accepted, NULL, &port)));
    R->tcp_connect(client_loop, port, echo_connected, NULL);
    echo.client_thread = two_loops ? &echo.client_lt : &echo.server_lt;
    lt_start(&echo.server_lt, server_loop);
    if (two_loops)
        lt_start(&echo.client_lt, client_loop);
    EXPECT_TRUE(latch_wait(&echo.closed, 3, deadline_in(30000)));
    lt_stop_join(&echo.server_lt);
    if (two_loops)
        lt_stop_join(&echo.client_lt);
    R->loop_free(server_loop);
    if (two_loops)
        R->loop_free(client_loop);
    EXPECT_EQ(echo.received, ECHO_BYTES);
    EXPECT_EQ(echo.echoed, ECHO_BYTES);
    EXPECT_EQ(echo.client_written, echo.client_writes);
    EXPECT_EQ(echo.server_written, echo.server_writes);
    EXPECT_EQ(latch_count(&echo.closed), 3);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&echo.closed);
out:
    free(echo.source);
}

static void test_tcp_echo_1mib(void) { run_echo(false); }
static void test_tcp_echo_1mib_two_loops(void) { run_echo(true); }

/* ---- 9. connecting to a closed port reports -ECONNREFUSED, later ---- */

static struct {
    loop_thread lt;
    bool in_call, got_conn;
    int calls, err;
    latch done;
} refused;

static void never_accept(void *arg, ar_tcp *conn, int err)
{
    record_failure(__FILE__, __LINE__, "unexpected accept (err %d)", err);
    if (conn)
        R->tcp_close(conn, NULL, NULL);
}

static void refused_cb(void *arg, ar_tcp *conn, int err)
{
    EXPECT_TRUE(!refused.in_call);
    EXPECT_TRUE(on_thread(&refused.lt));
    refused.calls++;
    refused.err = err;
    refused.got_conn = conn != NULL;
    if (conn)
        R->tcp_close(conn, NULL, NULL);
    latch_add(&refused.done);
}

static void test_tcp_connect_refused(void)
{
    memset(&refused, 0, sizeof refused);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    latch_init(&refused.done);
    uint16_t port = 0;
    ar_tcp *listener = LISTEN(loop, 1, never_accept, NULL, &port);
    REQUIRE(listener);
    R->tcp_close(listener, NULL, NULL); /* closes the descriptor now: the port is free */
    refused.in_call = true;
    R->tcp_connect(loop, port, refused_cb, NULL);
    refused.in_call = false;
    lt_start(&refused.lt, loop);
    EXPECT_TRUE(latch_wait(&refused.done, 1, deadline_in(5000)));
    lt_stop_join(&refused.lt);
    R->loop_free(loop);
    EXPECT_EQ(refused.calls, 1);
    EXPECT_TRUE(!refused.got_conn);
    EXPECT_EQ(refused.err, -ECONNREFUSED);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&refused.done);
out:;
}

/* ---- 10. closing with writes queued: write callbacks, then close, then nothing ---- */

enum { BIG_WRITE = 8 << 20 }; /* over the 4 MiB wmem max plus the unread receive window */
static struct {
    loop_thread lt;
    ar_tcp *listener, *server;
    char events[8];             /* '1' big write, '2' small write, 'C' close, '.' 50 ms later */
    int n_events;
    int status[3];
    bool in_close;
    latch done;
} cancel;

static void cancel_log(char c)
{
    if (cancel.n_events < (int)sizeof cancel.events - 1)
        cancel.events[cancel.n_events++] = c;
}

static void cancel_wrote(void *arg, int status)
{
    int i = (int)(intptr_t)arg;
    EXPECT_TRUE(!cancel.in_close);
    cancel.status[i] = status;
    cancel_log((char)('0' + i));
}

static void cancel_closed(void *arg)
{
    EXPECT_TRUE(!cancel.in_close);
    cancel_log('C');
}

static void cancel_server_closed(void *arg) { latch_add(&cancel.done); }

static void cancel_after(void *arg)
{
    cancel_log('.');
    if (EXPECT_TRUE(cancel.server != NULL))
        R->tcp_close(cancel.server, cancel_server_closed, NULL);
    else
        latch_add(&cancel.done);
}

static void cancel_accepted(void *arg, ar_tcp *conn, int err)
{
    if (!EXPECT_EQ(err, 0))
        return;
    cancel.server = conn;       /* never reads: the big write cannot drain */
    R->tcp_close(cancel.listener, NULL, NULL);
}

static void cancel_connected(void *arg, ar_tcp *conn, int err)
{
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL)) {
        latch_add(&cancel.done);
        return;
    }
    char *big = malloc(BIG_WRITE);
    if (!EXPECT_TRUE(big != NULL))
        return;
    memset(big, 'x', BIG_WRITE);
    EXPECT_EQ(R->tcp_write(conn, big, BIG_WRITE, cancel_wrote, (void *)1), 0);
    EXPECT_EQ(R->tcp_write(conn, "tail", 4, cancel_wrote, (void *)2), 0);
    free(big);
    ar_resources before, after;
    R->resources(&before);
    cancel.in_close = true;
    R->tcp_close(conn, cancel_closed, NULL);
    cancel.in_close = false;
    R->resources(&after);
    if (before.descriptors >= 0)    /* the descriptor went at once (sim has none) */
        EXPECT_EQ(after.descriptors, before.descriptors - 1);
    R->timer_start(cancel.lt.loop, 50, cancel_after, NULL);
}

static void test_tcp_close_cancels_writes(void)
{
    memset(&cancel, 0, sizeof cancel);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    latch_init(&cancel.done);
    cancel.lt.loop = loop;
    uint16_t port = 0;
    REQUIRE((cancel.listener = LISTEN(loop, 4, cancel_accepted, NULL, &port)));
    R->tcp_connect(loop, port, cancel_connected, NULL);
    lt_start(&cancel.lt, loop);
    EXPECT_TRUE(latch_wait(&cancel.done, 1, deadline_in(10000)));
    lt_stop_join(&cancel.lt);
    R->loop_free(loop);
    EXPECT_STREQ(cancel.events, "12C.");
    for (int i = 1; i <= 2; i++)
        if (cancel.status[i] != 0)
            EXPECT_EQ(cancel.status[i], -ECANCELED);
    if (cancel.status[1] != 0)  /* in order: nothing after a cancelled write was sent */
        EXPECT_EQ(cancel.status[2], -ECANCELED);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&cancel.done);
out:;
}

/* ---- 11. an accepted stream reads nothing until read_start ---- */

static const char lazy_message[] = "bytes that wait in the kernel for read_start";
static struct {
    loop_thread lt;
    ar_tcp *listener, *server, *client;
    char got[sizeof lazy_message];
    size_t n_got;
    int write_status;
    latch done;
} lazy;

static void lazy_closed(void *arg) { latch_add(&lazy.done); }
static void lazy_wrote(void *arg, int status) { lazy.write_status = status; }

static void lazy_read(void *arg, const void *data, ssize_t n)
{
    if (!EXPECT_GT(n, 0) || !EXPECT_LE(lazy.n_got + (size_t)n, sizeof lazy_message - 1))
        return;
    memcpy(lazy.got + lazy.n_got, data, (size_t)n);
    lazy.n_got += (size_t)n;
    if (lazy.n_got == sizeof lazy_message - 1) {
        R->tcp_close(lazy.server, lazy_closed, NULL);
        R->tcp_close(lazy.client, lazy_closed, NULL);
    }
}

static void lazy_start_reading(void *arg)
{
    EXPECT_EQ(R->tcp_read_start(lazy.server, lazy_read, NULL), 0);
    EXPECT_EQ(R->tcp_read_start(lazy.server, lazy_read, NULL), -EALREADY);
}

static void lazy_accepted(void *arg, ar_tcp *conn, int err)
{
    if (!EXPECT_EQ(err, 0))
        return;
    lazy.server = conn;
    R->tcp_close(lazy.listener, NULL, NULL);
    R->timer_start(lazy.lt.loop, 30, lazy_start_reading, NULL);
}

static void lazy_connected(void *arg, ar_tcp *conn, int err)
{
    if (!EXPECT_EQ(err, 0))
        return;
    lazy.client = conn;
    EXPECT_EQ(R->tcp_write(conn, lazy_message, sizeof lazy_message - 1, lazy_wrote, NULL), 0);
}

static void test_tcp_accept_reads_only_after_read_start(void)
{
    memset(&lazy, 0, sizeof lazy);
    lazy.write_status = 1;
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    latch_init(&lazy.done);
    lazy.lt.loop = loop;
    uint16_t port = 0;
    REQUIRE((lazy.listener = LISTEN(loop, 4, lazy_accepted, NULL, &port)));
    EXPECT_EQ(R->tcp_read_start(lazy.listener, lazy_read, NULL), -ENOTCONN);
    EXPECT_EQ(R->tcp_write(lazy.listener, "x", 1, lazy_wrote, NULL), -ENOTCONN);
    R->tcp_connect(loop, port, lazy_connected, NULL);
    lt_start(&lazy.lt, loop);
    EXPECT_TRUE(latch_wait(&lazy.done, 2, deadline_in(5000)));
    lt_stop_join(&lazy.lt);
    R->loop_free(loop);
    EXPECT_EQ(lazy.write_status, 0);
    EXPECT_EQ(lazy.n_got, sizeof lazy_message - 1);
    EXPECT_EQ(memcmp(lazy.got, lazy_message, sizeof lazy_message - 1), 0);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&lazy.done);
out:;
}

/* ---- 12. loop_free on a loop that never ran completes everything on the caller ---- */

static struct {
    pthread_t main_tid;
    int cancels, posts_run, timer_fired, connects, connect_err, closes;
    bool connect_conn, off_main;
} unrun;

static void unrun_note_thread(void) { unrun.off_main |= !pthread_equal(pthread_self(), unrun.main_tid); }

static void unrun_post(void *arg, bool cancelled)
{
    unrun_note_thread();
    if (cancelled)
        unrun.cancels++;
    else
        unrun.posts_run++;
}

static void unrun_timer(void *arg) { unrun.timer_fired++; }

static void unrun_connected(void *arg, ar_tcp *conn, int err)
{
    unrun_note_thread();
    unrun.connects++;
    unrun.connect_err = err;
    unrun.connect_conn = conn != NULL;
}

static void unrun_closed(void *arg)
{
    unrun_note_thread();
    unrun.closes++;
}

static void test_free_never_run(void)
{
    memset(&unrun, 0, sizeof unrun);
    unrun.main_tid = pthread_self();
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    for (int i = 0; i < 3; i++)
        R->post(loop, unrun_post, NULL);
    R->timer_start(loop, 1, unrun_timer, NULL);
    uint16_t port = 0, other_port = 0;
    ar_tcp *listener = LISTEN(loop, 4, never_accept, NULL, &port);
    REQUIRE(listener);
    ar_tcp *closed = LISTEN(loop, 4, never_accept, NULL, &other_port);
    REQUIRE(closed);
    R->tcp_connect(loop, port, unrun_connected, NULL);
    R->tcp_close(closed, unrun_closed, NULL);
    sleep_ms(5);                /* the 1 ms timer is due: it still must not fire */
    R->loop_free(loop);
    EXPECT_EQ(unrun.cancels, 3);
    EXPECT_EQ(unrun.posts_run, 0);
    EXPECT_EQ(unrun.timer_fired, 0);
    EXPECT_EQ(unrun.connects, 1);
    EXPECT_TRUE(!unrun.connect_conn);
    EXPECT_EQ(unrun.connect_err, -ECANCELED);
    EXPECT_EQ(unrun.closes, 1);
    EXPECT_TRUE(!unrun.off_main);
    EXPECT_EQ(open_fds(), fds);
out:;
}

/* ---- 12b. loop_free completes every handle before it cancels any post ---- */

enum { ORDER_LOG = 64 };
static struct {
    loop_thread lt;
    ar_tcp *listener, *spare, *client, *server;
    uint16_t spare_port;
    int ready;                  /* client connected and server accepted */
    char log[ORDER_LOG];        /* 'w' write, 'c' close, 'k' connect, 'p' cancelled post, 'R' ran */
    int n_log, write_status[2], connect_err;
    bool chained, connect_conn;
} order;

static void order_note(char c)
{
    if (order.n_log < ORDER_LOG - 1)
        order.log[order.n_log++] = c;
}

static void order_post(void *arg, bool cancelled)
{
    order_note(cancelled ? 'p' : 'R');
    if (cancelled && !order.chained) { /* a cancelled post's own post is cancelled too */
        order.chained = true;
        R->post(order.lt.loop, order_post, NULL);
    }
}

static void order_wrote(void *arg, int status)
{
    order.write_status[(intptr_t)arg] = status;
    order_note('w');
    R->post(order.lt.loop, order_post, NULL);
}

static void order_closed(void *arg)
{
    order_note('c');
    R->post(order.lt.loop, order_post, NULL);
}

static void order_connected(void *arg, ar_tcp *conn, int err)
{
    order.connect_err = err;
    order.connect_conn = conn != NULL;
    order_note('k');
    R->post(order.lt.loop, order_post, NULL);
}

static void order_spare_accepted(void *arg, ar_tcp *conn, int err)
{
    if (conn)                   /* not under test: the loop should have stopped first */
        R->tcp_close(conn, NULL, NULL);
}

/* On the loop's thread, in one callback: posts before, between and after
 * close requests, writes that cannot drain, a connect that cannot finish,
 * then a stop, so that all of it is still pending when run returns. */
static void order_arrange(void)
{
    static char big[BIG_WRITE];
    ar_loop *loop = order.lt.loop;
    R->post(loop, order_post, NULL);
    EXPECT_EQ(R->tcp_write(order.client, big, sizeof big, order_wrote, (void *)0), 0);
    EXPECT_EQ(R->tcp_write(order.client, "tail", 4, order_wrote, (void *)1), 0);
    R->tcp_close(order.server, order_closed, NULL);
    R->post(loop, order_post, NULL);
    R->tcp_connect(loop, order.spare_port, order_connected, NULL);
    R->tcp_close(order.listener, order_closed, NULL);
    R->post(loop, order_post, NULL);
    R->loop_stop(loop);
}

static void order_accepted(void *arg, ar_tcp *conn, int err)
{
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL))
        return;
    order.server = conn;        /* never reads: the big write cannot drain */
    if (++order.ready == 2)
        order_arrange();
}

static void order_client_connected(void *arg, ar_tcp *conn, int err)
{
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL))
        return;
    order.client = conn;
    if (++order.ready == 2)
        order_arrange();
}

static void test_loop_free_order(void)
{
    memset(&order, 0, sizeof order);
    int fds = open_fds();
    ar_loop *loop = R->loop_new();
    REQUIRE(EXPECT_TRUE(loop != NULL));
    order.lt.loop = loop;
    uint16_t port = 0;
    REQUIRE((order.listener = LISTEN(loop, 4, order_accepted, NULL, &port)));
    REQUIRE((order.spare = LISTEN(loop, 4, order_spare_accepted, NULL, &order.spare_port)));
    R->tcp_connect(loop, port, order_client_connected, NULL);
    lt_start(&order.lt, loop);
    if (!latch_wait(&order.lt.returned, 1, deadline_in(5000))) {
        record_failure(__FILE__, __LINE__, "the connection was not made within 5 s");
        R->loop_stop(loop);
    }
    lt_join(&order.lt);
    R->post(loop, order_post, NULL); /* queued after the close requests, from another thread */
    R->loop_free(loop);
    /* 2 writes, 2 requested closes, 1 connect; 4 posts, 5 from those callbacks, 1 chained. */
    const char *first_post = strchr(order.log, 'p');
    size_t completions = first_post ? (size_t)(first_post - order.log) : strlen(order.log);
    if (strspn(order.log, "wck") != completions || strspn(order.log + completions, "p") !=
        strlen(order.log + completions))
        record_failure(__FILE__, __LINE__, "loop_free ran \"%s\" ('w' write, 'c' close, 'k' connect, "
                       "'p' cancelled post, 'R' post run): a completion after a cancelled post",
                       order.log);
    EXPECT_EQ(completions, 5);
    EXPECT_EQ(strlen(order.log), 15);
    EXPECT_TRUE(order.write_status[0] == 0 || order.write_status[0] == -ECANCELED);
    EXPECT_EQ(order.write_status[1], -ECANCELED);
    EXPECT_EQ(order.connect_err, -ECANCELED);
    EXPECT_TRUE(!order.connect_conn);
    EXPECT_EQ(open_fds(), fds);
out:;
}

/* ---- 13. mutexes and condition variables ---- */

static struct {
    ar_mutex *m;
    ar_cond *c;
    bool other_took, flag, saw_flag[2];
    uint64_t woke_ns[2];
    long counter;
} mc;

static void mc_trylock_elsewhere(void *arg)
{
    mc.other_took = R->mutex_trylock(mc.m);
    if (mc.other_took)
        R->mutex_unlock(mc.m);
}

static void mc_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t deadline = deadline_in(5000);
    R->mutex_lock(mc.m);
    while (!mc.flag && R->now_ns() < deadline)
        R->cond_wait_until(mc.c, mc.m, deadline);
    mc.saw_flag[i] = mc.flag;
    mc.woke_ns[i] = R->now_ns();
    R->mutex_unlock(mc.m);
}

static void mc_count(void *arg)
{
    for (int i = 0; i < 100000; i++) {
        R->mutex_lock(mc.m);
        mc.counter++;
        R->mutex_unlock(mc.m);
    }
}

static void test_mutex_and_cond(void)
{
    memset(&mc, 0, sizeof mc);
    mc.m = R->mutex_new();
    mc.c = R->cond_new();
    REQUIRE(EXPECT_TRUE(mc.m && mc.c));
    R->mutex_lock(mc.m);
    bool retaken = R->mutex_trylock(mc.m);
    EXPECT_TRUE(!retaken);      /* held by this very thread */
    if (retaken)                /* a recursive mutex: undo, so the test can go on */
        R->mutex_unlock(mc.m);
    worker other;
    worker_start(&other, mc_trylock_elsewhere, NULL);
    worker_join(&other);
    EXPECT_TRUE(!mc.other_took);

    uint64_t deadline = R->now_ns() + 50 * 1000000u;
    bool woke;
    do                          /* spurious wake-ups are allowed: wait again */
        woke = R->cond_wait_until(mc.c, mc.m, deadline);
    while (woke && R->now_ns() < deadline);
    uint64_t after = R->now_ns();
    EXPECT_TRUE(!woke);
    EXPECT_GE(after, deadline);
    EXPECT_LT((after - deadline) / 1000000u, 500 * time_scale);
    uint64_t t0 = R->now_ns();
    EXPECT_TRUE(!R->cond_wait_until(mc.c, mc.m, t0 - 1)); /* already past */
    EXPECT_LT(ms_since(t0), 100 * time_scale);
    R->mutex_unlock(mc.m);
    EXPECT_TRUE(R->mutex_trylock(mc.m));
    R->mutex_unlock(mc.m);

    worker waiters[2];
    for (intptr_t i = 0; i < 2; i++)
        worker_start(&waiters[i], mc_waiter, (void *)i);
    sleep_ms(30);
    R->mutex_lock(mc.m);
    mc.flag = true;
    uint64_t broadcast_ns = R->now_ns();
    R->cond_broadcast(mc.c);
    R->mutex_unlock(mc.m);
    for (int i = 0; i < 2; i++) {
        worker_join(&waiters[i]);
        EXPECT_TRUE(mc.saw_flag[i]);
        EXPECT_LT((long long)(mc.woke_ns[i] - broadcast_ns) / 1000000, 1000 * time_scale);
    }

    worker counters[2];
    for (int i = 0; i < 2; i++)
        worker_start(&counters[i], mc_count, NULL);
    for (int i = 0; i < 2; i++)
        worker_join(&counters[i]);
    EXPECT_EQ(mc.counter, 200000);
out:
    R->cond_free(mc.c);
    R->mutex_free(mc.m);
}

/* ---- 14. four loops on four threads pass tokens round-robin ---- */

enum { RING = 4, HOPS = 1000 };
static struct {
    loop_thread lt[RING];
    ar_loop *loops[RING];
    struct { int at, hops; } token[RING];
    int cancelled;
    latch done;
} ring;

static void ring_hop(void *arg, bool cancelled)
{
    intptr_t k = (intptr_t)arg;
    if (cancelled) {
        ring.cancelled++;
        return;
    }
    EXPECT_TRUE(on_thread(&ring.lt[ring.token[k].at]));
    if (++ring.token[k].hops == HOPS) {
        latch_add(&ring.done);
        return;
    }
    ring.token[k].at = (ring.token[k].at + 1) % RING;
    R->post(ring.loops[ring.token[k].at], ring_hop, arg);
}

static void test_loop_per_thread(void)
{
    memset(&ring, 0, sizeof ring);
    int fds = open_fds();
    for (int i = 0; i < RING; i++)
        REQUIRE(EXPECT_TRUE((ring.loops[i] = R->loop_new()) != NULL));
    latch_init(&ring.done);
    for (intptr_t k = 0; k < RING; k++) {
        ring.token[k].at = (int)k;
        R->post(ring.loops[k], ring_hop, (void *)k);
    }
    for (int i = 0; i < RING; i++)
        lt_start(&ring.lt[i], ring.loops[i]);
    EXPECT_TRUE(latch_wait(&ring.done, RING, deadline_in(10000)));
    for (int i = 0; i < RING; i++)
        lt_stop_join(&ring.lt[i]);
    for (int i = 0; i < RING; i++)
        R->loop_free(ring.loops[i]);
    for (int k = 0; k < RING; k++)
        EXPECT_EQ(ring.token[k].hops, HOPS);
    EXPECT_EQ(ring.cancelled, 0);
    EXPECT_EQ(open_fds(), fds);
    latch_destroy(&ring.done);
out:;
}

/* ---- driver ---- */

typedef struct {
    const char *name;
    void (*fn)(void);
} test_case;

static const test_case tests[] = {
    { "posts_fifo_on_loop_thread", test_posts_fifo_on_loop_thread },
    { "cross_thread_posts", test_cross_thread_posts },
    { "stop_from_other_thread", test_stop_from_other_thread },
    { "stop_with_pending_posts_frees", test_stop_with_pending_posts_frees },
    { "self_repost_yields", test_self_repost_yields },
    { "timers", test_timers },
    { "tcp_echo_1mib", test_tcp_echo_1mib },
    { "tcp_echo_1mib_two_loops", test_tcp_echo_1mib_two_loops },
    { "tcp_connect_refused", test_tcp_connect_refused },
    { "tcp_close_cancels_writes", test_tcp_close_cancels_writes },
    { "tcp_accept_reads_only_after_read_start", test_tcp_accept_reads_only_after_read_start },
    { "free_never_run", test_free_never_run },
    { "loop_free_order", test_loop_free_order },
    { "mutex_and_cond", test_mutex_and_cond },
    { "loop_per_thread", test_loop_per_thread },
};
enum { N_TESTS = sizeof tests / sizeof *tests };

static void run_test(const test_case *t)
{
    current_test = t->name;
    pthread_mutex_lock(&failure_lock);
    failure_seen = false;
    pthread_mutex_unlock(&failure_lock);
    uint64_t t0 = R->now_ns();
    t->fn();                    /* every thread it started is joined when it returns */
    if (failure_seen) {
        failed++;
        printf("FAIL %s: %s\n", t->name, failure_text);
    } else {
        passed++;
        printf("ok %s %lldms\n", t->name, ms_since(t0));
    }
    fflush(stdout);
}

static const char *test_names(void)
{
    static char names[1024];
    size_t n = 0;
    for (int i = 0; i < N_TESTS; i++)
        n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "", tests[i].name);
    return names;
}

static _Noreturn void usage_error(const char *fmt, const char *value, const char *accepted)
{
    fprintf(stderr, "conformance: ");
    fprintf(stderr, fmt, value);
    fprintf(stderr, " (accepted: %s)\n", accepted);
    exit(2);
}

/* Process-wide one-time descriptors (libuv keeps a signal pipe) must exist
 * before any test takes its descriptor baseline. */
static void warm_up(void)
{
    ar_loop *loop = R->loop_new();
    if (!loop)
        usage_error("runner %s cannot create a loop", R->name, ar_runner_names());
    R->loop_free(loop);
}

int main(int argc, char **argv)
{
    const char *runner = NULL, *only = NULL;
    static const char options[] = "--runner NAME, --test NAME, --list, --list-runners";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--list") == 0) {
            for (int t = 0; t < N_TESTS; t++)
                printf("%s\n", tests[t].name);
            return 0;
        }
        if (strcmp(a, "--list-runners") == 0) {
            for (const ar_runner *const *r = ar_runners; *r; r++)
                printf("%s\n", (*r)->name);
            return 0;
        }
        if (strcmp(a, "--runner") != 0 && strcmp(a, "--test") != 0)
            usage_error("unknown option '%s'", a, options);
        if (i + 1 >= argc)
            usage_error("option %s needs a value", a, options);
        *(strcmp(a, "--runner") == 0 ? &runner : &only) = argv[++i];
    }
    if (!runner)
        usage_error("%s is required", "--runner", ar_runner_names());
    if (!(R = ar_runner_find(runner)))
        usage_error("unknown runner '%s'", runner, ar_runner_names());
    const test_case *single = NULL;
    for (int t = 0; only && t < N_TESTS; t++)
        if (strcmp(tests[t].name, only) == 0)
            single = &tests[t];
    if (only && !single)
        usage_error("unknown test '%s'", only, test_names());
    const char *scale = getenv("ASYNCRACE_TIMEOUT_MULTIPLIER");
    if (scale && strtod(scale, NULL) > 1.0)
        time_scale = strtod(scale, NULL);

    warm_up();
    for (int t = 0; t < N_TESTS; t++)
        if (!single || single == &tests[t])
            run_test(&tests[t]);
    printf("conformance %s: %d passed, %d failed\n", R->name, passed, failed);
    return failed ? 1 : 0;
}
