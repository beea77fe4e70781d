/* runner_under_control.h: a real runner, run under the scheduler. Included by
 * runners/<base>_ctl.c after `#define AR_BASE ar_runner_<base>`, it defines
 * that file's table: the base runner's own functions (its real loop library,
 * its real fds and threads), with every thread of an iteration a task of sim's
 * core on real threads (runners/sim/baton.c) and every pthread, clock, sleep,
 * fd and epoll call they make handed to the core by the interposer
 * (runners/controlled/). What differs from the base table:
 *
 *   run          the iteration runs as a schedule of the core (sim_run), its
 *                tasks real threads that take turns (the first run makes and
 *                frees one loop outside any schedule first: ctl_run)
 *   scheduler    sim's strategies, seeds, searches and schedule files
 *   race_point   a scheduling point, as on sim
 *   log_now_ns   the virtual clock, untracked
 *   version      the base's, "under the scheduler"
 *
 * Everything else forwards to the base: the loop library never knows.
 */
#ifndef AR_RUNNER_UNDER_CONTROL_H
#define AR_RUNNER_UNDER_CONTROL_H

#include "runner.h"
#include "scheduler.h"
#include "sim/sched.h"

#include <stdio.h>

extern const ar_runner AR_BASE;
/* The scheduler table of every controlled runner (runners/controlled/scheduler.c). */
extern const ar_scheduler ar_scheduler_threads;
void ar_controlled_run(void (*fn)(void *), void *arg);
void ar_controlled_race_point(const char *name, long arg);

static const char *ctl_version(void)
{
    static char text[96];
    if (!text[0])
        snprintf(text, sizeof text, "%s under the scheduler (threads)", AR_BASE.version());
    return text;
}

/* A loop library initialises some state once per process in its first loop
 * (libuv: its signal lock pipe, a pipe and a write). Done inside a schedule,
 * that would give a process's first schedule points no later one has, and a
 * schedule captured late in one process would not replay first in another.
 * So the first run makes and frees one loop on the calling thread first,
 * outside any schedule. */
static void ctl_run(void (*fn)(void *), void *arg)
{
    static bool warm;
    if (!warm) {
        warm = true;
        ar_loop *l = AR_BASE.loop_new();
        if (l)
            AR_BASE.loop_free(l);
    }
    ar_controlled_run(fn, arg);
}

static ar_loop *ctl_loop_new(void) { return AR_BASE.loop_new(); }
static void ctl_loop_run(ar_loop *l) { AR_BASE.loop_run(l); }
static void ctl_loop_stop(ar_loop *l) { AR_BASE.loop_stop(l); }
static void ctl_loop_free(ar_loop *l) { AR_BASE.loop_free(l); }
static void ctl_post(ar_loop *l, ar_post_fn fn, void *arg) { AR_BASE.post(l, fn, arg); }
static ar_timer *ctl_timer_start(ar_loop *l, uint64_t ms, ar_timer_fn fn, void *arg)
{
    return AR_BASE.timer_start(l, ms, fn, arg);
}
static void ctl_timer_cancel(ar_timer *t) { AR_BASE.timer_cancel(t); }
static ar_tcp *ctl_tcp_listen(ar_loop *l, int backlog, ar_accept_fn fn, void *arg, uint16_t *port)
{
    return AR_BASE.tcp_listen(l, backlog, fn, arg, port);
}
static void ctl_tcp_connect(ar_loop *l, uint16_t port, ar_connect_fn fn, void *arg)
{
    AR_BASE.tcp_connect(l, port, fn, arg);
}
static int ctl_tcp_read_start(ar_tcp *t, ar_read_fn fn, void *arg)
{
    return AR_BASE.tcp_read_start(t, fn, arg);
}
static int ctl_tcp_read_stop(ar_tcp *t) { return AR_BASE.tcp_read_stop(t); }
static int ctl_tcp_write(ar_tcp *t, const void *buf, size_t len, ar_write_fn fn, void *arg)
{
    return AR_BASE.tcp_write(t, buf, len, fn, arg);
}
static void ctl_tcp_close(ar_tcp *t, ar_close_fn fn, void *arg) { AR_BASE.tcp_close(t, fn, arg); }
static int ctl_tcp_port(ar_tcp *t, bool peer) { return AR_BASE.tcp_port(t, peer); }
static void ctl_tcp_reset_on_close(ar_tcp *t) { AR_BASE.tcp_reset_on_close(t); }
static ar_thread *ctl_thread_start(ar_thread_fn fn, void *arg) { return AR_BASE.thread_start(fn, arg); }
static void ctl_thread_join(ar_thread *t) { AR_BASE.thread_join(t); }
static ar_mutex *ctl_mutex_new(void) { return AR_BASE.mutex_new(); }
static void ctl_mutex_lock(ar_mutex *m) { AR_BASE.mutex_lock(m); }
static bool ctl_mutex_trylock(ar_mutex *m) { return AR_BASE.mutex_trylock(m); }
static void ctl_mutex_unlock(ar_mutex *m) { AR_BASE.mutex_unlock(m); }
static void ctl_mutex_free(ar_mutex *m) { AR_BASE.mutex_free(m); }
static ar_cond *ctl_cond_new(void) { return AR_BASE.cond_new(); }
static void ctl_cond_broadcast(ar_cond *c) { AR_BASE.cond_broadcast(c); }
static bool ctl_cond_wait_until(ar_cond *c, ar_mutex *m, uint64_t deadline_ns)
{
    return AR_BASE.cond_wait_until(c, m, deadline_ns);
}
static void ctl_cond_free(ar_cond *c) { AR_BASE.cond_free(c); }
static uint64_t ctl_now_ns(void) { return AR_BASE.now_ns(); }
static void ctl_sleep_ns(uint64_t ns) { AR_BASE.sleep_ns(ns); }
static void ctl_yield(void) { AR_BASE.yield(); }
static void *ctl_thread_locals(void) { return AR_BASE.thread_locals(); }
static void ctl_resources(ar_resources *out) { AR_BASE.resources(out); }

#define AR_RUNNER_UNDER_CONTROL(runner_name)                                    \
    {                                                                           \
        .name = runner_name, .version = ctl_version, .loop_new = ctl_loop_new,  \
        .loop_run = ctl_loop_run, .loop_stop = ctl_loop_stop,                   \
        .loop_free = ctl_loop_free, .post = ctl_post,                           \
        .timer_start = ctl_timer_start, .timer_cancel = ctl_timer_cancel,       \
        .tcp_listen = ctl_tcp_listen, .tcp_connect = ctl_tcp_connect,           \
        .tcp_read_start = ctl_tcp_read_start, .tcp_read_stop = ctl_tcp_read_stop, \
        .tcp_write = ctl_tcp_write, .tcp_close = ctl_tcp_close,                 \
        .tcp_port = ctl_tcp_port, .tcp_reset_on_close = ctl_tcp_reset_on_close, \
        .thread_start = ctl_thread_start, .thread_join = ctl_thread_join,       \
        .mutex_new = ctl_mutex_new, .mutex_lock = ctl_mutex_lock,               \
        .mutex_trylock = ctl_mutex_trylock, .mutex_unlock = ctl_mutex_unlock,   \
        .mutex_free = ctl_mutex_free, .cond_new = ctl_cond_new,                 \
        .cond_broadcast = ctl_cond_broadcast,                                   \
        .cond_wait_until = ctl_cond_wait_until, .cond_free = ctl_cond_free,     \
        .now_ns = ctl_now_ns, .sleep_ns = ctl_sleep_ns, .yield = ctl_yield,     \
        .thread_locals = ctl_thread_locals, .resources = ctl_resources,         \
        .race_point = ar_controlled_race_point, .log_now_ns = sim_clock,        \
        .run = ctl_run, .scheduler = &ar_scheduler_threads,           \
    }

#endif
