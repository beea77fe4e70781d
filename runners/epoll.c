/* epoll.c: the runner with no library: plain level-triggered epoll.
 *
 * A turn is: epoll_wait (timeout 0 while posts are queued, else until woken:
 * due timers arrive through one timerfd armed at the earliest deadline), the
 * ready handles, the due timers, then one snapshot of the post queue.
 * Posts and stops from other threads wake the loop through an eventfd; a post
 * writes it only when no wake-up is pending (wake_pending, under the queue
 * mutex), and a post from the loop's own thread never does, because the loop
 * checks the queue before it blocks. Closing and failed connects finish
 * through the post queue, so handles are freed only after the epoll batch that
 * may still name them, and loop_free completes them like any other post.
 */
#include "host.h"
#include "posix_sync.h"
#include "loopback.h"
#include "post_queue.h"
#include "runner.h"
#include "write_queue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define MAX_EVENTS 64
#define ACCEPTS_PER_EVENT 64

typedef struct io io;
typedef void (*io_fn)(io *w, uint32_t events);
struct io {             /* what epoll_event.data.ptr points at */
    int fd;             /* -1 once closed: stale events in the batch are skipped */
    io_fn on_event;
};

enum tcp_kind { TCP_LISTENER, TCP_CONNECTING, TCP_STREAM };

struct ar_tcp {
    io w;
    ar_loop *loop;
    enum tcp_kind kind;
    bool closing, reading;
    int connect_err;            /* a connect that failed before epoll saw it */
    uint32_t interest;          /* registered epoll events, 0 = not registered */
    void *fn;                   /* accept, connect or read callback, by kind */
    void *arg;
    ar_close_fn close_fn;
    void *close_arg;
    ar_write_queue wq;
    ar_tcp *prev, *next;        /* the loop's open handles */
};

struct ar_timer {
    ar_loop *loop;
    uint64_t deadline_ns, seq;
    ar_timer_fn fn;
    void *arg;
    ar_timer *prev, *next;      /* sorted by (deadline, seq) */
};

struct ar_loop {
    int epfd;
    io wake, tick;              /* eventfd, timerfd */
    ar_post_queue posts;
    _Atomic bool stop;
    ar_timer *timers;
    uint64_t timer_seq, armed_ns;
    ar_tcp *handles;
    char *read_buf;
};

static _Thread_local ar_loop *tls_running;

#define container_of(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

static void die(const char *what)
{
    fprintf(stderr, "epoll runner: %s: %s\n", what, strerror(errno));
    abort();
}

static void close_fd(int fd)
{
    if (fd >= 0 && close(fd) != 0 && errno != EINTR)
        die("close");
}

/* ---- posts and wake-ups ---- */

static void wake_write(ar_loop *loop)
{
    uint64_t one = 1;
    if (write(loop->wake.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        die("write(eventfd)");  /* EAGAIN: the counter is full, it is readable */
}

static void on_wake(io *w, uint32_t events)
{
    uint64_t n;
    if (read(w->fd, &n, sizeof n) < 0 && errno != EAGAIN)
        die("read(eventfd)");
}

static void post(ar_loop *loop, ar_post_fn fn, void *arg)
{
    /* The loop checks the queue before it sleeps: only a sleeping loop needs the eventfd. */
    if (ar_post_queue_push(&loop->posts, fn, arg, tls_running != loop))
        wake_write(loop);
}

/* ---- timers ---- */

static void timer_arm(ar_loop *loop)
{
    uint64_t want = loop->timers ? loop->timers->deadline_ns : 0;
    if (!want || (loop->armed_ns && loop->armed_ns <= want))
        return;                 /* an earlier expiry re-arms when it fires */
    struct itimerspec its = { .it_value = {
        .tv_sec = (time_t)(want / 1000000000u), .tv_nsec = (long)(want % 1000000000u) } };
    if (timerfd_settime(loop->tick.fd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        die("timerfd_settime");
    loop->armed_ns = want;
}

static void on_tick(io *w, uint32_t events)
{
    ar_loop *loop = container_of(w, ar_loop, tick);
    uint64_t n;
    if (read(w->fd, &n, sizeof n) < 0 && errno != EAGAIN)
        die("read(timerfd)");
    loop->armed_ns = 0;         /* a one-shot timerfd disarms when it expires */
}

static void timer_unlink(ar_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        t->loop->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

static ar_timer *timer_start(ar_loop *loop, uint64_t ms, ar_timer_fn fn, void *arg)
{
    ar_timer *t = calloc(1, sizeof *t);
    if (!t)
        die("calloc(timer)");
    ar_host_count(AR_RES_TIMER, 1);
    t->loop = loop;
    t->deadline_ns = ar_host_now_ns() + ms * 1000000u;
    t->seq = loop->timer_seq++;
    t->fn = fn;
    t->arg = arg;
    ar_timer *after = NULL;     /* the last timer due no later than t */
    for (ar_timer *p = loop->timers; p && p->deadline_ns <= t->deadline_ns; p = p->next)
        after = p;
    t->prev = after;
    t->next = after ? after->next : loop->timers;
    if (t->next)
        t->next->prev = t;
    if (after)
        after->next = t;
    else
        loop->timers = t;
    timer_arm(loop);
    return t;
}

static void timer_cancel(ar_timer *t)
{
    timer_unlink(t);            /* a stale timerfd expiry only costs one empty turn */
    free(t);
    ar_host_count(AR_RES_TIMER, -1);
}

static void run_timers(ar_loop *loop)
{
    uint64_t now = ar_host_now_ns();
    uint64_t seq_limit = loop->timer_seq; /* timers started by these callbacks wait a turn */
    for (ar_timer *t = loop->timers; t && t->deadline_ns <= now && t->seq < seq_limit;
         t = loop->timers) {
        timer_unlink(t);
        t->fn(t->arg);
        free(t);
        ar_host_count(AR_RES_TIMER, -1);
    }
    timer_arm(loop);
}

/* ---- TCP helpers ---- */

static void set_interest(ar_tcp *h, uint32_t events)
{
    if (events == h->interest || h->w.fd < 0)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = &h->w };
    int op = !h->interest ? EPOLL_CTL_ADD : !events ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(h->loop->epfd, op, h->w.fd, &ev) != 0)
        die("epoll_ctl(tcp)");
    h->interest = events;
}

static void update_stream_interest(ar_tcp *h)
{
    set_interest(h, (h->reading ? EPOLLIN : 0u) | (!ar_write_queue_empty(&h->wq) ? EPOLLOUT : 0u));
}

static void on_tcp_event(io *w, uint32_t events);

static ar_tcp *tcp_new(ar_loop *loop, int fd, enum tcp_kind kind)
{
    ar_tcp *h = calloc(1, sizeof *h);
    if (!h)
        die("calloc(tcp)");
    ar_host_count(AR_RES_TCP, 1);
    h->w.fd = fd;
    h->w.on_event = on_tcp_event;
    h->loop = loop;
    h->kind = kind;
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

static int new_socket(void)
{
    return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
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
    if (h->w.fd >= 0) {
        set_interest(h, 0);     /* explicit: a forked child may still hold the socket */
        close_fd(h->w.fd);
        h->w.fd = -1;
    }
    tcp_unlink(h);
    post(h->loop, finish_close, h);
}

/* ---- TCP events ---- */

static void on_acceptable(ar_tcp *h)
{
    ar_accept_fn fn = (ar_accept_fn)h->fn;
    for (int i = 0; i < ACCEPTS_PER_EVENT && !h->closing; i++) {
        int fd = accept4(h->w.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
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
        fn(h->arg, tcp_new(h->loop, fd, TCP_STREAM), 0);
    }
}

static void on_connected(ar_tcp *h)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(h->w.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (!err) {
        h->kind = TCP_STREAM;
        set_interest(h, 0);
        ((ar_connect_fn)h->fn)(h->arg, h, 0);
        return;
    }
    h->connect_err = -err;
    close_now(h, NULL, NULL);
}

static void read_once(ar_tcp *h)
{
    ssize_t n = recv(h->w.fd, h->loop->read_buf, READ_CHUNK, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {               /* EOF or error: reading stops before the callback */
        n = n < 0 ? -errno : 0;
        h->reading = false;
        update_stream_interest(h);
    }
    ((ar_read_fn)h->fn)(h->arg, n > 0 ? h->loop->read_buf : NULL, n);
}

static void flush_writes(ar_tcp *h)
{
    ar_write_queue_flush(&h->wq, h->w.fd, &h->closing);
    if (!h->closing)
        update_stream_interest(h);
}

static void on_tcp_event(io *w, uint32_t events)
{
    ar_tcp *h = container_of(w, ar_tcp, w);
    switch (h->kind) {
    case TCP_LISTENER:
        on_acceptable(h);
        break;
    case TCP_CONNECTING:
        on_connected(h);
        break;
    case TCP_STREAM:
        if (h->reading && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
            read_once(h);
        if (!h->closing && !ar_write_queue_empty(&h->wq) && (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)))
            flush_writes(h);
        break;
    }
}

/* ---- TCP API ---- */

static ar_tcp *tcp_listen(ar_loop *loop, int backlog, ar_accept_fn fn, void *arg, uint16_t *port)
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
    ar_tcp *h = tcp_new(loop, fd, TCP_LISTENER);
    h->fn = (void *)fn;
    h->arg = arg;
    set_interest(h, EPOLLIN);
    *port = ntohs(sa.sin_port);
    return h;
}

static void tcp_connect(ar_loop *loop, uint16_t port, ar_connect_fn fn, void *arg)
{
    ar_tcp *h = tcp_new(loop, new_socket(), TCP_CONNECTING);
    h->fn = (void *)fn;
    h->arg = arg;
    struct sockaddr_in sa = loopback(port);
    int err = h->w.fd < 0 ? -errno : set_nodelay(h->w.fd);
    if (!err && connect(h->w.fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        err = -errno;
    if (err) {                  /* reported from the post queue, never from here */
        h->connect_err = err;
        close_now(h, NULL, NULL);
        return;
    }
    set_interest(h, EPOLLOUT);
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
    update_stream_interest(h);
    return 0;
}

static int tcp_read_stop(ar_tcp *h)
{
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    if (!h->closing) {
        h->reading = false;
        update_stream_interest(h);
    }
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
    update_stream_interest(h); /* sent when epoll says writable: callbacks never run from here */
    return 0;
}

static void tcp_close(ar_tcp *h, ar_close_fn fn, void *arg)
{
    if (!h->closing)
        close_now(h, fn, arg);
}

#define FD_OF(h) ((h)->w.fd)
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

static int add_watch(ar_loop *loop, io *w)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = w };
    return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, w->fd, &ev);
}

/* Descriptors and buffers only: what loop_new may have made before failing. */
static void loop_release(ar_loop *loop)
{
    close_fd(loop->epfd);
    close_fd(loop->wake.fd);
    close_fd(loop->tick.fd);
    free(loop->read_buf);
    free(loop);
}

static ar_loop *loop_new(void)
{
    ar_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->wake = (io){ eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), on_wake };
    loop->tick = (io){ timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC), on_tick };
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    loop->read_buf = malloc(READ_CHUNK);
    atomic_init(&loop->stop, false);
    if (loop->epfd < 0 || loop->wake.fd < 0 || loop->tick.fd < 0 || !loop->read_buf ||
        add_watch(loop, &loop->wake) != 0 || add_watch(loop, &loop->tick) != 0 ||
        ar_post_queue_init(&loop->posts) != 0) {
        loop_release(loop);
        return NULL;
    }
    ar_host_count(AR_RES_LOOP, 1);
    return loop;
}

static void run_turn(ar_loop *loop)
{
    struct epoll_event events[MAX_EVENTS];
    int timeout = ar_post_queue_nonempty(&loop->posts) ? 0 : -1; /* timers wake us through the timerfd */
    int n = epoll_wait(loop->epfd, events, MAX_EVENTS, timeout);
    if (n < 0 && errno != EINTR)
        die("epoll_wait");
    for (int i = 0; i < n; i++) {
        io *w = events[i].data.ptr;
        if (w->fd >= 0)
            w->on_event(w, events[i].events);
    }
    run_timers(loop);
    if (!atomic_load(&loop->stop))
        ar_post_run(ar_post_queue_take(&loop->posts), false);
}

static void loop_run(ar_loop *loop)
{
    ar_loop *outer = tls_running;
    tls_running = loop;
    while (!atomic_exchange(&loop->stop, false))
        run_turn(loop);
    tls_running = outer;
}

static void loop_stop(ar_loop *loop)
{
    atomic_store(&loop->stop, true);
    if (tls_running != loop)
        wake_write(loop);       /* rare: not worth coalescing with posts */
}

static void loop_free(ar_loop *loop)
{
    while (loop->handles)       /* their completions join the post queue */
        close_now(loop->handles, loop->handles->close_fn, loop->handles->close_arg);
    while (loop->timers)
        timer_cancel(loop->timers);
    ar_post_queue_cancel_all(&loop->posts);
    int err = ar_post_queue_destroy(&loop->posts);
    if (err) {
        errno = err;
        die("pthread_mutex_destroy");
    }
    loop_release(loop);
    ar_host_count(AR_RES_LOOP, -1);
}

static pthread_once_t version_once = PTHREAD_ONCE_INIT;
static char version_text[128];

static void version_fill(void)
{
    struct utsname u;
    snprintf(version_text, sizeof version_text, "epoll (Linux %s)",
             uname(&u) == 0 ? u.release : "?");
}

static const char *version(void)
{
    pthread_once(&version_once, version_fill);
    return version_text;
}

const ar_runner ar_runner_epoll = {
    .name = "epoll",
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
