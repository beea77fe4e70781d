/* libev.c: the runner on libev 4 (Debian's libev-dev: <ev.h>, -lev).
 *
 * One ev_loop per loop (ev_loop_new, the epoll backend). A turn is one
 * ev_run(EVRUN_ONCE): wait, then invoke every pending watcher. Posts go to
 * the shared mutex-guarded FIFO; the first post after a drain calls
 * ev_async_send, libev's one thread-safe call, and the async callback runs one
 * snapshot. A send made while the loop is dispatching (a re-post, or a post
 * from another thread) is noticed after the next poll, which then does not
 * block: re-posts run on the next turn, never in this one. Timers are
 * one-shot ev_timers, started from a fresh ev_now_update so that ms count
 * from the call. TCP is raw_tcp.c's: this file watches its descriptors with
 * one ev_io per handle. libev's async flags are volatile and fenced inside
 * libev.so, which TSan does not see: the post queue's mutex is what orders
 * the hand-over from poster to loop.
 */
#include "host.h"
#include "list.h"
#include "posix_sync.h"
#include "post_queue.h"
#include "raw_tcp.h"
#include "runner.h"

#include <errno.h>
#include <ev.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

struct ar_timer {
    ev_timer w;
    ar_loop *loop;
    ar_timer_fn fn;
    void *arg;
    ar_link link;               /* the loop's pending timers, for loop_free */
};

struct ar_loop {
    ar_raw_loop raw;            /* first: raw_tcp.c's tcp_* entries take the ar_loop */
    struct ev_loop *ev;
    ev_async wake;
    ar_post_queue posts;        /* its wake_pending: an ev_async_send is on its way */
    _Atomic bool stop;
    ar_link timers;
};
_Static_assert(offsetof(struct ar_loop, raw) == 0, "raw_tcp.c needs ar_raw_loop first");

static _Noreturn void die(const char *what) { ar_host_die("libev runner", what, errno); }

/* ---- posts and wake-ups ---- */

static void post(ar_loop *loop, ar_post_fn fn, void *arg)
{
    if (ar_post_queue_push(&loop->posts, fn, arg, true))
        ev_async_send(loop->ev, &loop->wake);
}

static void on_wake(struct ev_loop *ev, ev_async *w, int revents)
{
    ar_loop *loop = w->data;
    if (atomic_load(&loop->stop)) {
        /* Stopping before this snapshot: keep the queue, and its wake-up, for later. */
        if (ar_post_queue_wake_pending(&loop->posts))
            ev_async_send(ev, w);
        return;
    }
    ar_post_run(ar_post_queue_take(&loop->posts), false);
}

/* ---- timers ---- */

static void timer_free(ar_timer *t)
{
    ev_timer_stop(t->loop->ev, &t->w); /* also forgets it if it is due in this turn */
    ar_list_remove(&t->link);
    free(t);
    ar_host_count(AR_RES_TIMER, -1);
}

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
    ar_timer *t = w->data;      /* a one-shot ev_timer is stopped before its callback */
    t->fn(t->arg);
    timer_free(t);
}

static ar_timer *timer_start(ar_loop *loop, uint64_t ms, ar_timer_fn fn, void *arg)
{
    ar_timer *t = calloc(1, sizeof *t);
    if (!t)
        die("calloc(timer)");
    ar_host_count(AR_RES_TIMER, 1);
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    ar_list_insert_before(&loop->timers, &t->link);
    ev_timer_init(&t->w, on_timer, (ev_tstamp)ms / 1000.0, 0.);
    t->w.data = t;
    ev_now_update(loop->ev);    /* ms from now, not from the start of the turn */
    ev_timer_start(loop->ev, &t->w);
    return t;
}

/* ---- TCP: how raw_tcp.c's descriptors are watched ---- */

static void on_tcp_ready(struct ev_loop *ev, ev_io *w, int revents)
{
    unsigned both = revents & EV_ERROR ? AR_RAW_READ | AR_RAW_WRITE : 0u;
    ar_raw_ready(w->data, both | (revents & EV_READ ? AR_RAW_READ : 0u) |
                          (revents & EV_WRITE ? AR_RAW_WRITE : 0u));
}

static void tcp_watch(ar_tcp *h, unsigned was, unsigned events)
{
    ev_io *w = ar_raw_data(h);
    struct ev_loop *ev = ar_raw_loop_of(h)->ev;
    if (was)
        ev_io_stop(ev, w);      /* also drops an event of it still pending in this turn */
    if (!events)
        return;
    ev_io_init(w, on_tcp_ready, ar_raw_fd(h),
               (events & AR_RAW_READ ? EV_READ : 0) | (events & AR_RAW_WRITE ? EV_WRITE : 0));
    w->data = h;
    ev_io_start(ev, w);
}

static const ar_raw_backend libev_backend = {
    .watch = tcp_watch,
    .post = post,
    .handle_bytes = sizeof(ev_io),
};

/* ---- loops ---- */

static ar_loop *loop_new(void)
{
    ar_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    atomic_init(&loop->stop, false);
    ar_list_init(&loop->timers);
    /* epoll whatever LIBEV_FLAGS says: the runner is what its version names. */
    loop->ev = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (!loop->ev || ar_raw_loop_init(&loop->raw, &libev_backend) != 0 ||
        ar_post_queue_init(&loop->posts) != 0) {
        if (loop->ev)
            ev_loop_destroy(loop->ev);
        ar_raw_loop_destroy(&loop->raw);
        free(loop);
        return NULL;
    }
    ev_async_init(&loop->wake, on_wake);
    loop->wake.data = loop;
    ev_async_start(loop->ev, &loop->wake); /* keeps ev_run from returning at once when idle */
    ar_host_count(AR_RES_LOOP, 1);
    return loop;
}

static void loop_run(ar_loop *loop)
{
    while (!atomic_exchange(&loop->stop, false))
        ev_run(loop->ev, EVRUN_ONCE);
}

static void loop_stop(ar_loop *loop)
{
    atomic_store(&loop->stop, true);
    ev_async_send(loop->ev, &loop->wake); /* wakes a sleeping loop (on its own thread: harmless) */
}

static void loop_free(ar_loop *loop)
{
    ar_raw_loop_close_all(&loop->raw);
    while (!ar_list_empty(&loop->timers))
        timer_free(AR_CONTAINER_OF(loop->timers.next, ar_timer, link));
    ar_post_queue_cancel_all(&loop->posts);
    ev_async_stop(loop->ev, &loop->wake);
    ev_loop_destroy(loop->ev);
    ar_post_queue_destroy(&loop->posts);
    ar_raw_loop_destroy(&loop->raw);
    free(loop);
    ar_host_count(AR_RES_LOOP, -1);
}

static const char *version(void)
{
    static char text[64];
    return ar_host_version(text, sizeof text, "libev %d.%d (epoll)", ev_version_major(),
                           ev_version_minor());
}

const ar_runner ar_runner_libev = {
    .name = "libev",
    .version = version,
    .loop_new = loop_new,
    .loop_run = loop_run,
    .loop_stop = loop_stop,
    .loop_free = loop_free,
    .post = post,
    .timer_start = timer_start,
    .timer_cancel = timer_free,
    AR_RAW_TCP_ENTRIES,
    AR_POSIX_SYNC_ENTRIES,
    AR_HOST_ENTRIES,
};
