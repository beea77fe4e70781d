/* raw_tcp.c: TCP handles on raw nonblocking loopback sockets, for every
 * backend that watches descriptors itself; see raw_tcp.h for the split. */
#include "raw_tcp.h"

#include "host.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define ACCEPTS_PER_EVENT 64

enum tcp_kind { TCP_LISTENER, TCP_CONNECTING, TCP_STREAM };

struct ar_tcp {
    ar_raw_loop *raw;
    ar_link link;               /* in raw->open, then in raw->closed */
    int fd;                     /* -1 once closed */
    enum tcp_kind kind;
    bool closing, reading;
    unsigned watched;           /* AR_RAW_* the backend watches for */
    int connect_err;            /* a connect that failed before the loop saw it */
    void *fn;                   /* accept, connect or read callback, by kind */
    void *arg;
    ar_close_fn close_fn;
    void *close_arg;
    ar_write_queue wq;
    alignas(16) unsigned char backend[]; /* ar_raw_backend.handle_bytes */
};

static _Noreturn void die(const char *what) { ar_host_die("raw tcp", what, errno); }
static void close_fd(int fd) { ar_host_close_fd("raw tcp", fd); }

/* 127.0.0.1:port; port 0 asks the kernel for an ephemeral one. */
static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* The contract's streams have TCP_NODELAY. 0 or -errno. */
static int set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ? -errno : 0;
}

static ar_loop *loop_of(ar_raw_loop *raw) { return (ar_loop *)raw; } /* raw is its first member */

/* ---- the loop's part ---- */

int ar_raw_loop_init(ar_raw_loop *raw, const ar_raw_backend *backend)
{
    raw->backend = backend;
    ar_list_init(&raw->open);
    ar_list_init(&raw->closed);
    raw->finish_posted = raw->freeing = false;
    raw->read_buf = malloc(READ_CHUNK);
    return raw->read_buf ? 0 : -ENOMEM;
}

void ar_raw_loop_destroy(ar_raw_loop *raw)
{
    free(raw->read_buf);
    raw->read_buf = NULL;
}

/* ---- handles ---- */

static ar_tcp *tcp_new(ar_raw_loop *raw, int fd, enum tcp_kind kind)
{
    ar_tcp *h = calloc(1, sizeof *h + raw->backend->handle_bytes);
    if (!h)
        die("calloc(tcp)");
    ar_host_count(AR_RES_TCP, 1);
    h->raw = raw;
    h->fd = fd;
    h->kind = kind;
    ar_list_insert_before(&raw->open, &h->link);
    return h;
}

int ar_raw_fd(const ar_tcp *h) { return h->fd; }
ar_loop *ar_raw_loop_of(const ar_tcp *h) { return loop_of(h->raw); }
void *ar_raw_data(ar_tcp *h) { return h->backend; }

/* Tells the backend what h waits for now; nothing once its descriptor is gone. */
static void update_watch(ar_tcp *h)
{
    if (h->fd < 0)
        return;
    unsigned want = 0;
    if (!h->closing) {
        switch (h->kind) {
        case TCP_LISTENER:
            want = AR_RAW_READ;
            break;
        case TCP_CONNECTING:
            want = AR_RAW_WRITE;
            break;
        case TCP_STREAM:
            want = (h->reading ? AR_RAW_READ : 0u) | (ar_write_queue_empty(&h->wq) ? 0u : AR_RAW_WRITE);
            break;
        }
    }
    if (want != h->watched) {
        h->raw->backend->watch(h, h->watched, want);
        h->watched = want;
    }
}

static void complete_close(ar_tcp *h)
{
    if (h->kind == TCP_CONNECTING) {
        ((ar_connect_fn)h->fn)(h->arg, NULL, h->connect_err ? h->connect_err : -ECANCELED);
    } else {
        ar_write_queue_fail(&h->wq, -ECANCELED);
        if (h->close_fn)
            h->close_fn(h->close_arg);
    }
    free(h);
    ar_host_count(AR_RES_TCP, -1);
}

/* Completes the closes requested so far, in order; one that these callbacks
 * request waits for the next post. */
static void complete_closed(ar_raw_loop *raw)
{
    ar_link batch;
    ar_list_init(&batch);
    ar_list_splice_tail(&batch, &raw->closed);
    while (!ar_list_empty(&batch)) {
        ar_link *first = batch.next;
        ar_list_remove(first);
        complete_close(AR_CONTAINER_OF(first, ar_tcp, link));
    }
}

static void on_finish_post(void *arg, bool cancelled)
{
    ar_raw_loop *raw = arg;     /* cancelled: loop_free's close_all emptied closed already */
    raw->finish_posted = false;
    complete_closed(raw);
}

/* The descriptor goes now; callbacks and the free come from a post (or loop_free). */
static void close_now(ar_tcp *h, ar_close_fn fn, void *arg)
{
    ar_raw_loop *raw = h->raw;
    h->closing = true;
    h->reading = false;
    h->close_fn = fn;
    h->close_arg = arg;
    if (h->fd >= 0) {
        update_watch(h);        /* explicit: a forked child may still hold the socket */
        if (raw->backend->forget)
            raw->backend->forget(h);
        close_fd(h->fd);
        h->fd = -1;
    }
    ar_list_remove(&h->link);
    ar_list_insert_before(&raw->closed, &h->link);
    if (!raw->finish_posted && !raw->freeing) {
        raw->finish_posted = true;
        raw->backend->post(loop_of(raw), on_finish_post, raw);
    }
}

void ar_raw_loop_close_all(ar_raw_loop *raw)
{
    raw->freeing = true;
    while (!ar_list_empty(&raw->open)) {
        ar_tcp *h = AR_CONTAINER_OF(raw->open.next, ar_tcp, link);
        close_now(h, h->close_fn, h->close_arg);
    }
    complete_closed(raw);       /* its callbacks may post, but open no handle here */
}

/* ---- events ---- */

static void on_acceptable(ar_tcp *h)
{
    ar_accept_fn fn = (ar_accept_fn)h->fn;
    for (int i = 0; i < ACCEPTS_PER_EVENT && !h->closing; i++) {
        int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                fn(h->arg, NULL, -errno);
            return;
        }
        int err = set_nodelay(fd);
        if (err) {
            close_fd(fd);
            fn(h->arg, NULL, err);
            continue;
        }
        fn(h->arg, tcp_new(h->raw, fd, TCP_STREAM), 0);
    }
}

static void on_connected(ar_tcp *h)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        h->connect_err = -err;
        close_now(h, NULL, NULL);
        return;
    }
    h->kind = TCP_STREAM;
    update_watch(h);
    ((ar_connect_fn)h->fn)(h->arg, h, 0);
}

static void read_once(ar_tcp *h)
{
    ssize_t n = recv(h->fd, h->raw->read_buf, READ_CHUNK, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {               /* EOF or error: reading stops before the callback */
        n = n < 0 ? -errno : 0;
        h->reading = false;
        update_watch(h);
    }
    ((ar_read_fn)h->fn)(h->arg, n > 0 ? h->raw->read_buf : NULL, n);
}

void ar_raw_ready(ar_tcp *h, unsigned events)
{
    if (h->fd < 0)              /* closed while its event waited in the batch */
        return;
    switch (h->kind) {
    case TCP_LISTENER:
        on_acceptable(h);
        break;
    case TCP_CONNECTING:
        on_connected(h);
        break;
    case TCP_STREAM:
        if (h->reading && (events & AR_RAW_READ))
            read_once(h);
        if (!h->closing && !ar_write_queue_empty(&h->wq) && (events & AR_RAW_WRITE)) {
            ar_write_queue_flush(&h->wq, h->fd, &h->closing);
            update_watch(h);
        }
        break;
    }
}

/* ---- the table's entries ---- */

static int new_socket(void)
{
    return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

ar_tcp *ar_raw_tcp_listen(ar_loop *loop, int backlog, ar_accept_fn fn, void *arg, uint16_t *port)
{
    int fd = new_socket();
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = loopback(0);
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int err = errno;
        close_fd(fd);
        errno = err;
        return NULL;
    }
    ar_tcp *h = tcp_new((ar_raw_loop *)loop, fd, TCP_LISTENER);
    h->fn = (void *)fn;
    h->arg = arg;
    update_watch(h);
    *port = ntohs(sa.sin_port);
    return h;
}

void ar_raw_tcp_connect(ar_loop *loop, uint16_t port, ar_connect_fn fn, void *arg)
{
    ar_tcp *h = tcp_new((ar_raw_loop *)loop, new_socket(), TCP_CONNECTING);
    h->fn = (void *)fn;
    h->arg = arg;
    struct sockaddr_in sa = loopback(port);
    int err = h->fd < 0 ? -errno : set_nodelay(h->fd);
    if (!err && connect(h->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        err = -errno;
    if (err) {                  /* reported from a post, never from here */
        h->connect_err = err;
        close_now(h, NULL, NULL);
        return;
    }
    update_watch(h);
}

int ar_raw_tcp_read_start(ar_tcp *h, ar_read_fn fn, void *arg)
{
    if (h->closing)
        return -EBADF;
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    if (h->reading)
        return -EALREADY;
    h->fn = (void *)fn;
    h->arg = arg;
    h->reading = true;
    update_watch(h);
    return 0;
}

int ar_raw_tcp_read_stop(ar_tcp *h)
{
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    h->reading = false;
    update_watch(h);
    return 0;
}

int ar_raw_tcp_write(ar_tcp *h, const void *buf, size_t len, ar_write_fn fn, void *arg)
{
    if (h->closing)
        return -EBADF;
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    int err = ar_write_queue_push(&h->wq, buf, len, fn, arg);
    if (err)
        return err;
    update_watch(h);            /* sent when writable: callbacks never run from here */
    return 0;
}

void ar_raw_tcp_close(ar_tcp *h, ar_close_fn fn, void *arg)
{
    if (!h->closing)
        close_now(h, fn, arg);
}

int ar_raw_tcp_port(ar_tcp *h, bool peer)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    if (h->fd < 0 || (peer ? getpeername(h->fd, (struct sockaddr *)&sa, &len)
                           : getsockname(h->fd, (struct sockaddr *)&sa, &len)) != 0)
        return -1;
    return ntohs(sa.sin_port);
}

void ar_raw_tcp_reset_on_close(ar_tcp *h)
{
    struct linger l = { .l_onoff = 1, .l_linger = 0 };
    if (h->fd >= 0)
        (void)setsockopt(h->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}
