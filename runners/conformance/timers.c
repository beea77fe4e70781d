/* timers.c: one-shot timers fire once, in deadline order, measured from
 * timer_start; cancelled ones never fire, pending ones are dropped by loop_free. */
#include "conformance.h"

#include <string.h>

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
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
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
            FAILF("fired as %s: %c (deadline +%lld us) before %c (deadline +%lld us)", tm.names,
                  timer_names[a], (long long)(probe_deadline_ns(a) - tm.t[T_D].started_ns) / 1000,
                  timer_names[b], (long long)(probe_deadline_ns(b) - tm.t[T_D].started_ns) / 1000);
            break;
        }
    }
    for (int i = T_A; i < T_FIRING; i++)
        expect_timer(i);
    for (int i = T_FIRING; i < T_COUNT; i++)
        EXPECT_EQ(tm.t[i].fired, 0);
    latch_destroy(&tm.done);
out:;
}

const conf_test conf_timer_tests[] = {
    { "timers", test_timers },
    { NULL, NULL },
};
