/* write_queue.h: the write queue of a nonblocking stream socket.
 *
 * The runners on raw nonblocking sockets (raw_tcp.c) must give tcp_write
 * the contract's semantics themselves: the data is copied,
 * writes go out in order (partial sends resume where they stopped), each
 * callback comes from the loop (never from tcp_write) in the order of the
 * writes, a send error fails everything queued, and closing fails what is
 * left with -ECANCELED. This is that queue; raw_tcp.c asks its backend to
 * watch for writability.
 */
#ifndef ASYNCRACE_WRITE_QUEUE_H
#define ASYNCRACE_WRITE_QUEUE_H

#include "runner.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct ar_wreq ar_wreq;

typedef struct ar_write_queue {
    ar_wreq *head, *tail;       /* zero-initialised = empty */
} ar_write_queue;

static inline bool ar_write_queue_empty(const ar_write_queue *q) { return !q->head; }

/* Copies buf[0..len) to the tail. 0 or -ENOMEM. Calls nothing. */
int ar_write_queue_push(ar_write_queue *q, const void *buf, size_t len, ar_write_fn fn, void *arg);
/* Sends to fd until the queue is empty, the socket would block or *closing
 * turns true (a callback closed the stream). Each finished write gets
 * fn(arg, 0); a send error fails every queued write with -errno. */
void ar_write_queue_flush(ar_write_queue *q, int fd, const bool *closing);
/* Fails every queued write with status; writes queued by these callbacks
 * wait for the next flush. */
void ar_write_queue_fail(ar_write_queue *q, int status);

#endif
