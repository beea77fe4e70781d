/* casetest.c: build/tools/casetest, the self-test of the layers every case
 * stands on (harness/race, harness/runtime), on one runner, in the result
 * lines of runners/selftest.h:
 *
 *   casetest --runner NAME [--test NAME] [--list] [--list-runners]
 *
 * Each test is one iteration, begun and ended as the case plumbing does it,
 * run through the runner's run() with its resources counted before and after.
 * What they check is what the cases take on trust: the first failure wins, a
 * gate orders threads and a gate that never opens is a hang that names it,
 * the race log keeps the last events, a channel's close reaches a parked
 * receiver, an inline wake polls on the waker's stack and a deferred one does
 * not, the two shutdown orders, seeded randomness.
 */
#include "asyncrace.h"
#include "iteration.h"
#include "selftest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ar_runner *R;
static ar_selftest results = { .program = "casetest" };
#define CHECK(c, ...) AR_SELFTEST_CHECK(&results, (c), __VA_ARGS__)

/* One iteration around a test body, as case_main.c runs them. */
typedef struct {
    void (*body)(void);
    uint64_t seed, deadline_ms;
    ar_outcome outcome;
    char detail[256];
} iteration;

static void run_iteration(void *arg)
{
    iteration *it = arg;
    char tag[AR_TAG_BYTES];
    ar_iteration_begin(&(ar_iteration_setup){ AR_NATURAL, false, it->seed,
                                              ar_now_ns() + it->deadline_ms * 1000000, NULL, NULL });
    it->body();
    it->outcome = ar_iteration_end(it->detail, sizeof it->detail, tag);
}

static iteration run(void (*body)(void), uint64_t seed, uint64_t deadline_ms)
{
    iteration it = { body, seed, deadline_ms, AR_OK, "" };
    R->run(run_iteration, &it);
    return it;
}

/* ---- race.h ---- */

static void two_failures(void)
{
    ar_fail(AR_PANIC, "the first");
    ar_fail(AR_LOST, "the second");
}

static void test_the_first_failure_wins(void)
{
    iteration it = run(two_failures, 1, 2000);
    CHECK(it.outcome == AR_PANIC && !strcmp(it.detail, "the first"), "got %s: %s",
          ar_outcome_names[it.outcome], it.detail);
    it = run(two_failures, 1, 2000);   /* and the next iteration starts clean */
    CHECK(it.outcome == AR_PANIC, "a second iteration: %s", ar_outcome_names[it.outcome]);
}

static struct {
    ar_gate opened;
    int order[2], n;
    ar_mutex *lock;
} gates;

static void note(int who)
{
    R->mutex_lock(gates.lock);
    gates.order[gates.n++] = who;
    R->mutex_unlock(gates.lock);
}

static void waiter(void *arg)
{
    if (ar_gate_wait(&gates.opened))
        note(2);
}

static void gate_order(void)
{
    ar_gate_init(&gates.opened, "main wrote 1");
    gates.n = 0;
    gates.lock = R->mutex_new();
    ar_thread *t = R->thread_start(waiter, NULL);
    R->sleep_ns(2000000);          /* the waiter, if the gate did nothing, goes first */
    note(1);
    ar_gate_open(&gates.opened);
    R->thread_join(t);
    R->mutex_free(gates.lock);
}

static void test_a_gate_orders_two_threads(void)
{
    iteration it = run(gate_order, 1, 2000);
    CHECK(it.outcome == AR_OK, "%s: %s", ar_outcome_names[it.outcome], it.detail);
    CHECK(gates.n == 2 && gates.order[0] == 1 && gates.order[1] == 2,
          "order %d then %d (%d notes): the waiter did not wait for the gate", gates.order[0],
          gates.order[1], gates.n);
}

static void wait_forever(void)
{
    ar_gate g;
    ar_gate_init(&g, "nobody opens this");
    bool opened = ar_gate_wait(&g);
    if (opened)
        ar_fail(AR_PANIC, "a gate nobody opened let its waiter through");
}

static void test_a_gate_that_never_opens_is_a_hang_that_names_it(void)
{
    iteration it = run(wait_forever, 1, 50);
    CHECK(it.outcome == AR_HANG && strstr(it.detail, "nobody opens this"), "%s: %s",
          ar_outcome_names[it.outcome], it.detail);
}

static const ar_point at_counted = AR_POINT("casetest.counted", "the i-th event (arg: i)");

static void many_points(void)
{
    for (long i = 0; i < 300; i++)
        ar_race_point(&at_counted, i);
}

static void test_the_race_log_keeps_the_last_256_events(void)
{
    run(many_points, 1, 2000);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f, "open_memstream");
    ar_race_log_dump(f);
    fclose(f);
    int lines = 0;
    for (char *p = text; (p = strchr(p, '\n')); p++)
        lines++;
    bool first = strstr(text, "last 256 of 300 events") != NULL;
    char *last = strrchr(text, 'd');        /* "...casetest.counted  299" */
    bool newest = last && strstr(last, "299");
    bool oldest = strstr(text, " 44\n") != NULL && !strstr(text, " 43\n");
    free(text);
    CHECK(first && lines == 257, "%d lines; header says 256 of 300: %d", lines, first);
    CHECK(newest && oldest, "the log does not hold events 44..299");
}

static uint64_t drawn[2][4];

static void draw_0(void) { for (int i = 0; i < 4; i++) drawn[0][i] = ar_rand(); }
static void draw_1(void) { for (int i = 0; i < 4; i++) drawn[1][i] = ar_rand(); }

static void test_randomness_comes_from_the_iteration_seed(void)
{
    run(draw_0, 7, 2000);
    run(draw_1, 7, 2000);
    CHECK(!memcmp(drawn[0], drawn[1], sizeof drawn[0]), "seed 7 drew two sequences");
    run(draw_1, 8, 2000);
    CHECK(memcmp(drawn[0], drawn[1], sizeof drawn[0]) != 0, "seeds 7 and 8 drew one sequence");
}

/* ---- runtime.h ---- */

typedef struct { ar_receiver *rx; int result; } receiving;

static ar_poll receive(void *p, ar_cx *cx)
{
    receiving *r = p;
    void *item;
    r->result = (int)ar_recv(r->rx, cx, &item);
    return r->result == AR_RECV_PENDING ? AR_PENDING : AR_READY;
}

static void drop_receiving(void *p) { ar_receiver_drop(((receiving *)p)->rx); }

typedef struct { ar_sender *tx; } sending;

static ar_poll drop_at_once(void *p, ar_cx *cx) { return AR_READY; }
static void drop_sending(void *p) { ar_sender_drop(((sending *)p)->tx); free(p); }

static int close_result;

static void close_wakes(void)
{
    ar_rt *rt = ar_rt_new(R, 1, AR_WAKE_DEFERRED, AR_SHUTDOWN_STOP_THEN_DROP);
    sending *s = malloc(sizeof *s);
    receiving r = { NULL, -1 };
    if (!s)
        abort();
    ar_chan_new(rt, NULL, &s->tx, &r.rx);
    ar_spawn(rt, 0, drop_at_once, drop_sending, s);   /* completes: its sender goes */
    ar_block_on(rt, receive, drop_receiving, &r);
    close_result = r.result;
    ar_rt_shutdown(rt);
}

static void test_the_last_sender_gone_closes_a_parked_receiver(void)
{
    iteration it = run(close_wakes, 1, 2000);
    CHECK(it.outcome == AR_OK, "%s: %s", ar_outcome_names[it.outcome], it.detail);
    CHECK(close_result == AR_RECV_CLOSED, "recv gave %d, not closed (%d)", close_result,
          AR_RECV_CLOSED);
}

/* A task woken from inside another task's poll: polled there (inline, on the
 * waker's stack) or later from its loop (deferred). */
static struct {
    ar_waker *parked;
    int depth_seen;               /* how deep in polls the woken task ran */
    int depth;
    bool woken;
} wake;

static ar_poll sleeper(void *p, ar_cx *cx)
{
    if (!wake.woken) {
        ar_waker_register(&wake.parked, cx);
        return AR_PENDING;
    }
    wake.depth_seen = wake.depth;
    return AR_READY;
}

static ar_poll waker_task(void *p, ar_cx *cx)
{
    wake.depth = 1;
    wake.woken = true;
    ar_waker_take_wake(&wake.parked);
    wake.depth = 0;
    return AR_READY;
}

static void nothing_to_drop(void *p) { (void)p; }

static ar_wake_policy policy;

static void nested_wake(void)
{
    memset(&wake, 0, sizeof wake);
    wake.depth_seen = -1;
    /* Both on worker 0, and main waits by draining it: a join would wake main's
     * block_on from worker 0, which inline polls on the wrong thread (the
     * cross-thread half of inline_repoll). */
    ar_rt *rt = ar_rt_new(R, 1, policy, AR_SHUTDOWN_STOP_THEN_DROP);
    ar_spawn(rt, 0, sleeper, nothing_to_drop, NULL);
    ar_rt_drain(rt, 0);                            /* the sleeper parked */
    ar_spawn(rt, 0, waker_task, nothing_to_drop, NULL);
    ar_rt_drain(rt, 0);                            /* the waker ran */
    ar_rt_drain(rt, 0);                            /* and a deferred wake's poll too */
    ar_rt_shutdown(rt);
}

static void test_an_inline_wake_polls_on_the_wakers_stack_and_a_deferred_one_later(void)
{
    policy = AR_WAKE_INLINE;
    iteration it = run(nested_wake, 1, 2000);
    CHECK(it.outcome == AR_OK && wake.depth_seen == 1, "inline: %s, polled at depth %d",
          ar_outcome_names[it.outcome], wake.depth_seen);
    policy = AR_WAKE_DEFERRED;
    it = run(nested_wake, 1, 2000);
    CHECK(it.outcome == AR_OK && wake.depth_seen == 0, "deferred: %s, polled at depth %d",
          ar_outcome_names[it.outcome], wake.depth_seen);
}

/* ---- the table ---- */

static const struct { const char *name; void (*fn)(void); } tests[] = {
    { "the_first_failure_wins", test_the_first_failure_wins },
    { "a_gate_orders_two_threads", test_a_gate_orders_two_threads },
    { "a_gate_that_never_opens_is_a_hang_that_names_it",
      test_a_gate_that_never_opens_is_a_hang_that_names_it },
    { "the_race_log_keeps_the_last_256_events", test_the_race_log_keeps_the_last_256_events },
    { "randomness_comes_from_the_iteration_seed", test_randomness_comes_from_the_iteration_seed },
    { "the_last_sender_gone_closes_a_parked_receiver",
      test_the_last_sender_gone_closes_a_parked_receiver },
    { "an_inline_wake_polls_on_the_wakers_stack_and_a_deferred_one_later",
      test_an_inline_wake_polls_on_the_wakers_stack_and_a_deferred_one_later },
};
enum { N_TESTS = sizeof tests / sizeof *tests };

static void list(void)
{
    for (int t = 0; t < N_TESTS; t++)
        printf("%s\n", tests[t].name);
}

static void warm_up(void *arg)
{
    ar_loop *loop = R->loop_new();
    if (loop)
        R->loop_free(loop);
}

int main(int argc, char **argv)
{
    ar_selftest_args args = ar_selftest_parse("casetest", argc, argv, list);
    R = args.runner;
    ar_race_use_runner(R);
    R->run(warm_up, NULL);
    results.subject = R->name;
    bool found = false;
    for (int t = 0; t < N_TESTS; t++) {
        if (args.only && strcmp(args.only, tests[t].name))
            continue;
        found = true;
        ar_selftest_run(&results, tests[t].name);
        ar_resources before, after;
        R->resources(&before);
        uint64_t t0 = ar_host_now_ns();
        tests[t].fn();
        R->resources(&after);
        char grown[200];
        ar_selftest_check(&results, !*ar_resources_grown(&before, &after, grown, sizeof grown),
                          __FILE__, __LINE__, "still open after the test: %s", grown);
        ar_selftest_end(&results, tests[t].name, (long long)((ar_host_now_ns() - t0) / 1000000));
    }
    if (!found)
        ar_selftest_usage("casetest", "unknown test", args.only);
    ar_selftest_summary(&results);
    return results.failed ? 1 : 0;
}
