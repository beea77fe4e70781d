/* post_queue.h: the FIFO behind every runner's post().
 *
 * Each runner needs the same thing for post(): a queue any thread can append
 * to without blocking on the loop, that the loop's own thread drains one
 * snapshot per turn, and that remembers whether a wake-up is already on its
 * way so a burst of posts costs one wake-up. This is that queue, guarded by a
 * pthread mutex (so TSan sees the hand-over from poster to loop). How the loop
 * is woken (uv_async_send, event_active, an eventfd) stays in each runner:
 * push only says whether the caller has to do it.
 */
#ifndef ASYNCRACE_POST_QUEUE_H
#define ASYNCRACE_POST_QUEUE_H

#include "runner.h"

#include <pthread.h>
#include <stdbool.h>

typedef struct ar_post_node ar_post_node;

typedef struct ar_post_queue {
    pthread_mutex_t lock;       /* guards the fields below */
    ar_post_node *head, *tail;
    bool wake_pending;          /* a wake-up is on its way, or not needed until take */
    bool muted;                 /* push never asks for a wake-up any more */
} ar_post_queue;

/* 0 or an error number from pthread_mutex_init. */
int ar_post_queue_init(ar_post_queue *q);
/* The queue must be empty; a mutex that cannot be destroyed (still held)
 * is a broken loop: abort. */
void ar_post_queue_destroy(ar_post_queue *q);

/* Appends fn(arg) and marks a wake-up pending. Returns true when the caller
 * must wake the loop: none was pending, the queue is not muted and may_wake
 * (false when the loop will look at the queue before it sleeps anyway).
 * Aborts when out of memory. */
bool ar_post_queue_push(ar_post_queue *q, ar_post_fn fn, void *arg, bool may_wake);
/* Takes the whole queue (NULL when empty) and clears the pending wake-up. */
ar_post_node *ar_post_queue_take(ar_post_queue *q);
bool ar_post_queue_wake_pending(ar_post_queue *q);
bool ar_post_queue_nonempty(ar_post_queue *q);
/* From now on push never asks for a wake-up (the wake handle is going away). */
void ar_post_queue_mute(ar_post_queue *q);

/* Calls every fn(arg, cancelled) of a taken list in order and frees it. */
void ar_post_run(ar_post_node *list, bool cancelled);
/* Runs everything queued with cancelled = true, also what those callbacks post. */
void ar_post_queue_cancel_all(ar_post_queue *q);

#endif
