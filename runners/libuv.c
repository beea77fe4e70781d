/* libuv.c: the runner on libuv.
 *
 * A turn is one uv_run iteration. Posts go to the shared FIFO of
 * post_queue.c, guarded by a pthread mutex (what uv_mutex is on Linux; TSan
 * sees the hand-over there: uv_async_send's atomics are not instrumented);
 * the first post after a drain calls uv_async_send, whose callback drains one
 * snapshot. A re-post sends again and libuv delivers it on the next
 * iteration. loop_stop sets a flag and calls uv_stop on the loop's thread, or
 * wakes the loop through the same async handle from any other thread.
 * Timers are uv_timer_t; TCP is uv_tcp_t with uv_write requests that carry
 * their copy of the data. uv_close closes a stream's descriptor at once and
 * runs cancelled write callbacks, then the close callback, at the end of the
 * iteration. loop_free closes every handle and runs the loop until they are
 * gone, which delivers exactly those completions.
 * libuv writes with write(2), so the first loop_new ignores SIGPIPE unless
 * the program installed a handler of its own.
 */
#include "host.h"
#include "post_queue.h"
#include "runner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define READ_CHUNK 65536

struct ar_loop {
    uv_loop_t uv;
    uv_async_t wake;
    ar_post_queue posts;        /* wake_pending: a uv_async_send is on its way;
                                   muted: the async handle is gone, no more sends */
    _Atomic bool stop;
    char *read_buf;
};

struct ar_timer {
    uv_timer_t uv;
    ar_timer_fn fn;
    void *arg;
};

enum tcp_kind { TCP_LISTENER, TCP_CONNECTING, TCP_STREAM };

struct ar_tcp {
    uv_tcp_t uv;
    ar_loop *loop;
    enum tcp_kind kind;
    bool closing, reading;
    int connect_err;            /* a connect that failed inside uv_tcp_connect */
    void *fn;                   /* accept, connect or read callback, by kind */
    void *arg;
    ar_close_fn close_fn;
    void *close_arg;
    uv_connect_t connect_req;
};

typedef struct wreq {
    uv_write_t req;
    ar_write_fn fn;
    void *arg;
    char data[];
} wreq;

struct ar_thread {
    uv_thread_t tid;
    ar_thread_fn fn;
    void *arg;
};

struct ar_mutex {
    uv_mutex_t m;
};

struct ar_cond {
    uv_cond_t c;
};

static _Thread_local ar_loop *tls_running;

static void die(const char *what, int err)
{
    fprintf(stderr, "libuv runner: %s: %s\n", what, uv_strerror(err));
    abort();
}

static void check(int err, const char *what)
{
    if (err)
        die(what, err);
}

/* ---- posts and wake-ups ---- */

static void post(ar_loop *loop, ar_post_fn fn, void *arg)
{
    if (ar_post_queue_push(&loop->posts, fn, arg, true))
        check(uv_async_send(&loop->wake), "uv_async_send");
}

static void on_wake(uv_async_t *async)
{
    ar_loop *loop = async->data;
    if (atomic_load(&loop->stop)) {
        /* Stopping before this snapshot: keep the queue, and its wake-up, for later. */
        uv_stop(&loop->uv);
        if (ar_post_queue_wake_pending(&loop->posts))
            check(uv_async_send(&loop->wake), "uv_async_send");
        return;
    }
    ar_post_run(ar_post_queue_take(&loop->posts), false);
}

/* ---- timers ---- */

static void timer_freed(uv_handle_t *handle)
{
    free(handle->data);
    ar_host_count(AR_RES_TIMER, -1);
}

static void on_timer(uv_timer_t *uv)
{
    ar_timer *t = uv->data;
    t->fn(t->arg);
    uv_close((uv_handle_t *)uv, timer_freed);
}

static ar_timer *timer_start(ar_loop *loop, uint64_t ms, ar_timer_fn fn, void *arg)
{
    ar_timer *t = malloc(sizeof *t);
    if (!t)
        die("malloc(timer)", UV_ENOMEM);
    ar_host_count(AR_RES_TIMER, 1);
    t->fn = fn;
    t->arg = arg;
    check(uv_timer_init(&loop->uv, &t->uv), "uv_timer_init");
    t->uv.data = t;
    uv_update_time(&loop->uv);  /* ms from now, not from the start of the iteration */
    check(uv_timer_start(&t->uv, on_timer, ms, 0), "uv_timer_start");
    return t;
}

static void timer_cancel(ar_timer *t)
{
    check(uv_timer_stop(&t->uv), "uv_timer_stop");
    uv_close((uv_handle_t *)&t->uv, timer_freed);
}

/* ---- TCP ---- */

static ar_tcp *tcp_new(ar_loop *loop, enum tcp_kind kind, void *fn, void *arg)
{
    ar_tcp *h = calloc(1, sizeof *h);
    if (!h)
        die("calloc(tcp)", UV_ENOMEM);
    ar_host_count(AR_RES_TCP, 1);
    check(uv_tcp_init(&loop->uv, &h->uv), "uv_tcp_init");
    check(uv_tcp_nodelay(&h->uv, 1), "uv_tcp_nodelay"); /* applied when the socket exists */
    h->uv.data = h;
    h->loop = loop;
    h->kind = kind;
    h->fn = fn;
    h->arg = arg;
    return h;
}

static void on_tcp_closed(uv_handle_t *handle)
{
    ar_tcp *h = handle->data;
    if (h->kind == TCP_CONNECTING && h->connect_err)
        ((ar_connect_fn)h->fn)(h->arg, NULL, h->connect_err);
    else if (h->close_fn)
        h->close_fn(h->close_arg);
    free(h);
    ar_host_count(AR_RES_TCP, -1);
}

static void close_handle(ar_tcp *h, ar_close_fn fn, void *arg)
{
    h->closing = true;
    h->reading = false;
    h->close_fn = fn;
    h->close_arg = arg;
    uv_close((uv_handle_t *)&h->uv, on_tcp_closed); /* the descriptor is closed here */
}

static void on_connection(uv_stream_t *server, int status)
{
    ar_tcp *l = server->data;
    ar_accept_fn fn = (ar_accept_fn)l->fn;
    if (status < 0) {
        fn(l->arg, NULL, status);
        return;
    }
    ar_tcp *c = tcp_new(l->loop, TCP_STREAM, NULL, NULL);
    int err = uv_accept(server, (uv_stream_t *)&c->uv);
    if (err) {
        close_handle(c, NULL, NULL);
        fn(l->arg, NULL, err);
        return;
    }
    fn(l->arg, c, 0);
}

static ar_tcp *tcp_listen(ar_loop *loop, int backlog, ar_accept_fn fn, void *arg, uint16_t *port)
{
    ar_tcp *h = tcp_new(loop, TCP_LISTENER, (void *)fn, arg);
    struct sockaddr_in sa;
    int len = sizeof sa;
    int err = uv_ip4_addr("127.0.0.1", 0, &sa);
    if (!err)
        err = uv_tcp_bind(&h->uv, (struct sockaddr *)&sa, 0);
    if (!err)
        err = uv_listen((uv_stream_t *)&h->uv, backlog > 0 ? backlog : SOMAXCONN, on_connection);
    if (!err)
        err = uv_tcp_getsockname(&h->uv, (struct sockaddr *)&sa, &len);
    if (err) {
        close_handle(h, NULL, NULL);
        errno = -err;
        return NULL;
    }
    *port = ntohs(sa.sin_port);
    return h;
}

static void on_connect(uv_connect_t *req, int status)
{
    ar_tcp *h = req->handle->data;
    ar_connect_fn fn = (ar_connect_fn)h->fn;
    if (status == 0) {
        h->kind = TCP_STREAM;
        fn(h->arg, h, 0);
        return;
    }
    if (!h->closing)            /* at loop_free the handle is closing already */
        close_handle(h, NULL, NULL);
    fn(h->arg, NULL, status);
}

static void tcp_connect(ar_loop *loop, uint16_t port, ar_connect_fn fn, void *arg)
{
    ar_tcp *h = tcp_new(loop, TCP_CONNECTING, (void *)fn, arg);
    struct sockaddr_in sa;
    int err = uv_ip4_addr("127.0.0.1", port, &sa);
    if (!err)
        err = uv_tcp_connect(&h->connect_req, &h->uv, (struct sockaddr *)&sa, on_connect);
    if (err) {                  /* reported from the close callback, never from here */
        h->connect_err = err;
        close_handle(h, NULL, NULL);
    }
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    ar_tcp *h = handle->data;
    *buf = uv_buf_init(h->loop->read_buf, READ_CHUNK);
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    ar_tcp *h = stream->data;
    if (n == 0)                 /* EAGAIN */
        return;
    if (n < 0) {                /* EOF or error: reading stops before the callback */
        h->reading = false;
        check(uv_read_stop(stream), "uv_read_stop");
    }
    ((ar_read_fn)h->fn)(h->arg, n > 0 ? buf->base : NULL, n == UV_EOF ? 0 : n);
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
    int err = uv_read_start((uv_stream_t *)&h->uv, on_alloc, on_read);
    h->reading = err == 0;
    return err;
}

static int tcp_read_stop(ar_tcp *h)
{
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    h->reading = false;
    return h->closing ? 0 : uv_read_stop((uv_stream_t *)&h->uv);
}

static void on_write(uv_write_t *req, int status)
{
    wreq *w = req->data;
    w->fn(w->arg, status);
    free(w);
}

static int tcp_write(ar_tcp *h, const void *buf, size_t len, ar_write_fn fn, void *arg)
{
    if (h->closing)
        return -EBADF;
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    if (len > UINT32_MAX)       /* one uv_buf_t; the harness never writes 4 GiB at once */
        return -EMSGSIZE;
    wreq *w = malloc(sizeof *w + len);
    if (!w)
        return -ENOMEM;
    w->req.data = w;
    w->fn = fn;
    w->arg = arg;
    if (len)
        memcpy(w->data, buf, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    int err = uv_write(&w->req, (uv_stream_t *)&h->uv, &b, 1, on_write);
    if (err)
        free(w);
    return err;
}

static void tcp_close(ar_tcp *h, ar_close_fn fn, void *arg)
{
    if (!h->closing)
        close_handle(h, fn, arg);
}

static int tcp_port(ar_tcp *h, bool peer)
{
    struct sockaddr_in sa;
    int len = sizeof sa;
    int err = peer ? uv_tcp_getpeername(&h->uv, (struct sockaddr *)&sa, &len)
                   : uv_tcp_getsockname(&h->uv, (struct sockaddr *)&sa, &len);
    return err ? -1 : ntohs(sa.sin_port);
}

static void tcp_reset_on_close(ar_tcp *h)
{
    struct linger l = { .l_onoff = 1, .l_linger = 0 };
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&h->uv, &fd) == 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

/* ---- loops ---- */

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

static void ignore_sigpipe(void)
{
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

static ar_loop *loop_new(void)
{
    pthread_once(&sigpipe_once, ignore_sigpipe);
    ar_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    atomic_init(&loop->stop, false);
    loop->read_buf = malloc(READ_CHUNK);
    if (!loop->read_buf || uv_loop_init(&loop->uv) != 0)
        goto fail_loop;
    if (ar_post_queue_init(&loop->posts) != 0)
        goto fail_mutex;
    if (uv_async_init(&loop->uv, &loop->wake, on_wake) != 0)
        goto fail_async;
    loop->wake.data = loop;
    ar_host_count(AR_RES_LOOP, 1);
    return loop;
fail_async:
    ar_post_queue_destroy(&loop->posts);
fail_mutex:
    check(uv_loop_close(&loop->uv), "uv_loop_close");
fail_loop:
    free(loop->read_buf);
    free(loop);
    return NULL;
}

static void loop_run(ar_loop *loop)
{
    ar_loop *outer = tls_running;
    tls_running = loop;
    if (!atomic_exchange(&loop->stop, false)) {
        uv_run(&loop->uv, UV_RUN_DEFAULT); /* the async handle keeps it alive until uv_stop */
        atomic_store(&loop->stop, false);
    }
    tls_running = outer;
}

static void loop_stop(ar_loop *loop)
{
    atomic_store(&loop->stop, true);
    if (tls_running == loop)
        uv_stop(&loop->uv);
    else
        check(uv_async_send(&loop->wake), "uv_async_send");
}

static void close_walk(uv_handle_t *handle, void *arg)
{
    if (uv_is_closing(handle))
        return;
    switch (handle->type) {
    case UV_TCP: {
        ar_tcp *h = handle->data;
        close_handle(h, h->close_fn, h->close_arg);
        break;
    }
    case UV_TIMER:
        uv_close(handle, timer_freed);
        break;
    default:                    /* the async handle, embedded in the loop */
        uv_close(handle, NULL);
        break;
    }
}

static void loop_free(ar_loop *loop)
{
    ar_post_queue_mute(&loop->posts);
    uv_walk(&loop->uv, close_walk, NULL);
    uv_run(&loop->uv, UV_RUN_DEFAULT); /* runs cancelled writes/connects and close callbacks */
    ar_post_queue_cancel_all(&loop->posts);
    check(uv_loop_close(&loop->uv), "uv_loop_close");
    ar_post_queue_destroy(&loop->posts);
    free(loop->read_buf);
    free(loop);
    ar_host_count(AR_RES_LOOP, -1);
}

static const char *version(void)
{
    static char text[64];
    return ar_host_version(text, sizeof text, "libuv %s", uv_version_string());
}

/* ---- threads and locks ---- */

static void thread_main(void *arg)
{
    ar_thread *t = arg;
    t->fn(t->arg);
}

static ar_thread *thread_start(ar_thread_fn fn, void *arg)
{
    ar_thread *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    ar_host_count(AR_RES_THREAD, 1); /* before it runs: it may look at the counts itself */
    if (uv_thread_create(&t->tid, thread_main, t) != 0) {
        ar_host_count(AR_RES_THREAD, -1);
        free(t);
        return NULL;
    }
    return t;
}

static void thread_join(ar_thread *t)
{
    check(uv_thread_join(&t->tid), "uv_thread_join");
    free(t);
    ar_host_count(AR_RES_THREAD, -1);
}

static ar_mutex *mutex_new(void)
{
    ar_mutex *m = malloc(sizeof *m);
    if (m && uv_mutex_init(&m->m) != 0) {
        free(m);
        return NULL;
    }
    if (m)
        ar_host_count(AR_RES_MUTEX, 1);
    return m;
}

static void mutex_lock(ar_mutex *m) { uv_mutex_lock(&m->m); }
static bool mutex_trylock(ar_mutex *m) { return uv_mutex_trylock(&m->m) == 0; }
static void mutex_unlock(ar_mutex *m) { uv_mutex_unlock(&m->m); }

static void mutex_free(ar_mutex *m)
{
    if (m) {
        uv_mutex_destroy(&m->m);
        free(m);
        ar_host_count(AR_RES_MUTEX, -1);
    }
}

static ar_cond *cond_new(void)
{
    ar_cond *c = malloc(sizeof *c);
    if (c && uv_cond_init(&c->c) != 0) { /* CLOCK_MONOTONIC on Linux */
        free(c);
        return NULL;
    }
    if (c)
        ar_host_count(AR_RES_COND, 1);
    return c;
}

static void cond_broadcast(ar_cond *c) { uv_cond_broadcast(&c->c); }

static bool cond_wait_until(ar_cond *c, ar_mutex *m, uint64_t deadline_ns)
{
    uint64_t now = uv_hrtime(); /* CLOCK_MONOTONIC, like ar_host_now_ns */
    if (now >= deadline_ns)
        return false;
    return uv_cond_timedwait(&c->c, &m->m, deadline_ns - now) == 0;
}

static void cond_free(ar_cond *c)
{
    if (c) {
        uv_cond_destroy(&c->c);
        free(c);
        ar_host_count(AR_RES_COND, -1);
    }
}

const ar_runner ar_runner_libuv = {
    .name = "libuv",
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
    .thread_start = thread_start,
    .thread_join = thread_join,
    .mutex_new = mutex_new,
    .mutex_lock = mutex_lock,
    .mutex_trylock = mutex_trylock,
    .mutex_unlock = mutex_unlock,
    .mutex_free = mutex_free,
    .cond_new = cond_new,
    .cond_broadcast = cond_broadcast,
    .cond_wait_until = cond_wait_until,
    .cond_free = cond_free,
    AR_HOST_ENTRIES,
};
