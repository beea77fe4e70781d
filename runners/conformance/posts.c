/* posts.c: post() and loop_stop(): FIFO on the loop's thread, from any
 * thread, one snapshot per turn, stops before and during a run, and what a
 * stop leaves for loop_free. */
#include "conformance.h"

#include <string.h>

/* ---- posts run in FIFO order on the loop's thread ---- */

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
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
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
    latch_destroy(&fifo.done);
out:;
}

/* ---- posts from other threads arrive exactly once, in order per thread ---- */

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
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
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
    latch_destroy(&cross.go);
    latch_destroy(&cross.done);
out:;
}

/* ---- stops: from another thread while idle, and before run ---- */

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
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
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
    latch_destroy(&stopper.ran_latch);
out:;
}

/* ---- posts left at a stop are cancelled by loop_free, exactly once ---- */

enum { BATCH = 1000, RACE_PRODUCERS = 4, RACE_PER = 5000, RACE_TOTAL = RACE_PRODUCERS * RACE_PER };
static struct {
    loop_thread lt;
    void *main_locals;          /* the test thread's thread_locals() */
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
        pend.cancel_off_main |= !on_this_thread(pend.main_locals);
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
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
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
    pend.main_locals = R->thread_locals();
    latch_init(&pend.some_ran);
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
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
out:
    latch_destroy(&pend.some_ran);
}

/* ---- a callback that re-posts itself does not starve timers or stop ---- */

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
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
    rep.lt.loop = loop;
    R->post(loop, rep_cb, NULL);
    lt_start(&rep.lt, loop);
    if (!latch_wait(&rep.lt.returned, 1, deadline_in(5000))) {
        FAILF("a 20 ms timer did not stop the loop within 5 s: re-posts starve the loop");
        R->loop_stop(loop);
    }
    lt_join(&rep.lt);
    EXPECT_TRUE(rep.timer_fired);
    EXPECT_GT(rep.reposts, 0);
    R->loop_free(loop);
    EXPECT_EQ(rep.cancelled, 1); /* the one re-post queued when the loop stopped */
out:;
}

const conf_test conf_post_tests[] = {
    { "posts_fifo_on_loop_thread", test_posts_fifo_on_loop_thread },
    { "cross_thread_posts", test_cross_thread_posts },
    { "stop_from_other_thread", test_stop_from_other_thread },
    { "stop_with_pending_posts_frees", test_stop_with_pending_posts_frees },
    { "self_repost_yields", test_self_repost_yields },
    { NULL, NULL },
};
