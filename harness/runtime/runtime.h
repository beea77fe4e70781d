/* runtime.h: the tiny async runtime the cases are written in.
 *
 * Tasks are poll functions over a state; wakers are counted references to a
 * task; a runtime is W worker threads, each running its own loop from the
 * chosen runner. Two policies are switches, because the documented failures
 * turn on them:
 *
 *   wake     inline        re-poll an idle task on the waker's stack (ngx-rust
 *                          before PR #295)
 *            deferred      always post the task to its home loop (PR #295)
 *            defer_nested  defer only when the wake happens inside some poll,
 *                          else inline (the half-fix rejected in #295)
 *   shutdown drop_as_stopped  each worker drops its own tasks as it stops while
 *                          others may still be polling (tokio multi-thread)
 *            stop_then_drop  stop and join every worker, then drop every task
 *
 * Everything that crosses threads goes through the runner's locks and the
 * race points of points.h, so chaos and forced modes (and sim's scheduler)
 * can reach it. The runtime reports failures (hang, wrong_thread) through
 * race.h, the layer below it; it never sees the case plumbing above.
 */
#ifndef ASYNCRACE_RUNTIME_H
#define ASYNCRACE_RUNTIME_H

#include "points.h"
#include "race.h"
#include "runner.h"

typedef enum { AR_WAKE_INLINE, AR_WAKE_DEFERRED, AR_WAKE_DEFER_NESTED } ar_wake_policy;
typedef enum { AR_SHUTDOWN_DROP_AS_STOPPED, AR_SHUTDOWN_STOP_THEN_DROP } ar_shutdown_policy;
typedef enum { AR_PENDING = 0, AR_READY = 1 } ar_poll;

typedef struct ar_rt ar_rt;
typedef struct ar_task ar_task;
typedef struct ar_waker ar_waker;   /* a counted reference to one task */

typedef struct ar_cx {
    ar_rt *rt;
    const ar_waker *waker;          /* the polled task's waker: clone it to keep it */
    int worker;                     /* where this poll runs (AR_MAIN_WORKER for block_on) */
} ar_cx;

typedef ar_poll (*ar_poll_fn)(void *state, ar_cx *cx);
typedef void (*ar_drop_fn)(void *state);

#define AR_MAIN_WORKER (-1)         /* the thread inside ar_block_on */
#define AR_NO_WORKER (-2)           /* any other thread */

ar_rt *ar_rt_new(const ar_runner *runner, int workers, ar_wake_policy wake,
                 ar_shutdown_policy shutdown);
/* Stops every worker and drops every task as the shutdown policy says, then
 * frees the runtime. Called once, from the thread that made it. */
void ar_rt_shutdown(ar_rt *rt);
int ar_rt_workers(const ar_rt *rt);
const ar_runner *ar_rt_runner(const ar_rt *rt);
/* The loop of a worker (or AR_MAIN_WORKER), for timers and TCP handles. */
ar_loop *ar_rt_loop(const ar_rt *rt, int worker);

/* Blocks the calling thread (not that worker's own) until the worker's loop
 * has run everything posted to it before this call: a barrier for forced
 * interleavings. False when the deadline passed first. */
bool ar_rt_drain(ar_rt *rt, int worker);

/* Spawn a task onto a worker: it is first polled on that worker's loop. The
 * runtime owns state from here on and calls drop(state) exactly once: when the
 * task completes, or at shutdown. */
void ar_spawn(ar_rt *rt, int worker, ar_poll_fn poll, ar_drop_fn drop, void *state);
/* Spawn and keep a handle: to await the task's end, or to cancel it. */
typedef struct ar_join ar_join;
ar_join *ar_spawn_join(ar_rt *rt, int worker, ar_poll_fn poll, ar_drop_fn drop, void *state);
/* True once the task has ended (completed or dropped); else registers cx's waker. */
bool ar_join_poll(ar_join *j, ar_cx *cx);
/* True when the task ended by being dropped rather than by completing. */
bool ar_join_was_cancelled(const ar_join *j);
/* Cancel, like tokio's JoinHandle::abort: the task is never polled again and
 * is dropped on its home loop's next turn (at once if it is idle there). */
void ar_join_abort(ar_join *j);
void ar_join_drop(ar_join *j);              /* detaches; the task runs on */

/* Run a task on the calling thread, on the runtime's main loop, until it
 * completes. False when the iteration deadline passed first (then the task is
 * dropped at shutdown). */
bool ar_block_on(ar_rt *rt, ar_poll_fn poll, ar_drop_fn drop, void *state);
/* The two waits a scenario's main thread does through block_on. */
/* Until the task ended (completed or dropped); false at the deadline. */
bool ar_block_on_join(ar_rt *rt, ar_join *j);

/* The worker whose loop runs on this thread: 0..W-1, AR_MAIN_WORKER or AR_NO_WORKER. */
int ar_current_worker(void);
/* True while this thread is inside some task's poll. */
bool ar_in_poll(void);

ar_waker *ar_waker_clone(const ar_waker *w);
void ar_wake(ar_waker *w);                  /* wakes and releases */
void ar_wake_by_ref(const ar_waker *w);
void ar_waker_drop(ar_waker *w);
bool ar_waker_will_wake(const ar_waker *a, const ar_waker *b);
/* Keeps cx's waker in *slot (which may be NULL): clones it unless *slot
 * already wakes the same task, dropping what was there. The register step of
 * every "park until woken" in a poll function. */
void ar_waker_register(ar_waker **slot, const ar_cx *cx);
/* Takes the waker out of *slot and wakes it (nothing when empty). */
void ar_waker_take_wake(ar_waker **slot);

/* An unbounded mpsc channel of pointers. item_drop (may be NULL) destroys the
 * items still queued when the receiver is dropped or the channel freed. */
typedef struct ar_sender ar_sender;
typedef struct ar_receiver ar_receiver;
typedef enum { AR_RECV_ITEM, AR_RECV_PENDING, AR_RECV_CLOSED } ar_recv_result;

void ar_chan_new(ar_rt *rt, ar_drop_fn item_drop, ar_sender **tx, ar_receiver **rx);
ar_sender *ar_sender_clone(ar_sender *tx);
void ar_sender_drop(ar_sender *tx);         /* the last one closes the channel */
/* False when the receiver is gone: the item was not taken. */
bool ar_send(ar_sender *tx, void *item);
/* ITEM with *item set, PENDING with cx's waker registered, or CLOSED when
 * empty and every sender is gone. */
ar_recv_result ar_recv(ar_receiver *rx, ar_cx *cx, void **item);
void ar_receiver_drop(ar_receiver *rx);     /* drops queued items */

/* A oneshot is a channel whose one send consumes the sender. */
typedef ar_sender ar_oneshot_tx;
typedef ar_receiver ar_oneshot_rx;
static inline void ar_oneshot_new(ar_rt *rt, ar_drop_fn item_drop,
                                  ar_oneshot_tx **tx, ar_oneshot_rx **rx)
{
    ar_chan_new(rt, item_drop, tx, rx);
}
/* Sends and drops the sender. False when the receiver is gone (the item was not taken). */
bool ar_oneshot_send(ar_oneshot_tx *tx, void *item);
/* Blocks the calling thread (through block_on) until rx has an item, or is
 * closed, or the deadline passed. Then drops rx. ITEM with *item set, CLOSED,
 * or PENDING at the deadline. */
ar_recv_result ar_block_on_recv(ar_rt *rt, ar_receiver *rx, void **item);

#endif
