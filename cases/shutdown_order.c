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
 * forced mode imposes the timeline above (see forced() below).
 */
#include "asyncrace.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Where this case's threads race (the runtime's own points are in points.h). */
static const ar_point at_before_send = AR_POINT("producer.before_send",
    "stop was false: the producer is about to send i (arg: i)");
static const ar_point at_parked = AR_POINT("producer.parked",
    "the producer awaits the reply to i and is parked (arg: i)");
static const ar_point at_stop_set = AR_POINT("main.stop_set",
    "main set stop and is about to drop the runtime (arg: 0)");

/* ---- the tasks ---- */

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
            ar_race_point(&at_before_send, (long)t->i);
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
            ar_race_point(&at_parked, (long)t->i);
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

/* ---- the scenario: the seed's main() body, and its forced interleaving ---- */

typedef struct {
    ar_rt *rt;
    bool two_workers;
    ar_gate producer_ready;       /* the producer reached its first send */
    ar_gate worker0_exited;       /* worker 0's loop returned */
    ar_gate producer_parked;      /* the producer awaits a reply */
    ar_gate worker0_dropped;      /* worker 0 dropped its tasks */
} scenario;

/* forced: the timeline above. The producer sends only once worker 0's loop
 * has exited; worker 0 drops its tasks only once the producer is parked;
 * worker 1 is told to stop only after worker 0 dropped its tasks and worker 1
 * ran what those drops posted to it. */
static void forced(void *ctx, const ar_point *p, long arg)
{
    scenario *s = ctx;
    if (p == &at_before_send) {
        ar_gate_open(&s->producer_ready);
        if (s->two_workers)
            ar_gate_wait(&s->worker0_exited);
    } else if (p == &at_parked) {
        ar_gate_open(&s->producer_parked);
    } else if (p == &ar_at_worker_loop_exited && arg == 0 && s->two_workers) {
        ar_gate_open(&s->worker0_exited);
        ar_gate_wait(&s->producer_parked);
    } else if (p == &ar_at_worker_done && arg == 0) {
        ar_gate_open(&s->worker0_dropped);
    } else if (p == &ar_at_shutdown_stop && arg == 1) {
        if (ar_gate_wait(&s->worker0_dropped))
            ar_rt_drain(s->rt, 1);
    }
}

static void iteration(const ar_iter *it, void *ctx)
{
    const ar_variant *v = it->variant;
    scenario *s = ctx;
    ar_gate_init(&s->producer_ready, "producer ready");
    ar_gate_init(&s->worker0_exited, "worker 0's loop exited");
    ar_gate_init(&s->producer_parked, "producer parked");
    ar_gate_init(&s->worker0_dropped, "worker 0 dropped its tasks");
    s->two_workers = it->workers >= 2;
    s->rt = ar_rt_new(it->runner, it->workers, v->wake, v->shutdown);
    _Atomic bool stop = false;

    worker_task *w = malloc(sizeof *w);
    producer_task *p = calloc(1, sizeof *p);
    if (!w || !p) abort();
    ar_chan_new(s->rt, NULL, &p->messages, &w->messages);
    ar_chan_new(s->rt, NULL, &w->replies, &p->replies);
    p->stop = &stop;
    ar_spawn(s->rt, 0, worker_poll, worker_drop, w);
    ar_spawn(s->rt, it->workers - 1, producer_poll, producer_drop, p);

    if (it->mode == AR_FORCED)
        ar_gate_wait(&s->producer_ready);
    else
        ar_sleep_us(it->run_us);  /* the seed's sleep(10 ms), shortened */
    atomic_store_explicit(&stop, true, memory_order_release);
    ar_race_point(&at_stop_set, 0);
    ar_rt_shutdown(s->rt);        /* "the runtime is dropped here!" */
}

/* ---- the variants ---- */

static const ar_variant variants[] = {
    { .name = "buggy", .what = "2 workers; each drops its own tasks as it stops (tokio multi-thread)",
      .workers = 2, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_DROP_AS_STOPPED,
      .expect = AR_REPRODUCES(AR_PANIC),
      /* libuv's loop wakes its worker so promptly that the window almost never opens
       * on its own; chaos mode's delays open it (about 4 %). */
      .rarely = (const ar_rarely[]){
          { "libuv", AR_NATURAL, "libuv shows it about once in 13,000 iterations (3 of "
            "39,471 with a second cell running beside it); chaos shows it at about 4 %" },
          { NULL } } },
    { .name = "fixed", .what = "2 workers; stop and join every worker, then drop every task",
      .workers = 2, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .twin = "buggy", .expect = AR_NEVER_IN_ANY_MODE },
    { .name = "control", .what = "1 worker, drop as stopped (tokio current-thread): the seed saw 0 panics",
      .workers = 1, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_DROP_AS_STOPPED,
      .twin = "buggy", .expect = AR_NEVER_IN_ANY_MODE },
};

static const ar_case shutdown_order = {
    .name = "shutdown_order",
    .upstream = "Oxide \"Panic! At The Async Runtime Shutdown\" (Crucible on tokio); tokio #2077",
    .summary = "a producer panics because the runtime dropped its peer task first at shutdown",
    .variants = variants,
    .n_variants = AR_ARRAY_LEN(variants),
    .points = (const ar_point *const[]){ &at_before_send, &at_parked, &at_stop_set, NULL },
    .scenario_size = sizeof(scenario),
    .iteration = iteration,
    .forced = forced,
    .default_run_us = 200,
};

int main(int argc, char **argv) { return ar_case_main(&shutdown_order, argc, argv); }
