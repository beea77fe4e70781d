/* runtime.c: tasks, wakers, workers, spawn, block_on and the two shutdown
 * policies. See runtime.h for the policies and why they are switches.
 *
 * A task's life is a small state machine driven by CAS, so that wakes from
 * any thread, polls on the home loop and drops at shutdown never double-poll:
 *
 *   IDLE --wake(deferred)--> SCHEDULED --posted run--> RUNNING --pending--> IDLE
 *   IDLE --wake(inline)----> RUNNING (on the waker's stack)
 *   RUNNING --wake--> NOTIFIED --pending--> SCHEDULED (re-posted)
 *   RUNNING --ready--> DONE;   IDLE | SCHEDULED --drop--> DONE
 *
 * Whoever moves a task to DONE drops its state and releases the owner's
 * reference; posts and wakers hold references of their own.
 */
#include "runtime.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

enum { IDLE, SCHEDULED, RUNNING, NOTIFIED, DONE };

struct ar_task {
    _Atomic int state;
    _Atomic int refs;
    ar_rt *rt;
    int home;                     /* worker index or AR_MAIN_WORKER */
    ar_poll_fn poll;
    ar_drop_fn drop;
    void *state_ptr;
    bool in_list;                 /* guarded by rt->lock */
    ar_task *prev, *next;         /* the home worker's task list */
    _Atomic bool abort_requested;
    /* The join handle's side, guarded by rt->lock. */
    bool ended, cancelled;
    ar_waker *join_waker;
};

typedef struct worker {
    ar_rt *rt;
    int index;
    ar_loop *loop;
    ar_thread *thread;
    ar_task *tasks;               /* guarded by rt->lock */
} worker;

struct ar_rt {
    const ar_runner *r;
    int n;
    ar_wake_policy wake;
    ar_shutdown_policy shutdown;
    ar_mutex *lock;               /* task lists */
    _Atomic bool dropping;        /* stop_then_drop's drop phase: wakes are ignored */
    worker *workers;              /* n workers, then the main one at [n] */
    _Atomic(ar_task *) block_on_task;
    bool block_on_timed_out;      /* main loop's thread only */
};

/* Per thread (per fiber under sim): the worker whose loop it runs, and how
 * deep in polls it is. In the runner's thread-local block, not _Thread_local. */
typedef struct {
    worker *w;
    int poll_depth;
} rt_thread;
_Static_assert(sizeof(rt_thread) <= AR_SLOT_BYTES, "runtime slot");

static rt_thread *this_thread(void) { return ar_thread_slot(AR_SLOT_RUNTIME); }

static void set_worker(worker *w)
{
    this_thread()->w = w;
    ar_thread_label(w ? w->index : AR_NO_WORKER);
}

static worker *worker_of(const ar_rt *rt, int index)
{
    return index == AR_MAIN_WORKER ? &rt->workers[rt->n] : &rt->workers[index];
}

int ar_current_worker(void) { return this_thread()->w ? this_thread()->w->index : AR_NO_WORKER; }
bool ar_in_poll(void) { return this_thread()->poll_depth > 0; }
int ar_rt_workers(const ar_rt *rt) { return rt->n; }
const ar_runner *ar_rt_runner(const ar_rt *rt) { return rt->r; }
ar_loop *ar_rt_loop(const ar_rt *rt, int index) { return worker_of(rt, index)->loop; }

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "asyncrace: out of memory\n");
        abort();
    }
    return p;
}

/* ---- references ---- */

static void task_ref(ar_task *t) { atomic_fetch_add(&t->refs, 1); }

static void task_unref(ar_task *t)
{
    if (atomic_fetch_sub(&t->refs, 1) == 1)
        free(t);
}

ar_waker *ar_waker_clone(const ar_waker *w)
{
    task_ref((ar_task *)w);
    return (ar_waker *)w;
}

void ar_waker_drop(ar_waker *w) { task_unref((ar_task *)w); }
bool ar_waker_will_wake(const ar_waker *a, const ar_waker *b) { return a == b; }

void ar_waker_register(ar_waker **slot, const ar_cx *cx)
{
    if (*slot && ar_waker_will_wake(*slot, cx->waker))
        return;
    if (*slot)
        ar_waker_drop(*slot);
    *slot = ar_waker_clone(cx->waker);
}

void ar_waker_take_wake(ar_waker **slot)
{
    ar_waker *w = *slot;
    *slot = NULL;
    if (w)
        ar_wake(w);
}

/* ---- completion and drop ---- */

static void list_unlink(ar_rt *rt, ar_task *t)
{
    rt->r->mutex_lock(rt->lock);
    if (t->in_list) {
        worker *w = worker_of(rt, t->home);
        if (t->prev) t->prev->next = t->next;
        else w->tasks = t->next;
        if (t->next) t->next->prev = t->prev;
        t->in_list = false;
    }
    rt->r->mutex_unlock(rt->lock);
}

/* Called by whoever moved the task to DONE. */
static void task_finish(ar_task *t, bool cancelled)
{
    ar_rt *rt = t->rt;
    list_unlink(rt, t);
    t->drop(t->state_ptr);
    rt->r->mutex_lock(rt->lock);
    t->ended = true;
    t->cancelled = cancelled;
    ar_waker *joiner = t->join_waker;
    t->join_waker = NULL;
    rt->r->mutex_unlock(rt->lock);
    if (joiner)
        ar_wake(joiner);
    if (atomic_load(&rt->block_on_task) == t)
        rt->r->loop_stop(worker_of(rt, AR_MAIN_WORKER)->loop);
    task_unref(t);
}

/* Moves an idle or scheduled task to DONE and drops it. A task that is being
 * polled (inline on another thread) is waited for, within the deadline. */
static void task_cancel(ar_task *t)
{
    for (;;) {
        int s = atomic_load(&t->state);
        if (s == DONE)
            return;
        if (s == RUNNING || s == NOTIFIED) {
            if (ar_now_ns() > ar_deadline_ns()) {
                ar_fail(AR_HANG, "shutdown: task on worker %d still running at the deadline", t->home);
                return;
            }
            t->rt->r->yield();
            continue;
        }
        if (atomic_compare_exchange_weak(&t->state, &s, DONE))
            break;
    }
    ar_race_point(&ar_at_drop_task, t->home);
    task_finish(t, true);
}

/* ---- polling ---- */

static void post_task(ar_task *t);

/* The task is RUNNING and owned by this call. */
static void poll_task(ar_task *t)
{
    ar_rt *rt = t->rt;
    int here = ar_current_worker();
    if (atomic_load(&t->abort_requested)) {
        atomic_store(&t->state, DONE);
        ar_race_point(&ar_at_drop_aborted, t->home);
        task_finish(t, true);
        return;
    }
    if (here != t->home)
        ar_fail(AR_WRONG_THREAD, "task of worker %d polled on %s %d", t->home,
                here == AR_NO_WORKER ? "foreign thread" : "worker", here);
    ar_race_point(&ar_at_poll, t->home);

    ar_cx cx = { rt, (const ar_waker *)t, here };
    this_thread()->poll_depth++;
    ar_poll r = t->poll(t->state_ptr, &cx);
    this_thread()->poll_depth--;

    if (r == AR_READY) {
        atomic_store(&t->state, DONE);
        task_finish(t, false);
        return;
    }
    int s = RUNNING;
    if (atomic_compare_exchange_strong(&t->state, &s, IDLE))
        return;
    /* Woken while running: run again on a later turn of the home loop. */
    atomic_store(&t->state, SCHEDULED);
    post_task(t);
}

static void run_posted(void *arg, bool cancelled)
{
    ar_task *t = arg;
    int s = SCHEDULED;
    if (!cancelled && atomic_compare_exchange_strong(&t->state, &s, RUNNING)) {
        task_ref(t);              /* poll_task may finish it */
        poll_task(t);
        task_unref(t);
    }
    task_unref(t);                /* the post's reference */
}

static void post_task(ar_task *t)
{
    task_ref(t);
    t->rt->r->post(worker_of(t->rt, t->home)->loop, run_posted, t);
}

/* ---- waking ---- */

static bool wake_inline(const ar_rt *rt)
{
    switch (rt->wake) {
    case AR_WAKE_INLINE: return true;
    case AR_WAKE_DEFER_NESTED: return !ar_in_poll();
    case AR_WAKE_DEFERRED: break;
    }
    return false;
}

void ar_wake_by_ref(const ar_waker *w)
{
    ar_task *t = (ar_task *)w;
    ar_rt *rt = t->rt;
    ar_race_point(&ar_at_wake, t->home);
    if (atomic_load(&rt->dropping))
        return;
    for (;;) {
        int s = atomic_load(&t->state);
        if (s == DONE || s == SCHEDULED || s == NOTIFIED)
            return;
        if (s == RUNNING) {
            if (atomic_compare_exchange_weak(&t->state, &s, NOTIFIED))
                return;
            continue;
        }
        if (wake_inline(rt)) {
            /* The design under test: re-poll right here, on the waker's stack. */
            if (atomic_compare_exchange_weak(&t->state, &s, RUNNING)) {
                task_ref(t);
                poll_task(t);
                task_unref(t);
                return;
            }
        } else if (atomic_compare_exchange_weak(&t->state, &s, SCHEDULED)) {
            post_task(t);
            return;
        }
    }
}

void ar_wake(ar_waker *w)
{
    ar_wake_by_ref(w);
    ar_waker_drop(w);
}

/* ---- spawning ---- */

static ar_task *task_new(ar_rt *rt, int home, ar_poll_fn poll, ar_drop_fn drop, void *state)
{
    ar_task *t = xcalloc(1, sizeof *t);
    atomic_init(&t->state, SCHEDULED);
    atomic_init(&t->refs, 1);     /* the owner's */
    t->rt = rt;
    t->home = home;
    t->poll = poll;
    t->drop = drop;
    t->state_ptr = state;

    worker *w = worker_of(rt, home);
    rt->r->mutex_lock(rt->lock);
    t->next = w->tasks;
    if (w->tasks) w->tasks->prev = t;
    w->tasks = t;
    t->in_list = true;
    rt->r->mutex_unlock(rt->lock);
    return t;
}

ar_join *ar_spawn_join(ar_rt *rt, int worker_index, ar_poll_fn poll, ar_drop_fn drop, void *state)
{
    if (worker_index != AR_MAIN_WORKER && (worker_index < 0 || worker_index >= rt->n)) {
        fprintf(stderr, "asyncrace: spawn on worker %d of %d\n", worker_index, rt->n);
        abort();
    }
    ar_task *t = task_new(rt, worker_index, poll, drop, state);
    task_ref(t);                  /* the join handle's */
    ar_race_point(&ar_at_spawn, worker_index);
    post_task(t);
    return (ar_join *)t;
}

void ar_spawn(ar_rt *rt, int worker_index, ar_poll_fn poll, ar_drop_fn drop, void *state)
{
    ar_join_drop(ar_spawn_join(rt, worker_index, poll, drop, state));
}

bool ar_join_poll(ar_join *j, ar_cx *cx)
{
    ar_task *t = (ar_task *)j;
    ar_rt *rt = t->rt;
    rt->r->mutex_lock(rt->lock);
    bool ended = t->ended;
    if (!ended)
        ar_waker_register(&t->join_waker, cx);  /* a replaced waker's drop never wakes */
    rt->r->mutex_unlock(rt->lock);
    return ended;
}

bool ar_join_was_cancelled(const ar_join *j)
{
    ar_task *t = (ar_task *)j;
    t->rt->r->mutex_lock(t->rt->lock);
    bool c = t->cancelled;
    t->rt->r->mutex_unlock(t->rt->lock);
    return c;
}

void ar_join_abort(ar_join *j)
{
    ar_task *t = (ar_task *)j;
    atomic_store(&t->abort_requested, true);
    ar_race_point(&ar_at_abort, t->home);
    /* Always through the home loop, whatever the wake policy: the drop must
     * run there, not on the aborting thread. */
    for (;;) {
        int s = atomic_load(&t->state);
        if (s == DONE || s == SCHEDULED || s == NOTIFIED)
            return;               /* the next poll sees the flag */
        if (s == RUNNING) {       /* make the poller post it again */
            if (atomic_compare_exchange_weak(&t->state, &s, NOTIFIED))
                return;
        } else if (atomic_compare_exchange_weak(&t->state, &s, SCHEDULED)) {
            post_task(t);
            return;
        }
    }
}

void ar_join_drop(ar_join *j)
{
    ar_task *t = (ar_task *)j;
    ar_rt *rt = t->rt;
    rt->r->mutex_lock(rt->lock);
    ar_waker *w = t->join_waker;
    t->join_waker = NULL;
    rt->r->mutex_unlock(rt->lock);
    if (w)
        ar_waker_drop(w);
    task_unref(t);
}

static void block_on_deadline(void *arg)
{
    ar_rt *rt = arg;
    rt->block_on_timed_out = true;
    rt->r->loop_stop(worker_of(rt, AR_MAIN_WORKER)->loop);
}

bool ar_block_on(ar_rt *rt, ar_poll_fn poll, ar_drop_fn drop, void *state)
{
    worker *main_worker = worker_of(rt, AR_MAIN_WORKER);
    ar_task *t = task_new(rt, AR_MAIN_WORKER, poll, drop, state);
    task_ref(t);                  /* to read its state after it finished */
    atomic_store(&rt->block_on_task, t);
    rt->block_on_timed_out = false;
    post_task(t);

    uint64_t now = ar_now_ns(), deadline = ar_deadline_ns();
    uint64_t ms = deadline > now ? (deadline - now) / 1000000 + 1 : 0;
    worker *saved = this_thread()->w;
    set_worker(main_worker);
    ar_timer *timer = rt->r->timer_start(main_worker->loop, ms, block_on_deadline, rt);
    rt->r->loop_run(main_worker->loop);
    bool done = atomic_load(&t->state) == DONE;
    if (!rt->block_on_timed_out)
        rt->r->timer_cancel(timer);
    if (!done)
        ar_fail(AR_HANG, "block_on: task still pending at the deadline");
    set_worker(saved);
    atomic_store(&rt->block_on_task, NULL);
    task_unref(t);
    return done;
}

static ar_poll join_poll(void *j, ar_cx *cx) { return ar_join_poll(j, cx) ? AR_READY : AR_PENDING; }
static void no_drop(void *p) { (void)p; }

bool ar_block_on_join(ar_rt *rt, ar_join *j)
{
    return ar_block_on(rt, join_poll, no_drop, j);
}

/* ---- barrier ---- */

typedef struct {
    const ar_runner *r;
    ar_mutex *lock;
    ar_cond *cond;
    bool reached, abandoned;      /* abandoned: the waiter gave up; the post frees */
} barrier;

static void barrier_free(barrier *b)
{
    b->r->cond_free(b->cond);
    b->r->mutex_free(b->lock);
    free(b);
}

static void barrier_reached(void *arg, bool cancelled)
{
    barrier *b = arg;
    b->r->mutex_lock(b->lock);
    b->reached = true;
    bool abandoned = b->abandoned;
    b->r->cond_broadcast(b->cond);
    b->r->mutex_unlock(b->lock);
    if (abandoned)
        barrier_free(b);
}

bool ar_rt_drain(ar_rt *rt, int worker_index)
{
    barrier *b = xcalloc(1, sizeof *b);
    b->r = rt->r;
    b->lock = rt->r->mutex_new();
    b->cond = rt->r->cond_new();
    rt->r->post(worker_of(rt, worker_index)->loop, barrier_reached, b);
    rt->r->mutex_lock(b->lock);
    while (!b->reached && rt->r->cond_wait_until(b->cond, b->lock, ar_deadline_ns()))
        ;
    bool reached = b->reached;
    b->abandoned = !reached;
    rt->r->mutex_unlock(b->lock);
    if (reached)
        barrier_free(b);
    else
        ar_fail(AR_HANG, "drain: worker %d did not reach the barrier before the deadline", worker_index);
    return reached;
}

/* ---- workers and shutdown ---- */

/* Detaches a worker's task list, holding a reference to each task. */
static size_t take_tasks(ar_rt *rt, worker *w, ar_task ***out)
{
    rt->r->mutex_lock(rt->lock);
    size_t n = 0;
    for (ar_task *t = w->tasks; t; t = t->next) n++;
    ar_task **v = xcalloc(n ? n : 1, sizeof *v);
    size_t i = 0;
    for (ar_task *t = w->tasks; t; t = t->next) {
        t->in_list = false;
        task_ref(t);
        v[i++] = t;
    }
    w->tasks = NULL;
    rt->r->mutex_unlock(rt->lock);
    *out = v;
    return n;
}

static void drop_worker_tasks(ar_rt *rt, worker *w)
{
    ar_task **v;
    size_t n = take_tasks(rt, w, &v);
    /* Spawn order, oldest first: the list is newest first. */
    for (size_t i = n; i-- > 0;) {
        task_cancel(v[i]);
        task_unref(v[i]);
    }
    free(v);
}

static void worker_main(void *arg)
{
    worker *w = arg;
    ar_rt *rt = w->rt;
    set_worker(w);
    rt->r->loop_run(w->loop);
    ar_race_point(&ar_at_worker_loop_exited, w->index);
    if (rt->shutdown == AR_SHUTDOWN_DROP_AS_STOPPED)
        drop_worker_tasks(rt, w); /* while other workers may still be polling */
    ar_race_point(&ar_at_worker_done, w->index);
    set_worker(NULL);
}

ar_rt *ar_rt_new(const ar_runner *r, int workers, ar_wake_policy wake, ar_shutdown_policy shutdown)
{
    ar_rt *rt = xcalloc(1, sizeof *rt);
    rt->r = r;
    rt->n = workers;
    rt->wake = wake;
    rt->shutdown = shutdown;
    rt->lock = r->mutex_new();
    atomic_init(&rt->dropping, false);
    atomic_init(&rt->block_on_task, NULL);
    rt->workers = xcalloc((size_t)workers + 1, sizeof *rt->workers);
    for (int i = 0; i <= workers; i++) {
        worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i == workers ? AR_MAIN_WORKER : i;
        w->loop = r->loop_new();
        if (!w->loop || !rt->lock) {
            fprintf(stderr, "asyncrace: %s: cannot create a loop\n", r->name);
            abort();
        }
    }
    for (int i = 0; i < workers; i++) {
        rt->workers[i].thread = r->thread_start(worker_main, &rt->workers[i]);
        if (!rt->workers[i].thread) {
            fprintf(stderr, "asyncrace: cannot start worker thread %d\n", i);
            abort();
        }
    }
    return rt;
}

void ar_rt_shutdown(ar_rt *rt)
{
    const ar_runner *r = rt->r;
    for (int i = 0; i < rt->n; i++) {
        ar_race_point(&ar_at_shutdown_stop, i);
        r->loop_stop(rt->workers[i].loop);
    }
    for (int i = 0; i < rt->n; i++)
        r->thread_join(rt->workers[i].thread);
    ar_race_point(&ar_at_shutdown_joined, rt->n);

    /* stop_then_drop: nothing runs any more, so no drop can be observed by a
     * task that is still being polled. drop_as_stopped: only leftovers. */
    if (rt->shutdown == AR_SHUTDOWN_STOP_THEN_DROP)
        atomic_store(&rt->dropping, true);
    for (int i = 0; i <= rt->n; i++)
        drop_worker_tasks(rt, &rt->workers[i]);
    atomic_store(&rt->dropping, true);
    for (int i = 0; i <= rt->n; i++)
        r->loop_free(rt->workers[i].loop); /* cancels posts: releases their references */
    r->mutex_free(rt->lock);
    free(rt->workers);
    free(rt);
}
