/* points.c: the runtime's and the channel's race points (see points.h). */
#include "points.h"

const ar_point ar_at_spawn = AR_POINT("rt.spawn",
    "a task was made; its first poll is about to be posted to its home loop (arg: its worker)");
const ar_point ar_at_poll = AR_POINT("rt.poll",
    "a task is about to be polled (arg: its home worker)");
const ar_point ar_at_wake = AR_POINT("rt.wake",
    "a waker was called, before the task's state is looked at (arg: its home worker)");
const ar_point ar_at_abort = AR_POINT("rt.abort",
    "a join handle asked for its task's cancellation (arg: its worker)");
const ar_point ar_at_drop_aborted = AR_POINT("rt.drop_aborted",
    "an aborted task was taken off its loop and is about to be dropped (arg: its worker)");
const ar_point ar_at_drop_task = AR_POINT("rt.drop_task",
    "shutdown took a task that never completed and is about to drop it (arg: its worker)");
const ar_point ar_at_worker_loop_exited = AR_POINT("rt.worker.loop_exited",
    "a worker's loop returned from run (arg: the worker)");
const ar_point ar_at_worker_done = AR_POINT("rt.worker.done",
    "a worker dropped what the shutdown policy has it drop; its thread ends (arg: the worker)");
const ar_point ar_at_shutdown_stop = AR_POINT("rt.shutdown.stop",
    "shutdown is about to stop a worker's loop (arg: the worker)");
const ar_point ar_at_shutdown_joined = AR_POINT("rt.shutdown.joined",
    "every worker thread was joined; what is left is dropped next (arg: their number)");
const ar_point ar_at_chan_send = AR_POINT("chan.send",
    "a send, before the channel's lock is taken (arg: 0)");
const ar_point ar_at_chan_sender_drop = AR_POINT("chan.sender_drop",
    "a sender is dropped, before the channel's lock is taken (arg: 0)");
const ar_point ar_at_chan_receiver_drop = AR_POINT("chan.receiver_drop",
    "the receiver is dropped, before the channel's lock is taken (arg: 0)");

const ar_point *const ar_runtime_points[] = {
    &ar_at_spawn, &ar_at_poll, &ar_at_wake, &ar_at_abort, &ar_at_drop_aborted,
    &ar_at_drop_task, &ar_at_worker_loop_exited, &ar_at_worker_done, &ar_at_shutdown_stop,
    &ar_at_shutdown_joined, &ar_at_chan_send, &ar_at_chan_sender_drop,
    &ar_at_chan_receiver_drop, NULL,
};
