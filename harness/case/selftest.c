/* selftest.c: a case whose failures are scheduled, not raced, so the
 * driver's own tests can check counting, resuming and capture against a real
 * program. Every iteration also does a real round trip through the runtime
 * (a task on a worker sends to a task in block_on), so the plumbing under the
 * failure is the one the real cases use.
 *
 *   ok        never fails
 *   flaky     about 1 in 8 iterations panics (chosen by the iteration seed)
 *   always    every iteration panics
 *   segv      iteration i % 100 == 7 dereferences NULL
 *   hang      iteration i % 100 == 7 blocks forever (the watchdog ends it)
 *   deadlock  iteration i % 100 == 7 reports a deadlock without blocking
 *   leak      iteration i % 100 == 7 leaves a loop and a mutex open (the leak check)
 *   lock_cycle iteration i % 100 == 7 really deadlocks: two threads take two
 *            mutexes in opposite orders (sim names the waits; a real runner
 *            hangs until the watchdog)
 */
#include "asyncrace.h"

#include <stdlib.h>

enum failure { OK, FLAKY, ALWAYS, SEGV, HANG, DEADLOCK, LEAK, LOCK_CYCLE };
struct design { enum failure failure; };

typedef struct { ar_sender *tx; } sender_state;
typedef struct { ar_receiver *rx; uintptr_t got; } receiver_state;

static ar_poll send_one(void *p, ar_cx *cx)
{
    sender_state *s = p;
    ar_send(s->tx, (void *)(uintptr_t)42);
    return AR_READY;
}

static void drop_sender(void *p)
{
    sender_state *s = p;
    ar_sender_drop(s->tx);
    free(s);
}

static ar_poll receive_one(void *p, ar_cx *cx)
{
    receiver_state *s = p;
    void *item;
    switch (ar_recv(s->rx, cx, &item)) {
    case AR_RECV_PENDING: return AR_PENDING;
    case AR_RECV_ITEM: s->got = (uintptr_t)item; return AR_READY;
    case AR_RECV_CLOSED: ar_fail(AR_PANIC, "selftest: channel closed before the item"); return AR_READY;
    }
    return AR_READY;
}

static void drop_receiver(void *p)
{
    receiver_state *s = p;
    ar_receiver_drop(s->rx);
}

static void round_trip(const ar_iter *it)
{
    ar_rt *rt = ar_rt_new(it->runner, it->workers, it->variant->wake, it->variant->shutdown);
    sender_state *tx = malloc(sizeof *tx);
    receiver_state rx = { 0 };
    if (!tx) abort();
    ar_chan_new(rt, NULL, &tx->tx, &rx.rx);
    ar_spawn(rt, 0, send_one, drop_sender, tx);
    if (ar_block_on(rt, receive_one, drop_receiver, &rx) && rx.got != 42)
        ar_fail(AR_PANIC, "selftest: received %lu, sent 42", (unsigned long)rx.got);
    ar_rt_shutdown(rt);
}

/* Two threads, two mutexes, opposite orders; the gates make sure each holds
 * its first before it asks for its second. */
typedef struct {
    const ar_runner *r;
    ar_mutex *first, *second;
    ar_gate *mine, *theirs;
} cycle_side;

static void cycle_thread(void *arg)
{
    cycle_side *c = arg;
    c->r->mutex_lock(c->first);
    ar_gate_open(c->mine);
    ar_gate_wait(c->theirs);
    c->r->mutex_lock(c->second);          /* never returns */
    c->r->mutex_unlock(c->second);
    c->r->mutex_unlock(c->first);
}

static void lock_cycle(const ar_runner *r)
{
    ar_gate ga, gb;
    ar_gate_init(&ga, "a holds its first");
    ar_gate_init(&gb, "b holds its first");
    ar_mutex *m1 = r->mutex_new(), *m2 = r->mutex_new();
    cycle_side a = { r, m1, m2, &ga, &gb }, b = { r, m2, m1, &gb, &ga };
    ar_thread *ta = r->thread_start(cycle_thread, &a), *tb = r->thread_start(cycle_thread, &b);
    r->thread_join(ta);
    r->thread_join(tb);
}

/* volatile, so the compiler cannot see the NULL and turn the write into a trap */
static volatile int *volatile null_pointer;

static void iteration(const ar_iter *it, void *scenario)
{
    const struct design *d = it->variant->design;
    round_trip(it);
    bool scheduled = it->index % 100 == 7;
    switch (d->failure) {
    case OK:
        break;
    case FLAKY:
        if (it->seed % 8 == 0)
            ar_fail(AR_PANIC, "selftest: scheduled panic (seed %% 8 == 0)");
        break;
    case ALWAYS:
        ar_fail(AR_PANIC, "selftest: scheduled panic in every iteration");
        break;
    case SEGV:
        if (scheduled)
            *null_pointer = 1;    /* a real SIGSEGV, not raise() */
        break;
    case HANG:
        while (scheduled)
            ar_sleep_us(1000000);
        break;
    case DEADLOCK:
        if (scheduled)
            ar_fail(AR_DEADLOCK, "selftest: scheduled deadlock at iteration %llu",
                    (unsigned long long)it->index);
        break;
    case LEAK:
        if (scheduled) {          /* never freed: the leak check must count them */
            ar_loop *loop = it->runner->loop_new();
            ar_mutex *m = it->runner->mutex_new();
            (void)loop;
            (void)m;
        }
        break;
    case LOCK_CYCLE:
        if (scheduled)
            lock_cycle(it->runner);
        break;
    }
}

#define SELFTEST_VARIANT(n, f, w, e, t) \
    { .name = n, .what = w, .workers = 1, .wake = AR_WAKE_DEFERRED, \
      .shutdown = AR_SHUTDOWN_STOP_THEN_DROP, .twin = t, \
      .design = &(const struct design){ f }, .expect = { e, e, e, e } }

static const ar_variant variants[] = {
    SELFTEST_VARIANT("ok", OK, "never fails", AR_NEVER_FAILS, "flaky"),
    SELFTEST_VARIANT("flaky", FLAKY, "about 1 in 8 iterations panics",
                     AR_FAILS_SOMETIMES(AR_PANIC), NULL),
    SELFTEST_VARIANT("always", ALWAYS, "every iteration panics", AR_FAILS_ALWAYS(AR_PANIC), NULL),
    SELFTEST_VARIANT("segv", SEGV, "iteration i % 100 == 7 segfaults", AR_NEVER_FAILS, "flaky"),
    SELFTEST_VARIANT("hang", HANG, "iteration i % 100 == 7 blocks forever", AR_NEVER_FAILS, "flaky"),
    SELFTEST_VARIANT("deadlock", DEADLOCK, "iteration i % 100 == 7 reports a deadlock",
                     AR_NEVER_FAILS, "flaky"),
    SELFTEST_VARIANT("leak", LEAK, "iteration i % 100 == 7 leaves a loop and a mutex open",
                     AR_NEVER_FAILS, "flaky"),
    SELFTEST_VARIANT("lock_cycle", LOCK_CYCLE, "iteration i % 100 == 7 deadlocks on two mutexes",
                     AR_NEVER_FAILS, "flaky"),
};

static const ar_case selftest = {
    .name = "selftest",
    .upstream = "none: the driver's own fixture",
    .summary = "scheduled failures for testing the driver",
    .variants = variants,
    .n_variants = AR_ARRAY_LEN(variants),
    .scenario_size = 1,
    .iteration = iteration,
};

int main(int argc, char **argv) { return ar_case_main(&selftest, argc, argv); }
