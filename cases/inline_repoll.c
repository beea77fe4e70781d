/* inline_repoll.c: a wake re-polls the woken task on the waker's stack while
 * the waker still holds the lock the task takes first: the task deadlocks.
 *
 * Refs: nginx/ngx-rust #294 / PR #295 (schedule() ran a task woken from outside
 *       its own poll at once; hyper's pool deadlocked the same way in
 *       ngx-tickle; #218 for wakes from another runtime's thread);
 *       hyperium/h2 #546 (Streams::drop, 2021; tokio #3869 / PR #3870).
 *
 * A connection pool (hyper's pool, h2's streams) behind one non-recursive
 * lock, two real loopback TCP connections to an echo upstream, and 2 to 4
 * request handler tasks. A handler checks a connection out (lock; none idle:
 * its waker goes into the pool and it parks), sends a request, awaits the
 * echo, and drops its guard. The guard's drop takes the lock, returns the
 * connection, wakes the first parked handler WHILE STILL HOLDING the lock,
 * then unlocks. Pool and handlers live on worker 0, the nginx worker process;
 * the upstream answers from worker 1, as a separate server would:
 *
 *   worker 0: an I/O callback, no poll      worker 0: handler B, same stack
 *   ------------------------------------    ------------------------------------
 *                                           checkout: lock; nothing idle: waker
 *                                           into the pool; unlock; parked
 *   A's echo is read; the callback drops
 *   A's guard: lock(pool), return the
 *   connection, wake(B) ------------------> inline: B is polled right here
 *                                           checkout: lock(pool), held by this
 *                                           very thread further down the
 *                                           stack: never returns (deadlock)
 *   unlock(pool): never reached
 *
 * Where a guard is dropped is seeded per handler: inside its own poll, from
 * the connection's read callback (nginx's I/O event handler), from a posted
 * event, from a timer, or by the handler task's drop after an abort (the
 * teardown path: nginx drops a request's task without polling it).
 *
 *   buggy    wake = inline, schedule() before PR #295: every guard drop that
 *            finds a handler parked deadlocks
 *   partial  wake = defer_nested, the suggestion rejected in #295 (extend
 *            woken_while_running: defer only wakes made inside a poll). A drop
 *            inside a poll is deferred; one from the read callback, a posted
 *            event, a timer or a task drop is not inside any poll, so it is
 *            still inline and still deadlocks
 *   fixed    wake = deferred, PR #295: every wake is posted to the task's home
 *            loop, so B runs on a later turn, after the unlock
 *
 * The second shape from the thread (design CROSS_THREAD): the
 * connections are driven by worker 1 (a tokio sidecar next to nginx), whose
 * read callback returns a connection and wakes a handler parked on worker 0.
 * This pool wakes after unlocking (the first shape's fix in the library), so
 * the thread is the only thing wrong:
 *
 *   buggy_cross_thread   wake = inline: the handler is polled on worker 1's
 *                        thread; the runtime reports wrong_thread, and the
 *                        handler hops home without touching anything
 *   fixed_cross_thread   wake = deferred: posted back to worker 0's loop
 *
 * There only the read callback runs on worker 1: drops inside the poll, from
 * posted events, timers and task drops happen on worker 0 and are harmless.
 *
 * The upstream discussion, in our words:
 *  - The maintainers objected that nginx's loop wants I/O wakeups handled
 *    synchronously: by the time a deferred poll runs, nginx may have freed the
 *    event's result, reused the descriptor's registration or dropped the
 *    request, and AsyncRead would have to read eagerly into a buffer before
 *    waking. (Here a read callback waking its handler with no lock held is
 *    such a synchronous wakeup, and it is harmless.)
 *  - "Defer only when nested in a poll" answers the wrong question. What
 *    matters is whether the waker's caller holds a lock the woken task will
 *    take; that lock is private to the library, and a lock-holding wake from
 *    an event callback or a drop is nested in no poll, so the scheduler cannot
 *    tell it from a harmless one. partial shows exactly that.
 *  - A thread blocking on a mutex it already holds forms no cycle between two
 *    locks, so TSan's and Helgrind's lock-order checks see nothing; the
 *    process just stops. Hence the pool records its holder and checkout uses
 *    trylock: failed and held by this very thread is the deadlock, reported
 *    and unwound (the handler retries from its home loop once the lock is
 *    free); held by another thread is contention, waited for normally. With
 *    --trap the checkout really blocks, and the main thread aborts at the
 *    deadline, so the core holds the deadlocked stack.
 *
 * forced mode: 3 handlers, no arrival delay; the upstream holds its first
 * echo until a handler has parked and the poll that parked it has returned (a
 * gate, then a drain of worker 0, from the upstream's worker). Every guard is
 * dropped outside any poll, from the read callback, a posted event, a timer
 * or a task drop, rotating with the iteration (cross-thread shape: always the
 * read callback, on worker 1). buggy and partial deadlock, buggy_cross_thread
 * polls on the wrong thread, every iteration; fixed and fixed_cross_thread
 * run the same interleaving and B gets the connection on a later turn.
 * exhaustive (sim): the same 3 handlers and places (one place per program
 * seed), no gate: every schedule within the bound.
 *
 * natural and chaos: 2 to 4 handlers arrive at seeded moments within a
 * seeded window of up to --run-us and hold their connection a seeded while
 * before the request. Only a guard drop that finds a handler parked can fail
 * (partial: only one outside a poll; cross-thread: only one on worker 1).
 */
#include "asyncrace.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A variant's design: which shape of the thread it shows. */
enum shape { SAME_THREAD, CROSS_THREAD };
struct design { enum shape shape; };

enum { NGINX = 0, SIDECAR = 1 };                  /* worker roles */
enum { IN_POLL, IO_CALLBACK, POSTED, TIMER, TASK_DROP, N_PLACES }; /* where a guard drops */
enum { ARRIVING, CHECKOUT, HOLDING, AWAITING, DONE };              /* a handler's phases */
static const char *const phase_names[] = { "arriving", "checkout", "holding", "awaiting", "done" };

/* Where this case's threads race (the runtime's own points are in points.h). */
static const ar_point at_checkout = AR_POINT("handler.checkout",
    "a handler is about to lock the pool to check a connection out (arg: the handler)");
static const ar_point at_parked = AR_POINT("handler.parked",
    "nothing was idle: the handler's waker is in the pool, the lock released (arg: the handler)");
static const ar_point at_relock = AR_POINT("handler.relock",
    "a trylock of the pool failed while this very thread holds it: the deadlock (arg: the "
    "handler, -1 for a guard drop)");
static const ar_point at_arrive = AR_POINT("handler.arrive",
    "a handler's request arrived and it starts its checkout (arg: the handler)");
static const ar_point at_request = AR_POINT("handler.request",
    "a handler holds its connection and sends its request (arg: the handler)");
static const ar_point at_response = AR_POINT("handler.response",
    "the echo for a handler's request is delivered on its home loop (arg: the handler)");
static const ar_point at_guard_drop = AR_POINT("guard.drop",
    "a guard is dropped: its connection goes back to the pool (arg: where, 0 in the poll, "
    "1 read callback, 2 posted event, 3 timer, 4 task drop)");
static const ar_point at_wake_locked = AR_POINT("pool.wake_locked",
    "the guard drop wakes the first parked handler, still holding the pool lock (arg: it)");
static const ar_point at_wake = AR_POINT("pool.wake",
    "the guard drop released the pool lock and wakes the first parked handler (arg: it)");
static const ar_point at_conn_response = AR_POINT("conn.response",
    "a connection's read callback has the whole echo (arg: the handler it was for)");
static const ar_point at_upstream_respond = AR_POINT("upstream.respond",
    "the upstream read a request and is about to echo it (arg: its connection)");

static const char *const place_names[N_PLACES] = {
    "inside its handler's poll", "the connection's read callback", "a posted event",
    "a timer callback", "the aborted handler task's drop",
};

#define POOL_CONNS 2
#define MAX_HANDLERS 4
#define REQ_LEN 16

typedef struct scenario scenario;
typedef struct handler handler;

typedef struct {
    scenario *s;
    int id;
    ar_tcp *tcp;                  /* conn loop only */
    size_t got;                   /* conn loop only: bytes of the echo so far */
    handler *in_flight;           /* conn loop only: whose request is out */
    handler *owner;               /* pool lock: who has it checked out */
    char request[REQ_LEN];
} conn;

typedef struct {
    scenario *s;
    int id;
    ar_tcp *tcp;                  /* upstream loop only */
} upstream_conn;

struct handler {
    scenario *s;
    int id;
    int place;                    /* where its guard is dropped */
    uint64_t arrive_after_ns, hold_ns;  /* seeded */
    uint64_t arrive_ns, hold_until;
    _Atomic int phase;            /* its task only; atomic for the hang report */
    conn *guard;                  /* the checked-out connection */
    bool handed_off;              /* the guard travels in a posted event or timer */
    bool response;                /* home loop: the echo arrived */
    ar_waker *response_waker;     /* home loop */
    ar_join *join;                /* home loop: to abort it (TASK_DROP) */
    bool queued;                  /* pool lock: in the pool's waiters */
    ar_waker *pool_waker;         /* pool lock */
};

typedef struct {
    ar_mutex *lock;
    _Atomic uint64_t holder;      /* the holding thread's ar_thread_id(), 0 when free */
    bool wake_under_lock;         /* h2/hyper: notify, then unlock */
    int dropping_place, dropping_owner; /* pool lock: the guard drop holding it */
    conn *idle[POOL_CONNS];
    int n_idle;
    handler *waiters[MAX_HANDLERS];     /* FIFO */
    int n_waiters;
} pool;

struct scenario {
    const ar_runner *r;
    ar_rt *rt;
    int home, conn_worker, upstream_worker;
    pool pool;
    conn conns[POOL_CONNS];
    int n_connected;              /* conn loop */
    handler handlers[MAX_HANDLERS];
    int n_handlers;
    ar_tcp *listener;             /* upstream loop */
    uint16_t port;                /* written on the upstream loop before the connects */
    upstream_conn upstream[POOL_CONNS];
    int n_accepted;               /* upstream loop */
    ar_monitor mon;               /* guards the counts below */
    int outstanding;              /* handler drops + guard returns still to come */
    bool setup_failed;
    _Atomic bool trap_blocked;    /* --trap: a checkout really blocked on its own lock */
    _Atomic int listening, connected, accepted, spawned;  /* setup progress, for a hang */
    ar_gate handler_parked;       /* forced: a handler parked, and its poll returned */
    bool gated_upstream, drained; /* forced: the upstream holds its first echo */
};

static void ignore_write(void *arg, int status) { (void)arg; (void)status; }

/* Every connection ends with a reset, not a FIN (tcp_reset_on_close): nothing
 * is left in TIME_WAIT. Two connections an iteration at hundreds of
 * iterations a second would hold the whole ephemeral port range within
 * TIME_WAIT's minute, and new listens and connects would fail or stall. */

/* ---- bookkeeping for the main thread ---- */

static void count_down(scenario *s)
{
    ar_monitor_lock(&s->mon);
    s->outstanding--;
    ar_monitor_notify(&s->mon);
    ar_monitor_unlock(&s->mon);
}

static void setup_failed(scenario *s, const char *what, int err)
{
    ar_fail(AR_PANIC, "setup: %s failed (%d): no pool to test", what, err);
    ar_monitor_lock(&s->mon);
    s->setup_failed = true;
    ar_monitor_notify(&s->mon);
    ar_monitor_unlock(&s->mon);
}

/* Runs fn on worker's loop: right here when this thread runs it, else posted. */
static void on_loop(scenario *s, int worker, ar_post_fn fn, void *arg)
{
    if (ar_current_worker() == worker)
        fn(arg, false);
    else
        s->r->post(ar_rt_loop(s->rt, worker), fn, arg);
}

/* ---- the pool's lock, which knows its holder ---- */

/* False when this thread already holds the lock: the deadlock, reported. */
static bool pool_lock(scenario *s, const handler *h)
{
    pool *p = &s->pool;
    if (!s->r->mutex_trylock(p->lock)) {
        if (atomic_load_explicit(&p->holder, memory_order_relaxed) == ar_thread_id()) {
            ar_race_point(&at_relock, h ? h->id : -1);
            const handler *o = &s->handlers[p->dropping_owner];
            if (ar_trap_enabled()) {
                fprintf(stderr, "asyncrace: trap: deadlock: handler %d relocks the pool lock that "
                        "this thread holds (handler %d's guard drop from %s); blocking on it for "
                        "the core\n", h ? h->id : -1, o->id, place_names[p->dropping_place]);
                fflush(stderr);
                atomic_store(&s->trap_blocked, true);
                s->r->mutex_lock(p->lock);  /* never returns */
                abort();
            }
            if (h)
                ar_fail(AR_DEADLOCK, "handler %d polled inline on the waker's stack by handler "
                        "%d's guard drop from %s, which still holds the pool lock: the "
                        "checkout relocks it on the same thread", h->id, o->id,
                        place_names[p->dropping_place]);
            else
                ar_fail(AR_DEADLOCK, "a guard drop relocks the pool lock its own thread holds");
            return false;
        }
        s->r->mutex_lock(p->lock); /* another thread holds it: plain contention */
    }
    atomic_store_explicit(&p->holder, ar_thread_id(), memory_order_relaxed);
    return true;
}

static void pool_unlock(scenario *s)
{
    atomic_store_explicit(&s->pool.holder, 0, memory_order_relaxed);
    s->r->mutex_unlock(s->pool.lock);
}

/* Under the pool lock: takes h out of the waiters; returns its waker. */
static ar_waker *unqueue(pool *p, handler *h)
{
    for (int i = 0; i < p->n_waiters; i++)
        if (p->waiters[i] == h) {
            memmove(&p->waiters[i], &p->waiters[i + 1],
                    (size_t)(p->n_waiters - i - 1) * sizeof p->waiters[0]);
            p->n_waiters--;
            break;
        }
    h->queued = false;
    ar_waker *w = h->pool_waker;
    h->pool_waker = NULL;
    return w;
}

/* The guard's drop (hyper's Pooled<T>, h2's Streams::drop): return the
 * connection and wake the first waiter, in the first shape under the lock. */
static void guard_drop(scenario *s, conn *k, int place, handler *h)
{
    pool *p = &s->pool;
    ar_race_point(&at_guard_drop, place);
    if (!pool_lock(s, NULL))
        return;                   /* cannot happen: nothing holding it drops a guard */
    if (k->owner != h) {          /* already returned (a drop at shutdown after the callback) */
        pool_unlock(s);
        return;
    }
    k->owner = NULL;
    p->idle[p->n_idle++] = k;
    p->dropping_place = place;
    p->dropping_owner = h->id;
    ar_waker *w = NULL;
    int woken = -1;
    if (p->n_waiters) {
        woken = p->waiters[0]->id;
        w = unqueue(p, p->waiters[0]);
    }
    if (w && p->wake_under_lock) {
        ar_race_point(&at_wake_locked, woken);
        ar_wake(w);               /* inline: the waiter runs right here */
        w = NULL;
    }
    pool_unlock(s);
    if (w) {
        ar_race_point(&at_wake, woken);
        ar_wake(w);
    }
    count_down(s);
}

/* ---- the handler task ---- */

static ar_poll again(ar_cx *cx)
{
    ar_wake_by_ref(cx->waker);    /* from inside its own poll: always a later turn */
    return AR_PENDING;
}

static void send_request(void *arg, bool cancelled)
{
    conn *k = arg;
    if (cancelled || !k->tcp)
        return;
    k->in_flight = k->owner;      /* set at checkout, before this was posted */
    int err = k->s->r->tcp_write(k->tcp, k->request, REQ_LEN, ignore_write, NULL);
    if (err)
        ar_fail(AR_PANIC, "connection %d: request write failed (%d)", k->id, err);
}

/* True with h->guard set; false when parked (or after a detected deadlock). */
static bool checkout(scenario *s, handler *h, ar_cx *cx)
{
    pool *p = &s->pool;
    ar_race_point(&at_checkout, h->id);
    if (!pool_lock(s, h)) {
        ar_wake_by_ref(cx->waker); /* unwind: retry from the home loop, lock free by then */
        return false;
    }
    if (p->n_idle == 0) {
        if (!h->queued) {
            p->waiters[p->n_waiters++] = h;
            h->queued = true;
            h->pool_waker = ar_waker_clone(cx->waker);
        }
        pool_unlock(s);
        ar_race_point(&at_parked, h->id);
        return false;
    }
    conn *k = p->idle[--p->n_idle];
    k->owner = h;
    ar_waker *stale = h->queued ? unqueue(p, h) : NULL;
    pool_unlock(s);
    if (stale)
        ar_waker_drop(stale);
    h->guard = k;
    return true;
}

static void release_posted(void *arg, bool cancelled)
{
    handler *h = arg;
    if (!cancelled)
        guard_drop(h->s, h->guard, POSTED, h);
}

static void release_timer(void *arg)
{
    handler *h = arg;
    guard_drop(h->s, h->guard, TIMER, h);
}

static ar_poll handler_poll(void *state, ar_cx *cx)
{
    handler *h = state;
    scenario *s = h->s;
    if (cx->worker != s->home) {
        /* Polled on the waker's thread; the runtime counted wrong_thread.
         * Touch nothing of the home loop's: hop back there. */
        return again(cx);
    }
    switch (h->phase) {
    case ARRIVING:
        if (ar_now_ns() < h->arrive_ns)
            return again(cx);
        ar_race_point(&at_arrive, h->id);
        h->phase = CHECKOUT;
        /* fall through */
    case CHECKOUT:
        if (!checkout(s, h, cx))
            return AR_PENDING;
        h->hold_until = ar_now_ns() + h->hold_ns;
        h->phase = HOLDING;
        /* fall through */
    case HOLDING:
        if (ar_now_ns() < h->hold_until)
            return again(cx);
        h->phase = AWAITING;
        h->response_waker = ar_waker_clone(cx->waker);
        ar_race_point(&at_request, h->id);
        on_loop(s, s->conn_worker, send_request, h->guard);
        return AR_PENDING;
    case AWAITING:
        if (!h->response)
            return AR_PENDING;
        h->phase = DONE;
        switch (h->place) {
        case IN_POLL:
            guard_drop(s, h->guard, IN_POLL, h);
            break;
        case POSTED:
            h->handed_off = true;
            s->r->post(ar_rt_loop(s->rt, s->home), release_posted, h);
            break;
        case TIMER:
            h->handed_off = true;
            s->r->timer_start(ar_rt_loop(s->rt, s->home), 0, release_timer, h);
            break;
        default:                  /* IO_CALLBACK: the read callback returned it */
            break;
        }
        return AR_READY;
    }
    return AR_READY;
}

static void handler_drop(void *state)
{
    handler *h = state;
    scenario *s = h->s;
    if (h->response_waker) {
        ar_waker_drop(h->response_waker);
        h->response_waker = NULL;
    }
    ar_waker *w = NULL;
    if (pool_lock(s, NULL)) {     /* dropped while parked (at shutdown): leave the waiters */
        w = h->queued ? unqueue(&s->pool, h) : NULL;
        pool_unlock(s);
    }
    if (w)
        ar_waker_drop(w);
    if (h->guard && !h->handed_off && h->phase != DONE)
        guard_drop(s, h->guard, TASK_DROP, h);  /* Drop of the checked-out connection */
    ar_join_drop(h->join);
    count_down(s);
}

/* The echo arrived, on the home loop (the conn loop's read callback itself in
 * the first shape, an event posted from the sidecar in the second). */
static void deliver(handler *h)
{
    ar_race_point(&at_response, h->id);
    if (h->place == TASK_DROP) {  /* the request is torn down: its task dropped */
        ar_join_abort(h->join);
        return;
    }
    h->response = true;
    ar_waker *w = h->response_waker;
    h->response_waker = NULL;
    if (w)
        ar_wake(w);               /* an I/O wakeup, synchronous under inline */
}

static void deliver_posted(void *arg, bool cancelled)
{
    if (!cancelled)
        deliver(arg);
}

/* ---- connections, the upstream, and their setup (runner callbacks) ---- */

static void on_response(void *arg, const void *data, ssize_t n)
{
    conn *k = arg;
    scenario *s = k->s;
    (void)data;
    if (n <= 0)
        return;
    k->got += (size_t)n;
    if (k->got < REQ_LEN)
        return;
    k->got = 0;
    handler *h = k->in_flight;
    k->in_flight = NULL;
    if (!h)
        return;
    ar_race_point(&at_conn_response, h->id);
    if (h->place == IO_CALLBACK)
        guard_drop(s, k, IO_CALLBACK, h);  /* nginx's event handler returns it */
    if (s->conn_worker == s->home)
        deliver(h);
    else
        s->r->post(ar_rt_loop(s->rt, s->home), deliver_posted, h);
}

static void spawn_handlers(void *arg, bool cancelled)
{
    scenario *s = arg;
    if (cancelled)
        return;
    uint64_t t0 = ar_now_ns();
    for (int i = 0; i < s->n_handlers; i++) {
        handler *h = &s->handlers[i];
        h->arrive_ns = t0 + h->arrive_after_ns;
        h->join = ar_spawn_join(s->rt, s->home, handler_poll, handler_drop, h);
    }
    atomic_store(&s->spawned, 1);
}

static void on_connect(void *arg, ar_tcp *tcp, int err)
{
    conn *k = arg;
    scenario *s = k->s;
    if (!tcp) {
        if (err != -ECANCELED)          /* the loop was freed first */
            setup_failed(s, "connect", err);
        return;
    }
    k->tcp = tcp;
    s->r->tcp_reset_on_close(tcp);
    int e = s->r->tcp_read_start(tcp, on_response, k);
    if (e) {
        setup_failed(s, "read_start", e);
        return;
    }
    if (!pool_lock(s, NULL))
        return;
    s->pool.idle[s->pool.n_idle++] = k;
    pool_unlock(s);
    atomic_fetch_add(&s->connected, 1);
    if (++s->n_connected == POOL_CONNS)
        on_loop(s, s->home, spawn_handlers, s);
}

static void connect_pool(void *arg, bool cancelled)
{
    scenario *s = arg;
    if (cancelled)
        return;
    for (int i = 0; i < POOL_CONNS; i++)
        s->r->tcp_connect(ar_rt_loop(s->rt, s->conn_worker), s->port, on_connect, &s->conns[i]);
}

static void on_request(void *arg, const void *data, ssize_t n)
{
    upstream_conn *u = arg;
    if (n <= 0 || !u->tcp)
        return;
    ar_race_point(&at_upstream_respond, u->id);
    int err = u->s->r->tcp_write(u->tcp, data, (size_t)n, ignore_write, NULL);
    if (err)
        ar_fail(AR_PANIC, "upstream %d: echo write failed (%d)", u->id, err);
}

static void on_accept(void *arg, ar_tcp *tcp, int err)
{
    scenario *s = arg;
    if (!tcp) {
        setup_failed(s, "accept", err);
        return;
    }
    if (s->n_accepted == POOL_CONNS) {   /* nobody else connects: cannot happen */
        s->r->tcp_close(tcp, NULL, NULL);
        return;
    }
    atomic_fetch_add(&s->accepted, 1);
    upstream_conn *u = &s->upstream[s->n_accepted++];
    u->tcp = tcp;
    s->r->tcp_reset_on_close(tcp);
    int e = s->r->tcp_read_start(tcp, on_request, u);
    if (e)
        setup_failed(s, "upstream read_start", e);
}

static void upstream_start(void *arg, bool cancelled)
{
    scenario *s = arg;
    if (cancelled)
        return;
    ar_loop *loop = ar_rt_loop(s->rt, s->upstream_worker);
    s->listener = s->r->tcp_listen(loop, 0, on_accept, s, &s->port);
    if (!s->listener) {
        setup_failed(s, "listen", 0);
        return;
    }
    atomic_store(&s->listening, 1);
    on_loop(s, s->conn_worker, connect_pool, s);
}

/* ---- forced mode: the timeline above, with one gate ---- */

static void forced(void *ctx, const ar_point *p, long arg)
{
    scenario *s = ctx;
    (void)arg;
    if (p == &at_parked) {
        ar_gate_open(&s->handler_parked);
    } else if (p == &at_upstream_respond && s->gated_upstream && !s->drained) {
        /* No echo before a handler is parked, and has returned from the poll
         * that parked it (a wake while it is still running is only a note). */
        if (ar_gate_wait(&s->handler_parked))
            ar_rt_drain(s->rt, NGINX);
        s->drained = true;        /* the upstream's thread only */
    }
}

/* ---- one iteration ---- */

static const int outside_poll[] = { IO_CALLBACK, POSTED, TIMER, TASK_DROP };

/* Every seeded choice, drawn on the main thread before any other thread runs. */
static void plan(scenario *s, const ar_iter *it, bool cross)
{
    bool documented = ar_documented(it->mode);
    /* natural, chaos: 2 to 4 handlers arriving within a seeded window of up to
     * --run-us, each holding its connection a while before the request.
     * forced, exhaustive: the timeline's 3 handlers, all at once. */
    uint64_t window_ns = documented ? 0 : ar_rand() % (it->run_us * 1000 + 1);
    s->n_handlers = documented ? POOL_CONNS + 1
                                : POOL_CONNS + (int)(ar_rand() % (MAX_HANDLERS - POOL_CONNS + 1));
    for (int i = 0; i < s->n_handlers; i++) {
        handler *h = &s->handlers[i];
        h->s = s;
        h->id = i;
        if (documented) {         /* a search keeps one seed, so one place, per program */
            uint64_t k = it->mode == AR_FORCED ? it->index : it->seed;
            h->place = cross ? IO_CALLBACK : outside_poll[k % AR_ARRAY_LEN(outside_poll)];
        } else {
            h->place = (int)(ar_rand() % N_PLACES);
            h->arrive_after_ns = window_ns ? ar_rand() % window_ns : 0;
            h->hold_ns = window_ns ? ar_rand() % (window_ns / 4 + 1) : 0;
        }
    }
    for (int i = 0; i < POOL_CONNS; i++) {
        s->conns[i].s = s;
        s->conns[i].id = i;
        memcpy(s->conns[i].request, "GET / HTTP/1.1\n", REQ_LEN);
        s->upstream[i].s = s;
        s->upstream[i].id = i;
    }
}

static bool all_done(const void *arg)
{
    const scenario *s = arg;
    return s->outstanding == 0 || s->setup_failed;
}

static void iteration(const ar_iter *it, void *ctx)
{
    const ar_variant *v = it->variant;
    const struct design *d = v->design;
    const ar_runner *r = it->runner;
    bool cross = d->shape == CROSS_THREAD;
    scenario *s = ctx;

    s->r = r;
    s->home = NGINX;
    s->upstream_worker = it->workers > 1 ? SIDECAR : NGINX;
    s->conn_worker = cross ? s->upstream_worker : NGINX;
    s->gated_upstream = s->upstream_worker != s->home;
    ar_gate_init(&s->handler_parked, "a handler parked");
    plan(s, it, cross);
    s->pool.lock = r->mutex_new();
    if (!s->pool.lock) abort();
    s->pool.wake_under_lock = !cross;
    ar_monitor_init(&s->mon);
    s->outstanding = 2 * s->n_handlers;  /* each handler: its drop and its guard's return */

    s->rt = ar_rt_new(r, it->workers, v->wake, v->shutdown);
    r->post(ar_rt_loop(s->rt, s->upstream_worker), upstream_start, s);

    if (!ar_monitor_wait(&s->mon, all_done, s)) {
        if (atomic_load(&s->trap_blocked))  /* --trap: abort with that stack in the core */
            ar_fail(AR_DEADLOCK, "a handler blocked on the pool lock its own thread holds");
        char phases[96] = "";
        for (int i = 0; i < s->n_handlers; i++)
            snprintf(phases + strlen(phases), sizeof phases - strlen(phases), " %s",
                     phase_names[atomic_load(&s->handlers[i].phase)]);
        ar_monitor_lock(&s->mon);
        int left = s->outstanding;
        ar_monitor_unlock(&s->mon);
        ar_fail(AR_HANG, "at the deadline: %d handler drops and guard returns to come; listening "
                "%d, connected %d, accepted %d, spawned %d; handlers:%s", left,
                atomic_load(&s->listening), atomic_load(&s->connected),
                atomic_load(&s->accepted), atomic_load(&s->spawned), phases);
    }

    /* Stop and join the workers, drop what is left, and free the loops, which
     * closes every connection, the upstream's side and the listener. */
    ar_rt_shutdown(s->rt);
    ar_monitor_destroy(&s->mon);
    r->mutex_free(s->pool.lock);
}

/* ---- the variants ---- */

static const struct design same_thread = { SAME_THREAD }, cross_thread = { CROSS_THREAD };

static const ar_variant variants[] = {
    { .name = "buggy",
      .what = "wake = inline (ngx-rust before PR #295): a guard drop wakes a parked handler "
              "under the pool lock, the handler is re-polled on that stack and relocks it",
      .workers = 2, .wake = AR_WAKE_INLINE, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &same_thread, .expect = AR_REPRODUCES(AR_DEADLOCK) },
    { .name = "fixed",
      .what = "wake = deferred (PR #295): every wake is posted to the task's home loop",
      .workers = 2, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &same_thread, .twin = "buggy", .expect = AR_NEVER_IN_ANY_MODE },
    { .name = "partial",
      .what = "wake = defer_nested (rejected in #295): defer only wakes made inside a poll; "
              "guard drops from I/O callbacks, posted events, timers and task drops still "
              "deadlock",
      .workers = 2, .wake = AR_WAKE_DEFER_NESTED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &same_thread, .expect = AR_REPRODUCES(AR_DEADLOCK) },
    { .name = "buggy_cross_thread",
      .what = "wake = inline, connections driven on a second worker: a handler woken from "
              "its read callback is polled on that worker's thread",
      .workers = 2, .wake = AR_WAKE_INLINE, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &cross_thread, .expect = AR_REPRODUCES(AR_WRONG_THREAD) },
    { .name = "fixed_cross_thread",
      .what = "wake = deferred: the wake is posted back to the handler's home loop",
      .workers = 2, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &cross_thread, .twin = "buggy_cross_thread", .expect = AR_NEVER_IN_ANY_MODE },
};

static const ar_case inline_repoll = {
    .name = "inline_repoll",
    .upstream = "nginx/ngx-rust #294 / PR #295; hyperium/h2 #546 (tokio #3869 / PR #3870)",
    .summary = "a wake re-polls the woken task on the waker's stack while the waker holds the "
               "lock the task takes: deadlock (or, woken from another worker, a poll on the "
               "wrong thread)",
    .variants = variants,
    .n_variants = AR_ARRAY_LEN(variants),
    .points = (const ar_point *const[]){ &at_checkout, &at_parked, &at_relock, &at_arrive,
        &at_request, &at_response, &at_guard_drop, &at_wake_locked, &at_wake,
        &at_conn_response, &at_upstream_respond, NULL },
    .scenario_size = sizeof(scenario),
    .iteration = iteration,
    .forced = forced,
    .default_run_us = 1000,
};

int main(int argc, char **argv) { return ar_case_main(&inline_repoll, argc, argv); }
