/* points.h: the runtime's and the channel's race points. A forced hook
 * compares a point's address with these; --list prints them with what they
 * say. Each line: what has just happened there, and what arg is. */
#ifndef ASYNCRACE_RUNTIME_POINTS_H
#define ASYNCRACE_RUNTIME_POINTS_H

#include "race.h"

extern const ar_point ar_at_spawn;             /* rt.spawn: a task was made; its first poll is about to be posted (arg: its worker) */
extern const ar_point ar_at_poll;              /* rt.poll: a task is about to be polled (arg: its home worker) */
extern const ar_point ar_at_wake;              /* rt.wake: a waker was called, before the task's state is looked at (arg: its home worker) */
extern const ar_point ar_at_abort;             /* rt.abort: a join handle asked for its task's cancellation (arg: its worker) */
extern const ar_point ar_at_drop_aborted;      /* rt.drop_aborted: an aborted task was taken off its loop, about to be dropped (arg: its worker) */
extern const ar_point ar_at_drop_task;         /* rt.drop_task: shutdown took a task that never completed, about to drop it (arg: its worker) */
extern const ar_point ar_at_worker_loop_exited;/* rt.worker.loop_exited: a worker's loop returned from run (arg: the worker) */
extern const ar_point ar_at_worker_done;       /* rt.worker.done: a worker dropped what the policy has it drop, its thread ends (arg: the worker) */
extern const ar_point ar_at_shutdown_stop;     /* rt.shutdown.stop: shutdown is about to stop a worker's loop (arg: the worker) */
extern const ar_point ar_at_shutdown_joined;   /* rt.shutdown.joined: every worker thread was joined (arg: their number) */
extern const ar_point ar_at_chan_send;         /* chan.send: a send, before the channel's lock is taken (arg: 0) */
extern const ar_point ar_at_chan_sender_drop;  /* chan.sender_drop: a sender is dropped, before the lock (arg: 0) */
extern const ar_point ar_at_chan_receiver_drop;/* chan.receiver_drop: the receiver is dropped, before the lock (arg: 0) */

/* All of the above, NULL-terminated, for --list. */
extern const ar_point *const ar_runtime_points[];

#endif
