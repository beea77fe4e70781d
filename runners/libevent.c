/* libevent.c: the runner on libevent 2.1 with pthreads locking on.
 *
 * One event_base per loop (precise monotonic timers). A turn is one
 * event_base_loop(EVLOOP_ONCE): wait, then run every active callback.
 * Posts go to a mutex-guarded FIFO; the first post after a drain activates a
 * user event with event_active(), which libevent makes thread-safe and turns
 * into a wake-up only when another thread's loop sleeps. libevent would run a
 * re-activated event in the same round, so the wake callback ends the round
 * after its snapshot: re-posts wait for the next turn, and the active I/O
 * events left behind stay queued ahead of them.
 * Timers are one-shot events. Listeners are evconnlistener; streams are raw
 * read/write events on nonblocking sockets with our own write queue. Closing
 * and failed connects finish through the post queue, so loop_free completes
 * them like any other post.
 */
#include "host.h"
#include "posix_sync.h"
#include "loopback.h"
#include "post_queue.h"
#include "runner.h"
#include "write_queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536

enum tcp_kind { TCP_LISTENER, TCP_CONNECTING, TCP_STREAM };

struct ar_tcp {
    ar_loop *loop;
    enum tcp_kind kind;
    int fd;
    struct evconnlistener *listener;
    struct event *rev, *wev;
    bool rev_on, wev_on;        /* added to the base */
    bool closing, reading;
    int connect_err;            /* a connect that failed before libevent saw it */
    void *fn;                   /* accept, connect or read callback, by kind */
    void *arg;
    ar_close_fn close_fn;
    void *close_arg;
    ar_write_queue wq;
    ar_tcp *prev, *next;        /* the loop's open handles */
};

struct ar_timer {
    ar_loop *loop;
    struct event *ev;
    ar_timer_fn fn;
    void *arg;
    ar_timer *prev, *next;      /* the loop's pending timers, for loop_free */
};

struct ar_loop {
    struct event_base *base;
    struct event *wake;
    ar_post_queue posts;        /* its wake_pending: wake is active, or about to be */
    _Atomic bool stop;
    ar_timer *timers;
    ar_tcp *handles;
    char *read_buf;
};

static void die(const char *what)
{
    fprintf(stderr, "libevent runner: %s: %s\n", what, strerror(errno));
    abort();
}

static void close_fd(int fd)
{
    if (fd >= 0 && close(fd) != 0 && errno != EINTR)
        die("close");
}

static void check(int rc, const char *what)
{
    if (rc != 0)
        die(what);
}

/* ---- posts and wake-ups ---- */

static void post(ar_loop *loop, ar_post_fn fn, void *arg)
{
    if (ar_post_queue_push(&loop->posts, fn, arg, true))
        event_active(loop->wake, EV_READ, 0);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    ar_loop *loop = arg;
    if (atomic_load(&loop->stop)) {
        /* Stopping before this snapshot: keep the queue, and its wake-up, for later. */
        if (ar_post_queue_wake_pending(&loop->posts))
            event_active(loop->wake, EV_READ, 0);
        event_base_loopbreak(loop->base);
        return;
    }
    ar_post_run(ar_post_queue_take(&loop->posts), false);
    event_base_loopbreak(loop->base); /* one snapshot per turn: later posts, next turn */
}

/* ---- timers ---- */

static void timer_unlink(ar_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        t->loop->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static void timer_free(ar_timer *t)
{
    timer_unlink(t);
    event_free(t->ev);
    free(t);
    ar_host_count(AR_RES_TIMER, -1);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    ar_timer *t = arg;
    timer_unlink(t);
    t->fn(t->arg);
    event_free(t->ev);          /* allowed inside its own callback */
    free(t);
    ar_host_count(AR_RES_TIMER, -1);
}

static ar_timer *timer_start(ar_loop *loop, uint64_t ms, ar_timer_fn fn, void *arg)
{
    ar_timer *t = calloc(1, sizeof *t);
    if (!t || !(t->ev = event_new(loop->base, -1, 0, on_timer, t)))
        die("timer_start");
    ar_host_count(AR_RES_TIMER, 1);
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->next = loop->timers;
    if (t->next)
        t->next->prev = t;
    loop->timers = t;
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    check(event_base_update_cache_time(loop->base), "event_base_update_cache_time");
    check(event_add(t->ev, &tv), "event_add(timer)");
    return t;
}

static void timer_cancel(ar_timer *t) { timer_free(t); }

/* ---- TCP helpers ---- */

static void switch_event(struct event *ev, bool *on, bool want)
{
    if (*on == want)
        return;
    check(want ? event_add(ev, NULL) : event_del(ev), want ? "event_add" : "event_del");
    *on = want;
}

static void update_events(ar_tcp *h)
{
    if (h->closing || h->kind == TCP_LISTENER)
        return;
    switch_event(h->rev, &h->rev_on, h->reading);
    switch_event(h->wev, &h->wev_on, h->kind == TCP_CONNECTING || !ar_write_queue_empty(&h->wq));
}

static void on_readable(evutil_socket_t fd, short what, void *arg);
static void on_writable(evutil_socket_t fd, short what, void *arg);

static ar_tcp *tcp_new(ar_loop *loop, int fd, enum tcp_kind kind)
{
    ar_tcp *h = calloc(1, sizeof *h);
    if (!h)
        die("calloc(tcp)");
    ar_host_count(AR_RES_TCP, 1);
    h->loop = loop;
    h->fd = fd;
    h->kind = kind;
    if (fd >= 0 && kind != TCP_LISTENER) {
        h->rev = event_new(loop->base, fd, EV_READ | EV_PERSIST, on_readable, h);
        h->wev = event_new(loop->base, fd, EV_WRITE | EV_PERSIST, on_writable, h);
        if (!h->rev || !h->wev)
            die("event_new(tcp)");
    }
    h->next = loop->handles;
    if (h->next)
        h->next->prev = h;
    loop->handles = h;
    return h;
}

static void tcp_unlink(ar_tcp *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        h->loop->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
}



static void finish_close(void *arg, bool cancelled)
{
    ar_tcp *h = arg;
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

/* The descriptor goes now; callbacks and the free come from the post queue. */
static void close_now(ar_tcp *h, ar_close_fn fn, void *arg)
{
    h->closing = true;
    h->reading = false;
    h->close_fn = fn;
    h->close_arg = arg;
    if (h->listener) {
        evconnlistener_free(h->listener); /* closes the socket */
        h->listener = NULL;
    }
    if (h->rev) {               /* freeing an event also deactivates it */
        event_free(h->rev);
        event_free(h->wev);
        h->rev = h->wev = NULL;
        close_fd(h->fd);
    }
    h->fd = -1;
    tcp_unlink(h);
    post(h->loop, finish_close, h);
}

/* ---- TCP events ---- */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int len, void *arg)
{
    ar_tcp *h = arg;
    int err = set_nodelay(fd);
    if (err) {
        close_fd(fd);
        ((ar_accept_fn)h->fn)(h->arg, NULL, err);
        return;
    }
    ((ar_accept_fn)h->fn)(h->arg, tcp_new(h->loop, fd, TCP_STREAM), 0);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    ar_tcp *h = arg;
    ((ar_accept_fn)h->fn)(h->arg, NULL, -EVUTIL_SOCKET_ERROR());
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
    update_events(h);
    ((ar_connect_fn)h->fn)(h->arg, h, 0);
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    ar_tcp *h = arg;
    ssize_t n = recv(h->fd, h->loop->read_buf, READ_CHUNK, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {               /* EOF or error: reading stops before the callback */
        n = n < 0 ? -errno : 0;
        h->reading = false;
        update_events(h);
    }
    ((ar_read_fn)h->fn)(h->arg, n > 0 ? h->loop->read_buf : NULL, n);
}

static void flush_writes(ar_tcp *h)
{
    ar_write_queue_flush(&h->wq, h->fd, &h->closing);
    update_events(h);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    ar_tcp *h = arg;
    if (h->kind == TCP_CONNECTING)
        on_connected(h);
    else
        flush_writes(h);
}

/* ---- TCP API ---- */

static ar_tcp *tcp_listen(ar_loop *loop, int backlog, ar_accept_fn fn, void *arg, uint16_t *port)
{
    struct sockaddr_in sa = loopback(0);
    ar_tcp *h = tcp_new(loop, -1, TCP_LISTENER);
    h->fn = (void *)fn;
    h->arg = arg;
    h->listener = evconnlistener_new_bind(loop->base, on_accept, h,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                          backlog > 0 ? backlog : SOMAXCONN,
                                          (struct sockaddr *)&sa, sizeof sa);
    socklen_t len = sizeof sa;
    if (h->listener) {
        h->fd = evconnlistener_get_fd(h->listener);
        evconnlistener_set_error_cb(h->listener, on_accept_error);
    }
    if (!h->listener || getsockname(h->fd, (struct sockaddr *)&sa, &len) != 0) {
        int err = errno;        /* from bind or listen inside evconnlistener_new_bind */
        if (h->listener)
            evconnlistener_free(h->listener);
        tcp_unlink(h);
        free(h);
        ar_host_count(AR_RES_TCP, -1);
        errno = err;
        return NULL;
    }
    *port = ntohs(sa.sin_port);
    return h;
}

static void tcp_connect(ar_loop *loop, uint16_t port, ar_connect_fn fn, void *arg)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ar_tcp *h = tcp_new(loop, fd, TCP_CONNECTING);
    h->fn = (void *)fn;
    h->arg = arg;
    struct sockaddr_in sa = loopback(port);
    int err = fd < 0 ? -errno : set_nodelay(fd);
    if (!err && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        err = -errno;
    if (err) {                  /* reported from the post queue, never from here */
        h->connect_err = err;
        close_now(h, NULL, NULL);
        return;
    }
    update_events(h);
}

static int tcp_read_start(ar_tcp *h, ar_read_fn fn, void *arg)
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
    update_events(h);
    return 0;
}

static int tcp_read_stop(ar_tcp *h)
{
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    h->reading = false;
    update_events(h);
    return 0;
}

static int tcp_write(ar_tcp *h, const void *buf, size_t len, ar_write_fn fn, void *arg)
{
    if (h->closing)
        return -EBADF;
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    int err = ar_write_queue_push(&h->wq, buf, len, fn, arg);
    if (err)
        return err;
    update_events(h);           /* sent when writable: callbacks never run from here */
    return 0;
}

static void tcp_close(ar_tcp *h, ar_close_fn fn, void *arg)
{
    if (!h->closing)
        close_now(h, fn, arg);
}

#define FD_OF(h) ((h)->fd)
static int tcp_port(ar_tcp *h, bool peer)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = FD_OF(h);
    if (fd < 0 || (peer ? getpeername(fd, (struct sockaddr *)&sa, &len)
                        : getsockname(fd, (struct sockaddr *)&sa, &len)) != 0)
        return -1;
    return ntohs(sa.sin_port);
}

static void tcp_reset_on_close(ar_tcp *h)
{
    struct linger l = { .l_onoff = 1, .l_linger = 0 };
    if (FD_OF(h) >= 0)
        (void)setsockopt(FD_OF(h), SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

/* ---- loops ---- */

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static int threads_rc = -1;

static void use_pthreads(void) { threads_rc = evthread_use_pthreads(); }

static struct event_base *new_base(void)
{
    struct event_config *cfg = event_config_new();
    if (!cfg)
        return NULL;
    struct event_base *base = NULL;
    /* Without it, libevent's clock is CLOCK_MONOTONIC_COARSE (4 ms steps here). */
    if (event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == 0)
        base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static ar_loop *loop_new(void)
{
    pthread_once(&threads_once, use_pthreads);
    if (threads_rc != 0)
        return NULL;
    ar_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    atomic_init(&loop->stop, false);
    loop->base = new_base();
    loop->read_buf = malloc(READ_CHUNK);
    if (loop->base)
        loop->wake = event_new(loop->base, -1, EV_PERSIST, on_wake, loop);
    if (!loop->wake || !loop->read_buf || ar_post_queue_init(&loop->posts) != 0) {
        if (loop->wake)
            event_free(loop->wake);
        if (loop->base)
            event_base_free(loop->base);
        free(loop->read_buf);
        free(loop);
        return NULL;
    }
    ar_host_count(AR_RES_LOOP, 1);
    return loop;
}

static void loop_run(ar_loop *loop)
{
    while (!atomic_exchange(&loop->stop, false))
        if (event_base_loop(loop->base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY) < 0)
            die("event_base_loop");
}

static void loop_stop(ar_loop *loop)
{
    atomic_store(&loop->stop, true);
    event_active(loop->wake, EV_READ, 0); /* from another thread this also wakes the base */
}

static void loop_free(ar_loop *loop)
{
    while (loop->handles)       /* their completions join the post queue */
        close_now(loop->handles, loop->handles->close_fn, loop->handles->close_arg);
    while (loop->timers)
        timer_free(loop->timers);
    ar_post_queue_cancel_all(&loop->posts);
    event_free(loop->wake);
    event_base_free(loop->base);
    int err = ar_post_queue_destroy(&loop->posts);
    if (err) {
        errno = err;
        die("pthread_mutex_destroy");
    }
    free(loop->read_buf);
    free(loop);
    ar_host_count(AR_RES_LOOP, -1);
}

static pthread_once_t version_once = PTHREAD_ONCE_INIT;
static char version_text[64];

static void version_fill(void)
{
    snprintf(version_text, sizeof version_text, "libevent %s", event_get_version());
}

static const char *version(void)
{
    pthread_once(&version_once, version_fill);
    return version_text;
}

const ar_runner ar_runner_libevent = {
    .name = "libevent",
    .version = version,
    .loop_new = loop_new,
    .loop_run = loop_run,
    .loop_stop = loop_stop,
    .loop_free = loop_free,
    .post = post,
    .timer_start = timer_start,
    .timer_cancel = timer_cancel,
    .tcp_listen = tcp_listen,
    .tcp_connect = tcp_connect,
    .tcp_read_start = tcp_read_start,
    .tcp_read_stop = tcp_read_stop,
    .tcp_write = tcp_write,
    .tcp_close = tcp_close,
    .tcp_port = tcp_port,
    .tcp_reset_on_close = tcp_reset_on_close,
    .thread_start = ar_posix_thread_start,
    .thread_join = ar_posix_thread_join,
    .mutex_new = ar_posix_mutex_new,
    .mutex_lock = ar_posix_mutex_lock,
    .mutex_trylock = ar_posix_mutex_trylock,
    .mutex_unlock = ar_posix_mutex_unlock,
    .mutex_free = ar_posix_mutex_free,
    .cond_new = ar_posix_cond_new,
    .cond_broadcast = ar_posix_cond_broadcast,
    .cond_wait_until = ar_posix_cond_wait_until,
    .cond_free = ar_posix_cond_free,
    AR_HOST_ENTRIES,
};
