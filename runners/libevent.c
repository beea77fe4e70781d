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
 * Timers are one-shot events. TCP is raw_tcp.c's: this file watches its
 * descriptors with one persistent read and one write event per handle.
 */
#include "host.h"
#include "list.h"
#include "posix_sync.h"
#include "post_queue.h"
#include "raw_tcp.h"
#include "runner.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ar_timer {
    struct event *ev;
    ar_timer_fn fn;
    void *arg;
    ar_link link;               /* the loop's pending timers, for loop_free */
};

struct ar_loop {
    ar_raw_loop raw;            /* first: raw_tcp.c's tcp_* entries take the ar_loop */
    struct event_base *base;
    struct event *wake;
    ar_post_queue posts;        /* its wake_pending: wake is active, or about to be */
    _Atomic bool stop;
    ar_link timers;
};
_Static_assert(offsetof(struct ar_loop, raw) == 0, "raw_tcp.c needs ar_raw_loop first");

static _Noreturn void die(const char *what) { ar_host_die("libevent runner", what, errno); }

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

static void timer_free(ar_timer *t)
{
    ar_list_remove(&t->link);
    event_free(t->ev);          /* allowed inside its own callback */
    free(t);
    ar_host_count(AR_RES_TIMER, -1);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    ar_timer *t = arg;
    t->fn(t->arg);
    timer_free(t);
}

static ar_timer *timer_start(ar_loop *loop, uint64_t ms, ar_timer_fn fn, void *arg)
{
    ar_timer *t = calloc(1, sizeof *t);
    if (!t || !(t->ev = event_new(loop->base, -1, 0, on_timer, t)))
        die("timer_start");
    ar_host_count(AR_RES_TIMER, 1);
    t->fn = fn;
    t->arg = arg;
    ar_list_insert_before(&loop->timers, &t->link);
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };
    check(event_base_update_cache_time(loop->base), "event_base_update_cache_time");
    check(event_add(t->ev, &tv), "event_add(timer)");
    return t;
}

/* ---- TCP: how raw_tcp.c's descriptors are watched ---- */

typedef struct {
    struct event *read, *write; /* made at the first watch, persistent */
} tcp_events;

static void on_tcp_ready(evutil_socket_t fd, short what, void *arg)
{
    ar_raw_ready(arg, (what & EV_READ ? AR_RAW_READ : 0u) | (what & EV_WRITE ? AR_RAW_WRITE : 0u));
}

static void switch_event(struct event *ev, bool was, bool want)
{
    if (was != want)
        check(want ? event_add(ev, NULL) : event_del(ev), want ? "event_add" : "event_del");
}

static void tcp_watch(ar_tcp *h, unsigned was, unsigned events)
{
    tcp_events *e = ar_raw_data(h);
    if (!e->read) {
        struct event_base *base = ar_raw_loop_of(h)->base;
        e->read = event_new(base, ar_raw_fd(h), EV_READ | EV_PERSIST, on_tcp_ready, h);
        e->write = event_new(base, ar_raw_fd(h), EV_WRITE | EV_PERSIST, on_tcp_ready, h);
        if (!e->read || !e->write)
            die("event_new(tcp)");
    }
    switch_event(e->read, was & AR_RAW_READ, events & AR_RAW_READ);
    switch_event(e->write, was & AR_RAW_WRITE, events & AR_RAW_WRITE);
}

static void tcp_forget(ar_tcp *h)
{
    tcp_events *e = ar_raw_data(h);
    if (e->read) {              /* freeing an event also deactivates it */
        event_free(e->read);
        event_free(e->write);
        e->read = e->write = NULL;
    }
}

static const ar_raw_backend libevent_backend = {
    .watch = tcp_watch,
    .forget = tcp_forget,
    .post = post,
    .handle_bytes = sizeof(tcp_events),
};

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
    ar_list_init(&loop->timers);
    loop->base = new_base();
    if (loop->base)
        loop->wake = event_new(loop->base, -1, EV_PERSIST, on_wake, loop);
    if (ar_raw_loop_init(&loop->raw, &libevent_backend) != 0 || !loop->wake ||
        ar_post_queue_init(&loop->posts) != 0) {
        if (loop->wake)
            event_free(loop->wake);
        if (loop->base)
            event_base_free(loop->base);
        ar_raw_loop_destroy(&loop->raw);
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
    ar_raw_loop_close_all(&loop->raw);
    while (!ar_list_empty(&loop->timers))
        timer_free(AR_CONTAINER_OF(loop->timers.next, ar_timer, link));
    ar_post_queue_cancel_all(&loop->posts);
    event_free(loop->wake);
    event_base_free(loop->base);
    ar_post_queue_destroy(&loop->posts);
    ar_raw_loop_destroy(&loop->raw);
    free(loop);
    ar_host_count(AR_RES_LOOP, -1);
}

static const char *version(void)
{
    static char text[64];
    return ar_host_version(text, sizeof text, "libevent %s", event_get_version());
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
    .timer_cancel = timer_free,
    AR_RAW_TCP_ENTRIES,
    AR_POSIX_SYNC_ENTRIES,
    AR_HOST_ENTRIES,
};
