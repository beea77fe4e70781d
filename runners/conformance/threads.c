/* threads.c: threads, mutexes and condition variables through the runner,
 * and four loops on four threads passing tokens. */
#include "conformance.h"

#include <string.h>

/* ---- mutexes and condition variables ---- */

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
    if (mc.c)
        R->cond_free(mc.c);
    if (mc.m)
        R->mutex_free(mc.m);
}

/* ---- four loops on four threads pass tokens round-robin ---- */

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
    for (int i = 0; i < RING; i++)
        REQUIRE((ring.loops[i] = conf_loop_new()));
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
    for (int k = 0; k < RING; k++)
        EXPECT_EQ(ring.token[k].hops, HOPS);
    latch_destroy(&ring.done);
out:
    for (int i = 0; i < RING; i++)
        if (ring.loops[i])
            R->loop_free(ring.loops[i]);
    EXPECT_EQ(ring.cancelled, 0);
}

const conf_test conf_thread_tests[] = {
    { "mutex_and_cond", test_mutex_and_cond },
    { "loop_per_thread", test_loop_per_thread },
    { NULL, NULL },
};
