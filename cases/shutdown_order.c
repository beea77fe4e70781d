/* shutdown_order.c: a producer panics because the runtime dropped its peer first.
 *
 * Refs: "Panic! At The Async Runtime Shutdown" (Oxide, Crucible on tokio);
 *       tokio #2077 (shutdown races). The seed saw 26 panics in 10,000 loops
 *       on the multi-thread runtime and none on the current-thread one.
 *
 * The worker answers each message with message + 1. The producer sends i,
 * awaits the reply and unwraps it: "safe", since the worker only stops once
 * the producer drops its sender. Then the runtime is dropped:
 *
 *   worker 0 (worker task)                  worker 1 (producer task)
 *   ------------------------------------    ------------------------------------
 *                                           stop? no. send(i)
 *                                           recv(replies) -> pending, parked
 *   main: stop = true; drop the runtime
 *   loop stops; drops its own tasks:
 *     the worker task, and with it the
 *     `replies` sender -> channel closed,
 *     producer woken                        (worker 1 has not stopped yet)
 *                                           recv(replies) -> closed: unwrap panics
 *
 *   buggy    2 workers, drop_as_stopped: each worker drops its tasks as it stops
 *   fixed    2 workers, stop_then_drop: stop and join every worker, then drop
 *            (the seed's "stop, collect, and drop")
 *   control  1 worker, drop_as_stopped: the current-thread runtime; the wake
 *            lands on the loop that is stopping, so nothing is polled
 *
 * forced mode imposes the timeline above: the producer sends only once worker
 * 0's loop has exited, worker 0 drops its tasks only once the producer is
 * parked, and worker 1 is told to stop only after worker 0 dropped its tasks
 * and worker 1 ran what those drops posted to it.
 */
#include "asyncrace.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    ar_receiver *messages;
    ar_sender *replies;
} worker_task;

typedef struct {
    ar_sender *messages;
    ar_receiver *replies;
    _Atomic bool *stop;
    uintptr_t i;
    bool awaiting_reply;
} producer_task;

/* while let Some(m) = messages.recv().await { let _ = replies.send(m + 1); } */
static ar_poll worker_poll(void *p, ar_cx *cx)
{
    worker_task *w = p;
    void *m;
    for (;;) {
        switch (ar_recv(w->messages, cx, &m)) {
        case AR_RECV_ITEM:
            ar_send(w->replies, (void *)((uintptr_t)m + 1));
            break;
        case AR_RECV_PENDING:
            return AR_PENDING;
        case AR_RECV_CLOSED:
            return AR_READY;
        }
    }
}

static void worker_drop(void *p)
{
    worker_task *w = p;
    ar_receiver_drop(w->messages);
    ar_sender_drop(w->replies);
    free(w);
}

/* for i in 0.. { if stop { break } messages.send(i).unwrap();
 *                let r = replies.recv().await.unwrap(); assert_eq!(r, i + 1); } */
static ar_poll producer_poll(void *p, ar_cx *cx)
{
    producer_task *t = p;
    for (;;) {
        if (!t->awaiting_reply) {
            if (atomic_load_explicit(t->stop, memory_order_acquire))
                return AR_READY;
            ar_race_point("producer.before_send", (long)t->i);
            if (!ar_send(t->messages, (void *)t->i)) {
                ar_fail(AR_PANIC, "producer: messages.send(%lu).unwrap() on a closed channel",
                        (unsigned long)t->i);
                return AR_READY;
            }
            t->awaiting_reply = true;
        }
        void *r;
        switch (ar_recv(t->replies, cx, &r)) {
        case AR_RECV_PENDING:
            ar_race_point("producer.parked", (long)t->i);
            return AR_PENDING;
        case AR_RECV_CLOSED:
            ar_fail(AR_PANIC, "producer: replies.recv().await.unwrap() on None while awaiting "
                    "the reply to %lu: the worker task was dropped first", (unsigned long)t->i);
            return AR_READY;
        case AR_RECV_ITEM:
            if ((uintptr_t)r != t->i + 1) {
                ar_fail(AR_PANIC, "producer: assert_eq!(r, i + 1): %lu != %lu",
                        (unsigned long)(uintptr_t)r, (unsigned long)t->i + 1);
                return AR_READY;
            }
            t->awaiting_reply = false;
            t->i++;
        }
    }
}

static void producer_drop(void *p)
{
    producer_task *t = p;
    ar_sender_drop(t->messages);
    ar_receiver_drop(t->replies);
    free(t);
}

/* ---- forced mode: the timeline above, with gates ---- */

enum { PRODUCER_READY, WORKER0_EXITED, PRODUCER_PARKED, WORKER0_DROPPED };
static bool two_workers;          /* set before the runtime's threads start */
static ar_rt *forced_rt;

static void forced(const char *point, long arg)
{
    if (!strcmp(point, "producer.before_send")) {
        ar_gate_open(PRODUCER_READY);
        if (two_workers)
            ar_gate_wait(WORKER0_EXITED);
    } else if (!strcmp(point, "producer.parked")) {
        ar_gate_open(PRODUCER_PARKED);
    } else if (!strcmp(point, "rt.worker.loop_exited") && arg == 0 && two_workers) {
        ar_gate_open(WORKER0_EXITED);
        ar_gate_wait(PRODUCER_PARKED);
    } else if (!strcmp(point, "rt.worker.done") && arg == 0) {
        ar_gate_open(WORKER0_DROPPED);
    } else if (!strcmp(point, "rt.shutdown.stop") && arg == 1) {
        /* Worker 1 stops only after it ran whatever worker 0's drops posted. */
        if (ar_gate_wait(WORKER0_DROPPED))
            ar_rt_drain(forced_rt, 1);
    }
}

/* ---- one iteration: the seed's main() body ---- */

static void iteration(const ar_iter *it)
{
    const ar_variant *v = it->variant;
    two_workers = it->workers >= 2;
    ar_rt *rt = ar_rt_new(it->runner, it->workers, v->wake, v->shutdown);
    forced_rt = rt;
    _Atomic bool stop = false;

    worker_task *w = malloc(sizeof *w);
    producer_task *p = calloc(1, sizeof *p);
    if (!w || !p) abort();
    ar_chan_new(rt, NULL, &p->messages, &w->messages);
    ar_chan_new(rt, NULL, &w->replies, &p->replies);
    p->stop = &stop;
    ar_spawn(rt, 0, worker_poll, worker_drop, w);
    ar_spawn(rt, it->workers - 1, producer_poll, producer_drop, p);

    if (it->mode == AR_FORCED)
        ar_gate_wait(PRODUCER_READY);
    else
        ar_sleep_us(it->run_us);  /* the seed's sleep(10 ms), shortened */
    atomic_store_explicit(&stop, true, memory_order_release);
    ar_race_point("main.stop_set", 0);
    ar_rt_shutdown(rt);           /* "the runtime is dropped here!" */
}

static const ar_variant variants[] = {
    { "buggy", "2 workers; each drops its own tasks as it stops (tokio multi-thread)",
      2, AR_WAKE_DEFERRED, AR_SHUTDOWN_DROP_AS_STOPPED, 0,
      { AR_EXPECT_SOMETIMES(AR_PANIC), AR_EXPECT_SOMETIMES(AR_PANIC), AR_EXPECT_ALWAYS(AR_PANIC) } },
    { "fixed", "2 workers; stop and join every worker, then drop every task",
      2, AR_WAKE_DEFERRED, AR_SHUTDOWN_STOP_THEN_DROP, 0,
      { AR_EXPECT_NEVER, AR_EXPECT_NEVER, AR_EXPECT_NEVER } },
    { "control", "1 worker, drop as stopped (tokio current-thread): the seed saw 0 panics",
      1, AR_WAKE_DEFERRED, AR_SHUTDOWN_DROP_AS_STOPPED, 0,
      { AR_EXPECT_NEVER, AR_EXPECT_NEVER, AR_EXPECT_NEVER } },
};

static const ar_case shutdown_order = {
    .name = "shutdown_order",
    .upstream = "Oxide \"Panic! At The Async Runtime Shutdown\" (Crucible on tokio); tokio #2077",
    .summary = "a producer panics because the runtime dropped its peer task first at shutdown",
    .variants = variants,
    .n_variants = AR_ARRAY_LEN(variants),
    .iteration = iteration,
    .forced = forced,
    .default_run_us = 200,
};

int main(int argc, char **argv) { return ar_case_main(&shutdown_order, argc, argv); }
