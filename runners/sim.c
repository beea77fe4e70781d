/* sim.c: the deterministic runner: runner.h's table on the scheduler core.
 *
 * Every thread is a task of runners/sim/sched.c, on fibers of the one OS
 * thread that calls run(); locks and condition variables are the core's;
 * time is its virtual clock; TCP is net.c's in-memory loopback.
 *
 * A loop's thread waits in sim_wait while it has nothing to do (no posts, no
 * due timer, no ready handle, no close to finish, no stop), with the earliest
 * timer as its deadline; anything that gives it work wakes it. Each turn
 * starts with a scheduling point, then runs the ready handles, the due timers
 * (not those their callbacks start) and, unless a stop came first, one
 * snapshot of the posts; close callbacks come at the end of the turn. Posts,
 * stops, thread start and join, every lock operation, cond waits and
 * broadcasts, sleeps, yields and race points are scheduling points.
 */
#include "runner.h"
#include "scheduler.h"
#include "sim/fiber.h"
#include "sim/sched.h"
#include "sim/sim.h"
#include "sim/sim_private.h"
#include "sim/sim_runner.h"

#include <stdio.h>
#include <stdlib.h>

_Static_assert(AR_THREAD_LOCALS_BYTES == SIM_LOCALS_BYTES, "thread_locals are the core's task locals");

#define READ_CHUNK 65536

struct post_node {
    post_node *next;
    ar_post_fn fn;
    void *arg;
};

struct ar_timer {
    ar_loop *loop;
    uint64_t deadline_ns, seq;
    ar_timer_fn fn;
    void *arg;
    ar_timer *prev, *next;
};

struct ar_mutex {
    sim_mutex m;
};

struct ar_cond {
    sim_cond c;
};

static long counts[SIM_RES_KINDS];

/* Ids name loops, mutexes and conds in the log and in deadlock details. They
 * count from 1 in each run, so a replay in another process logs the same ones;
 * what is made outside a run gets -1, -2, ... */
static long object_id(void)
{
    static uint64_t serial;
    static long next, outside;
    if (!sim_in_task())
        return -++outside;
    sim_touch(SIM_OBJ_IDS, 0);
    if (serial != sim_run_serial()) {
        serial = sim_run_serial();
        next = 0;
    }
    return ++next;
}

void sim_count(sim_res_kind kind, int delta) { counts[kind] += delta; }

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "sim runner: %s\n", what);
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        die("out of memory");
    return p;
}

/* ---- posts and wake-ups ---- */

void sim_loop_wake(ar_loop *loop)
{
    sim_touch(SIM_OBJ_LOOP, loop->id);
    sim_wake_all(&loop->waiter);
}

static void post(ar_loop *loop, ar_post_fn fn, void *arg)
{
    sim_point("post", loop->id, SIM_POINT_PLAIN);
    post_node *n = malloc(sizeof *n);
    if (!n)
        die("out of memory (post)");
    *n = (post_node){ NULL, fn, arg };
    if (loop->posts_tail)
        loop->posts_tail->next = n;
    else
        loop->posts = n;
    loop->posts_tail = n;
    sim_loop_wake(loop);
}

static void run_posts(post_node *list, bool cancelled)
{
    while (list) {
        post_node *n = list;
        list = n->next;
        n->fn(n->arg, cancelled);
        free(n);
    }
}

static post_node *take_posts(ar_loop *loop)
{
    post_node *list = loop->posts;
    loop->posts = loop->posts_tail = NULL;
    return list;
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

static ar_timer *timer_start(ar_loop *loop, uint64_t ms, ar_timer_fn fn, void *arg)
{
    ar_timer *t = xcalloc(1, sizeof *t);
    sim_count(SIM_RES_TIMER, 1);
    *t = (ar_timer){ loop, sim_now() + ms * 1000000u, loop->timer_seq++, fn, arg, NULL, NULL };
    ar_timer *after = NULL;
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
    sim_loop_wake(loop);        /* a waiting loop takes the new deadline */
    return t;
}

static void timer_free(ar_timer *t)
{
    free(t);
    sim_count(SIM_RES_TIMER, -1);
}

static void timer_cancel(ar_timer *t)
{
    sim_touch(SIM_OBJ_LOOP, t->loop->id);
    timer_unlink(t);
    timer_free(t);
}

static void run_timers(ar_loop *loop)
{
    if (!loop->timers)
        return;                 /* no clock read: it would make the turn depend on every step */
    uint64_t now = sim_now(), seq_limit = loop->timer_seq;
    for (ar_timer *t = loop->timers; t && t->deadline_ns <= now && t->seq < seq_limit;
         t = loop->timers) {
        timer_unlink(t);
        t->fn(t->arg);
        timer_free(t);
    }
}

/* ---- loops ---- */

static ar_loop *loop_new(void)
{
    ar_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->read_buf = malloc(READ_CHUNK);
    if (!loop->read_buf) {
        free(loop);
        return NULL;
    }
    loop->id = object_id();
    sim_count(SIM_RES_LOOP, 1);
    return loop;
}

static bool has_work(const ar_loop *loop)
{
    sim_touch(SIM_OBJ_LOOP, loop->id);
    if (loop->handles || loop->ready_head || loop->closing_head)
        sim_touch(SIM_OBJ_NET, 0);      /* other loops' writes and connects mark them ready */
    return loop->stop || loop->posts || sim_net_has_work(loop) ||
           (loop->timers && loop->timers->deadline_ns <= sim_now());
}

static void run_turn(ar_loop *loop)
{
    sim_touch(SIM_OBJ_LOOP, loop->id);
    loop->gen++;
    sim_net_run_ready(loop);
    run_timers(loop);
    if (!loop->stop)
        run_posts(take_posts(loop), false);
    sim_net_finish_closes(loop);
}

static void loop_run(ar_loop *loop)
{
    if (loop->running)
        die("loop_run on a loop that is already running");
    loop->running = true;
    for (;;) {
        if (loop->stop) {
            loop->stop = false;
            break;
        }
        if (!has_work(loop)) {
            sim_wait_info why = { "loop_run", "loop", loop->id, -1, true };
            sim_wait(&loop->waiter, &why, loop->timers ? loop->timers->deadline_ns : 0);
            continue;
        }
        sim_point("loop.turn", loop->id, SIM_POINT_PLAIN);
        run_turn(loop);
    }
    loop->running = false;
}

static void loop_stop(ar_loop *loop)
{
    sim_point("loop_stop", loop->id, SIM_POINT_PLAIN);
    sim_touch(SIM_OBJ_LOOP, loop->id);
    loop->stop = true;
    sim_loop_wake(loop);
}

static void loop_free(ar_loop *loop)
{
    sim_touch(SIM_OBJ_LOOP, loop->id);
    sim_net_close_all(loop);
    sim_net_finish_closes(loop);
    while (loop->timers) {
        ar_timer *t = loop->timers;
        timer_unlink(t);
        timer_free(t);
    }
    for (post_node *list; (list = take_posts(loop));)
        run_posts(list, true);
    free(loop->read_buf);
    free(loop);
    sim_count(SIM_RES_LOOP, -1);
}

/* ---- threads, locks ---- */

static ar_thread *thread_start(ar_thread_fn fn, void *arg)
{
    sim_api_ready();
    sim_task *t = sim_spawn(fn, arg);
    if (!t)
        return NULL;
    sim_point("thread_start", sim_task_id(t), SIM_POINT_PLAIN);
    return (ar_thread *)t;
}

static void thread_join(ar_thread *t)
{
    sim_join((sim_task *)t);
}

static ar_mutex *mutex_new(void)
{
    ar_mutex *m = calloc(1, sizeof *m);
    if (m) {
        m->m.id = object_id();
        sim_count(SIM_RES_MUTEX, 1);
    }
    return m;
}

static void mutex_lock(ar_mutex *m) { sim_mutex_lock(&m->m); }
static bool mutex_trylock(ar_mutex *m) { return sim_mutex_trylock(&m->m); }
static void mutex_unlock(ar_mutex *m) { sim_mutex_unlock(&m->m); }

static void mutex_free(ar_mutex *m)
{
    if (!m)
        return;
    free(m);
    sim_count(SIM_RES_MUTEX, -1);
}

static ar_cond *cond_new(void)
{
    ar_cond *c = calloc(1, sizeof *c);
    if (c) {
        c->c.id = object_id();
        sim_count(SIM_RES_COND, 1);
    }
    return c;
}

static void cond_broadcast(ar_cond *c) { sim_cond_broadcast(&c->c); }

static bool cond_wait_until(ar_cond *c, ar_mutex *m, uint64_t deadline_ns)
{
    return sim_cond_wait_until(&c->c, &m->m, deadline_ns);
}

static void cond_free(ar_cond *c)
{
    if (!c)
        return;
    free(c);
    sim_count(SIM_RES_COND, -1);
}

/* ---- time, locals, resources, points, runs ---- */

static void yield(void) { sim_point("yield", 0, SIM_POINT_YIELD); }
/* A race point marks an access that may race with anything, just before it
 * or just after: the steps on both sides depend on every other step. */
static void race_point(const char *name, long arg)
{
    sim_touch_all();
    sim_point(name, arg, SIM_POINT_PLAIN);
    sim_touch_all();
}

static void resources(ar_resources *out)
{
    *out = (ar_resources){ counts[SIM_RES_LOOP], counts[SIM_RES_TCP], counts[SIM_RES_TIMER],
                           sim_live_tasks(), counts[SIM_RES_MUTEX], counts[SIM_RES_COND],
                           -1 };
}

static const char *version(void)
{
    static char text[64];
    if (!text[0])
        snprintf(text, sizeof text, "sim 1 (fibers: %s)", sim_fiber_kind());
    return text;
}

static const ar_scheduler scheduler = AR_SCHEDULER_OF_SIM(sim_configure);

const ar_runner ar_runner_sim = {
    .name = "sim",
    .version = version,
    .loop_new = loop_new,
    .loop_run = loop_run,
    .loop_stop = loop_stop,
    .loop_free = loop_free,
    .post = post,
    .timer_start = timer_start,
    .timer_cancel = timer_cancel,
    .tcp_listen = sim_tcp_listen,
    .tcp_connect = sim_tcp_connect,
    .tcp_read_start = sim_tcp_read_start,
    .tcp_read_stop = sim_tcp_read_stop,
    .tcp_write = sim_tcp_write,
    .tcp_close = sim_tcp_close,
    .tcp_port = sim_tcp_port,
    .tcp_reset_on_close = sim_tcp_reset_on_close,
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
    .now_ns = sim_now,
    .sleep_ns = sim_sleep,
    .yield = yield,
    .thread_locals = sim_locals,
    .resources = resources,
    .race_point = race_point,
    .log_now_ns = sim_clock,
    .run = sim_run,
    .scheduler = &scheduler,
};
