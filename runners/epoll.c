/* epoll.c: the runner with no library: plain level-triggered epoll.
 *
 * A turn is: epoll_wait (timeout 0 while posts are queued, else until woken:
 * due timers arrive through one timerfd armed at the earliest deadline), the
 * ready handles, the due timers, then one snapshot of the post queue.
 * Posts and stops from other threads wake the loop through an eventfd; a post
 * writes it only when no wake-up is pending (wake_pending, under the queue
 * mutex), and a post from the loop's own thread never does, because the loop
 * checks the queue before it blocks. TCP is raw_tcp.c's: this file only says
 * how a descriptor is watched (epoll_ctl) and hands it the ready events.
 */
#include "host.h"
#include "list.h"
#include "posix_sync.h"
#include "post_queue.h"
#include "raw_tcp.h"
#include "runner.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/utsname.h>
#include <unistd.h>

#define MAX_EVENTS 64

/* epoll_event.data of the loop's own descriptors; anything else is an ar_tcp. */
enum { WAKE_TAG = 1, TICK_TAG = 2 };

struct ar_timer {
    ar_link link;               /* sorted by (deadline, seq) */
    uint64_t deadline_ns, seq;
    ar_timer_fn fn;
    void *arg;
};

struct ar_loop {
    ar_raw_loop raw;            /* first: raw_tcp.c's tcp_* entries take the ar_loop */
    int epfd, wake_fd, tick_fd; /* epoll, eventfd, timerfd */
    ar_post_queue posts;
    _Atomic bool stop;
    ar_link timers;
    uint64_t timer_seq, armed_ns;
};
_Static_assert(offsetof(struct ar_loop, raw) == 0, "raw_tcp.c needs ar_raw_loop first");

static _Thread_local ar_loop *tls_running;

static _Noreturn void die(const char *what) { ar_host_die("epoll runner", what, errno); }
static void close_fd(int fd) { ar_host_close_fd("epoll runner", fd); }

static void drain_fd(int fd, const char *what)
{
    uint64_t n;
    if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
        die(what);
}

/* ---- posts and wake-ups ---- */

static void wake_write(ar_loop *loop)
{
    uint64_t one = 1;
    if (write(loop->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
        die("write(eventfd)");  /* EAGAIN: the counter is full, it is readable */
}

static void post(ar_loop *loop, ar_post_fn fn, void *arg)
{
    /* The loop checks the queue before it sleeps: only a sleeping loop needs the eventfd. */
    if (ar_post_queue_push(&loop->posts, fn, arg, tls_running != loop))
        wake_write(loop);
}

/* ---- timers ---- */

static ar_timer *first_timer(ar_loop *loop)
{
    return ar_list_empty(&loop->timers) ? NULL : AR_CONTAINER_OF(loop->timers.next, ar_timer, link);
}

static void timer_arm(ar_loop *loop)
{
    ar_timer *first = first_timer(loop);
    uint64_t want = first ? first->deadline_ns : 0;
    if (!want || (loop->armed_ns && loop->armed_ns <= want))
        return;                 /* an earlier expiry re-arms when it fires */
    struct itimerspec its = { .it_value = {
        .tv_sec = (time_t)(want / 1000000000u), .tv_nsec = (long)(want % 1000000000u) } };
    if (timerfd_settime(loop->tick_fd, TFD_TIMER_ABSTIME, &its, NULL) != 0)
        die("timerfd_settime");
    loop->armed_ns = want;
}

static void on_tick(ar_loop *loop)
{
    drain_fd(loop->tick_fd, "read(timerfd)");
    loop->armed_ns = 0;         /* a one-shot timerfd disarms when it expires */
}

static ar_timer *timer_start(ar_loop *loop, uint64_t ms, ar_timer_fn fn, void *arg)
{
    ar_timer *t = calloc(1, sizeof *t);
    if (!t)
        die("calloc(timer)");
    ar_host_count(AR_RES_TIMER, 1);
    t->deadline_ns = ar_host_now_ns() + ms * 1000000u;
    t->seq = loop->timer_seq++;
    t->fn = fn;
    t->arg = arg;
    ar_link *at = loop->timers.next; /* the first timer due after t */
    while (at != &loop->timers && AR_CONTAINER_OF(at, ar_timer, link)->deadline_ns <= t->deadline_ns)
        at = at->next;
    ar_list_insert_before(at, &t->link);
    timer_arm(loop);
    return t;
}

static void timer_free(ar_timer *t)
{
    ar_list_remove(&t->link);   /* a stale timerfd expiry only costs one empty turn */
    free(t);
    ar_host_count(AR_RES_TIMER, -1);
}

static void run_timers(ar_loop *loop)
{
    uint64_t now = ar_host_now_ns();
    uint64_t seq_limit = loop->timer_seq; /* timers started by these callbacks wait a turn */
    for (ar_timer *t; (t = first_timer(loop)) && t->deadline_ns <= now && t->seq < seq_limit;) {
        ar_list_remove(&t->link);
        t->fn(t->arg);
        free(t);
        ar_host_count(AR_RES_TIMER, -1);
    }
    timer_arm(loop);
}

/* ---- TCP: how raw_tcp.c's descriptors are watched ---- */

static uint32_t epoll_bits(unsigned events)
{
    return (events & AR_RAW_READ ? (uint32_t)EPOLLIN : 0u) |
           (events & AR_RAW_WRITE ? (uint32_t)EPOLLOUT : 0u);
}

static void tcp_watch(ar_tcp *h, unsigned was, unsigned events)
{
    struct epoll_event ev = { .events = epoll_bits(events), .data.ptr = h };
    int op = !was ? EPOLL_CTL_ADD : !events ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(ar_raw_loop_of(h)->epfd, op, ar_raw_fd(h), &ev) != 0)
        die("epoll_ctl(tcp)");
}

static const ar_raw_backend epoll_backend = { .watch = tcp_watch, .post = post };

static unsigned raw_events(uint32_t bits)
{
    uint32_t both = EPOLLHUP | EPOLLERR;
    return (bits & (EPOLLIN | both) ? AR_RAW_READ : 0u) | (bits & (EPOLLOUT | both) ? AR_RAW_WRITE : 0u);
}

/* ---- loops ---- */

static int add_watch(ar_loop *loop, int fd, uint64_t tag)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
    return epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Descriptors and buffers only: what loop_new may have made before failing. */
static void loop_release(ar_loop *loop)
{
    close_fd(loop->epfd);
    close_fd(loop->wake_fd);
    close_fd(loop->tick_fd);
    ar_raw_loop_destroy(&loop->raw);
    free(loop);
}

static ar_loop *loop_new(void)
{
    ar_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    loop->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    ar_list_init(&loop->timers);
    atomic_init(&loop->stop, false);
    if (ar_raw_loop_init(&loop->raw, &epoll_backend) != 0 ||
        loop->epfd < 0 || loop->wake_fd < 0 || loop->tick_fd < 0 ||
        add_watch(loop, loop->wake_fd, WAKE_TAG) != 0 || add_watch(loop, loop->tick_fd, TICK_TAG) != 0 ||
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
        if (events[i].data.u64 == WAKE_TAG)
            drain_fd(loop->wake_fd, "read(eventfd)");
        else if (events[i].data.u64 == TICK_TAG)
            on_tick(loop);
        else                    /* a handle closed in this batch is still allocated: skipped */
            ar_raw_ready(events[i].data.ptr, raw_events(events[i].events));
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
    ar_raw_loop_close_all(&loop->raw);
    while (!ar_list_empty(&loop->timers))
        timer_free(first_timer(loop));
    ar_post_queue_cancel_all(&loop->posts);
    ar_post_queue_destroy(&loop->posts);
    loop_release(loop);
    ar_host_count(AR_RES_LOOP, -1);
}

static const char *version(void)
{
    static char text[128];
    struct utsname u;
    return ar_host_version(text, sizeof text, "epoll (Linux %s)", uname(&u) == 0 ? u.release : "?");
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
    .timer_cancel = timer_free,
    AR_RAW_TCP_ENTRIES,
    AR_POSIX_SYNC_ENTRIES,
    AR_HOST_ENTRIES,
};
