/* raw_tcp.h: the runner's TCP handles on raw nonblocking sockets, shared by
 * every backend that drives its own descriptors (epoll.c, libevent.c, libev.c).
 *
 * Everything of tcp_* that does not depend on how a loop watches a
 * descriptor is here: listen and the accept loop, connect and its
 * completion, reads, the write queue, closing (the descriptor goes at once,
 * callbacks come later), the loop's open handles, and loop_free's first step.
 * A backend gives three things:
 *
 *   struct ar_loop { ar_raw_loop raw; ... }   ar_raw_loop as its FIRST member
 *                                             (the tcp_* entries take ar_loop *)
 *   ar_raw_backend { watch, forget, post, handle_bytes }
 *   ar_raw_ready(h, events)                   when h's descriptor is ready
 *
 * and fills its table with AR_RAW_TCP_ENTRIES. Closed handles wait on a list
 * until one post completes them (cancelled writes, the close or
 * failed-connect callback, the free), so a handle outlives the event batch
 * that may still name it; loop_free completes them itself, first, so every
 * write and close callback comes before the backend cancels its posts.
 */
#ifndef ASYNCRACE_RAW_TCP_H
#define ASYNCRACE_RAW_TCP_H

#include "list.h"
#include "runner.h"
#include "write_queue.h"

#include <stdbool.h>
#include <stddef.h>

/* What a descriptor is watched for; also what ar_raw_ready reports. A
 * backend reports a hang-up or an error as both. */
enum { AR_RAW_READ = 1u, AR_RAW_WRITE = 2u };

typedef struct ar_raw_backend {
    /* Makes the loop watch h's descriptor (ar_raw_fd) for events instead of
     * was (both AR_RAW_* sets; 0 = not at all). Called only on a change. */
    void (*watch)(ar_tcp *h, unsigned was, unsigned events);
    /* h's descriptor closes right after this, and h is watched for nothing:
     * release what names it. May be NULL. */
    void (*forget)(ar_tcp *h);
    /* The backend's post(): completions of closes go through it. */
    void (*post)(ar_loop *loop, ar_post_fn fn, void *arg);
    /* Zeroed bytes in every handle for the backend (ar_raw_data), 16-aligned. */
    size_t handle_bytes;
} ar_raw_backend;

typedef struct ar_raw_loop {
    const ar_raw_backend *backend;
    ar_link open;               /* every handle not yet closed */
    ar_link closed;             /* closed, waiting for their callbacks and free */
    bool finish_posted;         /* a post will complete closed */
    bool freeing;               /* in close_all: it completes closed itself */
    char *read_buf;             /* every read of the loop lands here */
} ar_raw_loop;

/* 0 or -ENOMEM. */
int ar_raw_loop_init(ar_raw_loop *raw, const ar_raw_backend *backend);
/* loop_free's first step, on the calling thread: closes every open handle
 * (no close callback unless tcp_close asked for one), then completes every
 * close in the order requested: pending writes fail with -ECANCELED, pending
 * connects get (NULL, -ECANCELED), close callbacks run. What those callbacks
 * post stays queued, for the backend to cancel next. */
void ar_raw_loop_close_all(ar_raw_loop *raw);
/* After close_all: frees the read buffer. */
void ar_raw_loop_destroy(ar_raw_loop *raw);

/* The backend's event: h's descriptor is ready for events (AR_RAW_*). A
 * handle closed since its event was queued is skipped. */
void ar_raw_ready(ar_tcp *h, unsigned events);
int ar_raw_fd(const ar_tcp *h);                 /* -1 once closed */
ar_loop *ar_raw_loop_of(const ar_tcp *h);
void *ar_raw_data(ar_tcp *h);                   /* handle_bytes for the backend */

ar_tcp *ar_raw_tcp_listen(ar_loop *loop, int backlog, ar_accept_fn fn, void *arg, uint16_t *port);
void ar_raw_tcp_connect(ar_loop *loop, uint16_t port, ar_connect_fn fn, void *arg);
int ar_raw_tcp_read_start(ar_tcp *h, ar_read_fn fn, void *arg);
int ar_raw_tcp_read_stop(ar_tcp *h);
int ar_raw_tcp_write(ar_tcp *h, const void *buf, size_t len, ar_write_fn fn, void *arg);
void ar_raw_tcp_close(ar_tcp *h, ar_close_fn fn, void *arg);
int ar_raw_tcp_port(ar_tcp *h, bool peer);
void ar_raw_tcp_reset_on_close(ar_tcp *h);

/* The TCP part of an ar_runner, for a backend on this module. */
#define AR_RAW_TCP_ENTRIES \
    .tcp_listen = ar_raw_tcp_listen, \
    .tcp_connect = ar_raw_tcp_connect, \
    .tcp_read_start = ar_raw_tcp_read_start, \
    .tcp_read_stop = ar_raw_tcp_read_stop, \
    .tcp_write = ar_raw_tcp_write, \
    .tcp_close = ar_raw_tcp_close, \
    .tcp_port = ar_raw_tcp_port, \
    .tcp_reset_on_close = ar_raw_tcp_reset_on_close

#endif
