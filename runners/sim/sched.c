/* sched.c: tasks, the runnable set, waits, the virtual clock, runs and their
 * abandonment (see sched.h). Single OS thread: no locks anywhere. */
#include "sched.h"
#include "contexts.h"
#include "log.h"
#include "strategy.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const sim_status_names[SIM_STATUS_COUNT] = { "ok", "deadlock", "step_bound",
                                                          "uncontrolled" };

enum task_state { T_RUNNABLE, T_BLOCKED, T_DONE };
enum session { NO_SESSION, IN_RUN, ADOPTED };

struct sim_task {
    int id;
    enum task_state state;
    bool timed_out;            /* the last wait ended by its deadline */
    bool in_timed;
    uint64_t run;              /* the run (or adopted session) it belongs to */
    sim_fiber *fiber;          /* NULL once its function returned */
    void (*fn)(void *);
    void *arg;
    sim_waitq *q;              /* the queue it is blocked on, or NULL */
    sim_task *q_prev, *q_next;
    uint64_t deadline;
    sim_task *t_prev, *t_next; /* the timed list, by (deadline, id) */
    sim_wait_info wait;
    int wait_kind;             /* a timed wait's footprint kind (waited_kind), -1 for none */
    sim_waitq joiners;
    sim_event next;            /* what it does when it runs next (the decisions' events) */
    uint64_t steps;            /* its own scheduling points so far (names its decisions) */
    sim_task *all_prev, *all_next; /* every task of the session, by id */
    unsigned char *locals;
    _Alignas(16) unsigned char own_locals[SIM_LOCALS_BYTES];
};

static _Alignas(16) unsigned char host_locals[SIM_LOCALS_BYTES];
static sim_task host_holder = { .id = 0, .locals = host_locals }; /* "the host holds it" */

struct sim_sched_state {
    sim_sched_config cfg;
    enum session session;
    uint64_t run;              /* increments per run and adopted session */
    sim_task *current;         /* the running task; NULL on the host outside tasks */
    sim_fiber *running;        /* the fiber on the CPU */
    sim_fiber *host;           /* the OS thread's own context */
    sim_fiber *abandoned;      /* the fiber that ended a run early */
    bool ended;                /* sim_end_run: ended early, status ok */
    sim_task *host_task;       /* an adopted session's task 0 */
    sim_task **runnable;       /* by id */
    int *runnable_ids;
    sim_event *runnable_events; /* filled for each decision */
    int n_runnable, cap_runnable;
    int n_blocked;
    sim_task *timed;
    sim_task *all, *all_tail;
    int next_id;
    uint64_t now, steps, decisions, tasks;
    sim_rng jitter;            /* the run's step lengths, when they vary */
    sim_status status;
    char detail[1024];
    sim_log log;
    long live;
    sim_chunk chunk;           /* what ran since the last decision */
    int chunk_task;            /* the task the last decision chose */
    bool chunk_first_done;     /* it reached its first point since */
    sim_segment *seg;          /* the chunk's segments (sim_chunk's seg) */
    size_t cap_seg;
    bool seg_cut;              /* the last segment's task reached a point: its next
                                  touch opens another (one event per step, for DPOR) */
};

/* The core's state is an instance (sim_sched_state_new); S is the current
 * one, the first made at start-up. Every function below acts on it. */
#define SIM_SCHED_STATE_INIT { .now = SIM_EPOCH_NS, .cfg = { .step_ns = 1000 } }
static sim_sched_state first_state = SIM_SCHED_STATE_INIT;
static sim_sched_state *S = &first_state;
static uint64_t runs_made;

sim_sched_state *sim_sched_state_new(void)
{
    sim_sched_state *s = malloc(sizeof *s);
    if (s)
        *s = (sim_sched_state)SIM_SCHED_STATE_INIT;
    return s;
}

static _Noreturn void fatal(const char *fmt, ...);

sim_sched_state *sim_sched_state_use(sim_sched_state *s)
{
    if (S->session != NO_SESSION)
        fatal("another instance of the core made current inside a run or session");
    sim_sched_state *was = S;
    S = s;
    return was;
}

void sim_sched_state_free(sim_sched_state *s)
{
    if (s == S || s == &first_state)
        fatal("freeing the current or the first instance of the core");
    free(s->runnable);
    free(s->runnable_ids);
    free(s->runnable_events);
    free(s->seg);
    sim_log_free(&s->log);
    free(s);
}

static _Thread_local bool on_sched_thread;

/* Where tasks run: fibers unless the configuration names the threads. */
#define CTX (S->cfg.contexts ? S->cfg.contexts : &sim_fibers)

static _Noreturn void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "sim: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    fflush(stderr);
    abort();
}

static void check_thread(void)
{
    if (!on_sched_thread && !(CTX->owns_caller && CTX->owns_caller()))
        fatal("called from an OS thread the scheduler does not own (a raw pthread?)");
}

void sim_sched_configure(const sim_sched_config *c)
{
    if (S->session == IN_RUN)
        fatal("sim_sched_configure inside a run");
    S->cfg = *c;
}

const sim_log *sim_sched_log(void) { return &S->log; }
bool sim_in_task(void) { return S->current != NULL; }
/* Asks the calling thread's own state first: a thread that is no task (a
 * watchdog, the host) must not read S, which the host writes meanwhile. */
bool sim_caller_is_task(void)
{
    return sim_threads.owns_caller() && S->current;
}

/* A run on threads is on: read by any thread (the interposer's test for a
 * thread the scheduler did not start); written by the host around a run. */
static _Atomic bool threads_run_on;

bool sim_caller_is_foreign(void)
{
    return atomic_load_explicit(&threads_run_on, memory_order_acquire) &&
           !sim_threads.owns_caller() && !sim_threads_caller_is_harness();
}

/* The first foreign call of a run, noted by its thread (0: none, 1: being
 * written, 2: written); the holder of the baton ends the run at its next step. */
static _Atomic int foreign_state;
static char foreign_detail[sizeof S->detail];

void sim_note_foreign(const char *fmt, ...)
{
    int none = 0;
    if (!atomic_compare_exchange_strong(&foreign_state, &none, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(foreign_detail, sizeof foreign_detail, fmt, ap);
    va_end(ap);
    atomic_store_explicit(&foreign_state, 2, memory_order_release);
}
uint64_t sim_run_serial(void) { return S->run; }
sim_task *sim_self(void) { return S->current; }
int sim_task_id(const sim_task *t) { return t ? t->id : -1; }
unsigned long sim_task_os_thread(const sim_task *t)
{
    return t && t->fiber && CTX->os_thread ? CTX->os_thread(t->fiber) : 0;
}
void *sim_locals(void) { return S->current ? S->current->locals : host_locals; }
long sim_live_tasks(void) { return S->live; }
uint64_t sim_clock(void) { return S->now; }

uint64_t sim_now(void)
{
    sim_touch_all();            /* what it reads depends on every step before it */
    return S->now;
}

/* ---- footprints of what runs between decisions (strategy.h's sleep sets) ---- */

static void fp_add(sim_footprint *fp, sim_object_kind kind, long id)
{
    uint64_t h = ((uint64_t)kind << 56) ^ (uint64_t)id;
    h = (h ^ (h >> 31)) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    fp->bits[(h >> 6) & 3] |= 1ull << (h & 63);
}

static void segment_open(int task)
{
    S->seg = sim_grow(S->seg, &S->cap_seg, (size_t)S->chunk.nseg + 1, sizeof *S->seg);
    S->seg[S->chunk.nseg++] = (sim_segment){ .task = task };
    S->chunk.seg = S->seg;
    S->seg_cut = false;
}

/* The segment the running task's step touches: a step after a point without
 * a decision (it ran alone) is an event of its own for DPOR, which must not
 * see one step's race through another step's later dependence (and prunes
 * more so: sleep_sets_random's generator raised by hand to 300 programs, at
 * bound 2 317,694 schedules against 328,811 with a segment per stretch of a
 * task). A step that touches nothing needs no segment: it is ordered with
 * nothing but its task's steps. */
static sim_footprint *segment_fp(void)
{
    if (S->seg_cut)
        segment_open(S->current->id);
    return &S->seg[S->chunk.nseg - 1].fp;
}

void sim_touch(sim_object_kind kind, long id)
{
    if (!S->current || S->session != IN_RUN)
        return;
    fp_add(&S->chunk.fp, kind, id);
    fp_add(segment_fp(), kind, id);
}

void sim_touch_all(void)
{
    if (S->current && S->session == IN_RUN) {
        S->chunk.fp.all = true;
        segment_fp()->all = true;
    }
}

static void chunk_ran(const sim_task *t)
{
    if (!S->chunk.nseg || S->seg[S->chunk.nseg - 1].task != t->id)
        segment_open(t->id);
    if (t->id >= 0 && t->id < 64)
        S->chunk.ran |= 1ull << t->id;
    else
        S->chunk.ran_many = true;
}

static void chunk_start(const sim_task *chosen)
{
    S->chunk = (sim_chunk){ .ran = 0 };
    S->chunk_task = chosen->id;
    S->chunk_first_done = false;
    chunk_ran(chosen);
}

/* t reached a point (blocked: it cannot go on there). */
static void chunk_point(const sim_task *t, bool blocked)
{
    S->seg_cut = true;
    if (t->id == S->chunk_task && !S->chunk_first_done) {
        S->chunk_first_done = true;
        S->chunk.first_blocked = blocked;
    }
}

/* ---- the runnable set (ascending ids) and the timed list ---- */

static void runnable_insert(sim_task *t)
{
    if (S->n_runnable == S->cap_runnable) {
        int cap = S->cap_runnable ? 2 * S->cap_runnable : 16;
        S->runnable = realloc(S->runnable, (size_t)cap * sizeof *S->runnable);
        S->runnable_ids = realloc(S->runnable_ids, (size_t)cap * sizeof *S->runnable_ids);
        S->runnable_events = realloc(S->runnable_events, (size_t)cap * sizeof *S->runnable_events);
        if (!S->runnable || !S->runnable_ids || !S->runnable_events)
            fatal("out of memory");
        S->cap_runnable = cap;
    }
    int i = S->n_runnable;
    while (i > 0 && S->runnable_ids[i - 1] > t->id) {
        S->runnable[i] = S->runnable[i - 1];
        S->runnable_ids[i] = S->runnable_ids[i - 1];
        i--;
    }
    S->runnable[i] = t;
    S->runnable_ids[i] = t->id;
    S->n_runnable++;
}

static void runnable_remove(sim_task *t)
{
    int i = 0;
    while (i < S->n_runnable && S->runnable[i] != t)
        i++;
    if (i == S->n_runnable)
        return;
    for (; i + 1 < S->n_runnable; i++) {
        S->runnable[i] = S->runnable[i + 1];
        S->runnable_ids[i] = S->runnable_ids[i + 1];
    }
    S->n_runnable--;
}

static void timed_insert(sim_task *t, uint64_t deadline)
{
    t->deadline = deadline;
    sim_task *after = NULL;
    for (sim_task *p = S->timed; p && (p->deadline < deadline || (p->deadline == deadline && p->id < t->id));
         p = p->t_next)
        after = p;
    t->t_prev = after;
    t->t_next = after ? after->t_next : S->timed;
    if (t->t_next)
        t->t_next->t_prev = t;
    if (after)
        after->t_next = t;
    else
        S->timed = t;
    t->in_timed = true;
}

static void timed_remove(sim_task *t)
{
    if (t->t_prev)
        t->t_prev->t_next = t->t_next;
    else
        S->timed = t->t_next;
    if (t->t_next)
        t->t_next->t_prev = t->t_prev;
    t->t_prev = t->t_next = NULL;
    t->in_timed = false;
}

/* ---- wait queues ---- */

/* Tasks of an older run were dropped with it: their queue entries too. */
static void waitq_sync(sim_waitq *q)
{
    if (q->run != S->run) {
        q->head = q->tail = NULL;
        q->run = S->run;
    }
}

static void waitq_push(sim_waitq *q, sim_task *t)
{
    waitq_sync(q);
    t->q = q;
    t->q_next = NULL;
    t->q_prev = q->tail;
    if (q->tail)
        q->tail->q_next = t;
    else
        q->head = t;
    q->tail = t;
}

static void waitq_remove(sim_task *t)
{
    sim_waitq *q = t->q;
    if (t->q_prev)
        t->q_prev->q_next = t->q_next;
    else
        q->head = t->q_next;
    if (t->q_next)
        t->q_next->q_prev = t->q_prev;
    else
        q->tail = t->q_prev;
    t->q = NULL;
    t->q_prev = t->q_next = NULL;
}

bool sim_waitq_empty(sim_waitq *q)
{
    waitq_sync(q);
    return q->head == NULL;
}

static void wake(sim_task *t, bool timed_out)
{
    if (t->state != T_BLOCKED)
        return;
    if (t->q)
        waitq_remove(t);
    if (t->in_timed)
        timed_remove(t);
    t->state = T_RUNNABLE;
    t->timed_out = timed_out;
    S->n_blocked--;
    runnable_insert(t);
}

void sim_wake_task(sim_task *t)
{
    sim_touch(SIM_OBJ_TASK, t->id);
    wake(t, false);
}

void sim_wake_one(sim_waitq *q)
{
    waitq_sync(q);
    if (q->head)
        wake(q->head, false);
}

size_t sim_waitq_len(sim_waitq *q)
{
    waitq_sync(q);
    size_t n = 0;
    for (sim_task *t = q->head; t; t = t->q_next)
        n++;
    return n;
}

void sim_wake_nth(sim_waitq *q, size_t k)
{
    waitq_sync(q);
    sim_task *t = q->head;
    while (t && k--)
        t = t->q_next;
    if (t)
        wake(t, false);
}

void sim_wake_all(sim_waitq *q)
{
    waitq_sync(q);
    while (q->head)
        wake(q->head, false);
}

static void fire_due(void)
{
    while (S->timed && S->timed->deadline <= S->now)
        wake(S->timed, true);
}

/* ---- ending a run early ---- */

static size_t describe_wait(char *buf, size_t n, const sim_task *t)
{
    const sim_wait_info *w = &t->wait;
    int k;
    if (w->object && w->owner >= 0)
        k = snprintf(buf, n, "task %d: %s(%s %ld, held by task %d)", t->id, w->what, w->object,
                     w->id, w->owner);
    else if (w->object)
        k = snprintf(buf, n, "task %d: %s(%s %ld)", t->id, w->what, w->object, w->id);
    else
        k = snprintf(buf, n, "task %d: %s", t->id, w->what);
    return k < 0 ? 0 : (size_t)k < n ? (size_t)k : n - 1;
}

static void append(size_t *len, const char *fmt, ...)
{
    if (*len >= sizeof S->detail - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(S->detail + *len, sizeof S->detail - *len, fmt, ap);
    va_end(ap);
    if (k > 0)
        *len += (size_t)k < sizeof S->detail - *len ? (size_t)k : sizeof S->detail - 1 - *len;
}

static void append_blocked(size_t *len)
{
    const char *sep = "";
    for (sim_task *t = S->all; t; t = t->all_next) {
        if (t->state != T_BLOCKED)
            continue;
        append(len, "%s", sep);
        if (*len < sizeof S->detail - 1)
            *len += describe_wait(S->detail + *len, sizeof S->detail - *len, t);
        sep = "; ";
    }
}

static _Noreturn void abandon(sim_status status)
{
    S->status = status;
    if (S->session == ADOPTED)
        fatal("%s (outside a run: cannot abandon the host)", S->detail);
    sim_fiber *f = S->running;
    S->current = NULL;
    S->running = S->host;
    S->abandoned = f;
    CTX->switch_to(f, S->host);
    fatal("an abandoned task was resumed");
}

/* A task ends the run now, with this status and detail. */
static _Noreturn void end_here(sim_status status, bool ended, const char *fmt, va_list ap)
{
    if (!S->current || S->session != IN_RUN)
        fatal("a run ended outside a run's task");
    vsnprintf(S->detail, sizeof S->detail, fmt, ap);
    S->ended = ended;
    abandon(status);
}

_Noreturn void sim_lost_control(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    end_here(SIM_UNCONTROLLED, false, fmt, ap);
}

_Noreturn void sim_end_run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    end_here(SIM_OK, true, fmt, ap);
}

static void check_foreign(void)
{
    if (atomic_load_explicit(&foreign_state, memory_order_acquire) == 2 && S->session == IN_RUN)
        sim_lost_control("%s", foreign_detail);
}

static _Noreturn void deadlock(void)
{
    size_t len = 0;
    append(&len, "deadlock: no task can run; ");
    append_blocked(&len);
    abandon(SIM_DEADLOCK);
}

static _Noreturn void step_bound_hit(const char *point)
{
    size_t len = 0;
    append(&len, "step bound: %llu steps and the run has not ended; task %d at '%s'; runnable:",
           (unsigned long long)S->cfg.step_bound, sim_task_id(S->current), point);
    for (int i = 0; i < S->n_runnable; i++)
        append(&len, " %d", S->runnable_ids[i]);
    if (S->n_blocked) {
        append(&len, "; waiting: ");
        append_blocked(&len);
    }
    abandon(SIM_STEP_BOUND);
}

/* ---- steps and picks ---- */

/* The footprint kind of what a wait names; -1 for the controlled runners'
 * objects (epoll, futex, ...): whatever wakes those touches everything. */
static int waited_kind(const char *object)
{
    static const struct { const char *name; sim_object_kind kind; } kinds[] = {
        { "mutex", SIM_OBJ_MUTEX }, { "cond", SIM_OBJ_COND }, { "loop", SIM_OBJ_LOOP },
        { "task", SIM_OBJ_TASK },
    };
    for (size_t i = 0; object && i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(object, kinds[i].name))
            return (int)kinds[i].kind;
    return -1;
}

/* A step moves the clock toward every pending deadline: whether a timed wait
 * ends by its deadline or by a wake-up depends on how many steps ran before
 * the wake-up, so each step touches what each timed wait waits on (for sleep
 * sets; without it dfs-sleep lost outcomes, simtest's sleep_sets_timed). A
 * plain sleep waits on nothing a peer touches: it is left out. */
static void clock_touches(void)
{
    for (sim_task *t = S->timed; t; t = t->t_next)
        if (t->wait_kind >= 0)
            sim_touch((sim_object_kind)t->wait_kind, t->wait.id);
}

static void step(const char *point)
{
    S->steps++;
    if (S->current)
        S->current->steps++;
    S->now += S->cfg.jitter_seed ? S->cfg.step_ns / 2 + sim_rng_below(&S->jitter, S->cfg.step_ns + 1)
                                 : S->cfg.step_ns;
    atomic_fetch_add_explicit(&sim_points_seen, 1, memory_order_relaxed);
    if (S->cfg.step_bound && S->steps > S->cfg.step_bound && S->session == IN_RUN)
        step_bound_hit(point);
    check_foreign();
    clock_touches();
    fire_due();
}

/* The next task to run; NULL when every task has ended. task is the one at
 * the point (it is among the runnable ones unless kind is BLOCKED). */
static sim_task *pick(const char *point, long arg, sim_point_kind kind, sim_task *task, bool idle)
{
    while (S->n_runnable == 0) {
        if (S->timed) {          /* nothing can run before the next deadline: jump there */
            if (S->timed->deadline > S->now)
                S->now = S->timed->deadline;
            fire_due();
        } else if (S->n_blocked) {
            deadlock();
        } else {
            return NULL;
        }
    }
    if (S->n_runnable == 1) {
        chunk_ran(S->runnable[0]);
        return S->runnable[0];
    }
    for (int k = 0; k < S->n_runnable; k++)
        S->runnable_events[k] = S->runnable[k]->next;
    sim_decision_ctx d = {
        .step = S->steps, .index = S->decisions, .point = point, .arg = arg, .kind = kind,
        .task = task->id, .task_step = task->steps,
        .current = kind != SIM_POINT_BLOCKED && task->state == T_RUNNABLE ? task->id : -1,
        .enabled = S->runnable_ids, .events = S->runnable_events, .n = S->n_runnable,
        .since = &S->chunk, .idle = idle,
    };
    int i = S->cfg.strategy->pick(S->cfg.strategy, &d);
    if (i < 0 || i >= S->n_runnable)
        fatal("strategy %s picked %d of %d", S->cfg.strategy->name, i, S->n_runnable);
    S->decisions++;
    if (S->cfg.log && S->session == IN_RUN)   /* an adopted session never ends: no log */
        sim_log_add_task(&S->log, S->steps, point, arg, task->id, kind, S->runnable_ids,
                         S->n_runnable, S->runnable_ids[i]);
    chunk_start(S->runnable[i]);
    return S->runnable[i];
}

static void switch_to(sim_task *next)
{
    sim_fiber *from = S->running;
    S->current = next;
    S->running = next->fiber;
    CTX->switch_to(from, next->fiber);
}

void sim_point(const char *name, long arg, sim_point_kind kind)
{
    sim_task *cur = S->current;
    if (!cur)
        return;                 /* the host outside tasks: nothing to interleave with */
    check_thread();
    cur->next = (sim_event){ name, arg };
    step(name);
    /* DPOR: after a yield the task may not run before another has (dfs's
     * fairness), so what runs next depends on the yield whatever it touches:
     * its step touches everything for the analysis (without it dpor lost an
     * outcome of sleep_sets_random's program 9). Sleep sets hold no sleeper at a
     * yield and read the chunk: it is left alone. */
    if (kind == SIM_POINT_YIELD && S->session == IN_RUN)
        segment_fp()->all = true;
    chunk_point(cur, false);
    if (S->n_runnable == 1)
        return;
    sim_task *next = pick(name, arg, kind, cur, false);
    if (next != cur)
        switch_to(next);
}

uint64_t sim_choose(const char *name, uint64_t n)
{
    if (n <= 1)
        return 0;
    if (!S->current)
        return n - 1;
    sim_decision_ctx d = { .step = S->steps, .index = S->decisions, .point = name,
                           .task = S->current->id, .task_step = S->current->steps,
                           .current = S->current->id };
    uint64_t v = S->cfg.strategy->pick_value(S->cfg.strategy, &d, n);
    if (v >= n)
        fatal("strategy %s chose %llu of %llu for %s", S->cfg.strategy->name,
              (unsigned long long)v, (unsigned long long)n, name);
    S->decisions++;
    if (S->cfg.log && S->session == IN_RUN)
        sim_log_add_value(&S->log, S->steps, name, S->current->id, n, v);
    return v;
}

/* The host alone (no session, or between runs): time only moves for it. */
static bool host_wait(const sim_wait_info *why, uint64_t deadline_ns)
{
    if (!deadline_ns)
        fatal("the host would wait forever in %s(%s %ld): nothing else can run",
              why->what, why->object ? why->object : "-", why->id);
    if (deadline_ns > S->now)
        S->now = deadline_ns;
    return false;
}

bool sim_wait(sim_waitq *q, const sim_wait_info *why, uint64_t deadline_ns)
{
    sim_task *cur = S->current;
    if (!cur)
        return host_wait(why, deadline_ns);
    check_thread();
    if (q)
        waitq_push(q, cur);
    cur->wait = *why;
    cur->next = (sim_event){ why->what, why->id };
    cur->state = T_BLOCKED;
    cur->timed_out = false;
    S->n_blocked++;
    runnable_remove(cur);
    if (deadline_ns) {
        cur->wait_kind = waited_kind(why->object);  /* once: every step reads it */
        timed_insert(cur, deadline_ns);
    }
    step(why->what);
    chunk_point(cur, true);
    sim_task *next = pick(why->what, why->id, SIM_POINT_BLOCKED, cur, why->idle);
    if (next != cur)
        switch_to(next);
    return !cur->timed_out;
}

void sim_sleep(uint64_t ns)
{
    sim_touch_all();            /* its deadline is read off the clock */
    static const sim_wait_info why = { "sleep", NULL, 0, -1, false };
    sim_wait(NULL, &why, S->now + ns + (ns == 0));
}

/* ---- tasks ---- */

static void all_link(sim_task *t)
{
    t->all_prev = S->all_tail;
    t->all_next = NULL;
    if (S->all_tail)
        S->all_tail->all_next = t;
    else
        S->all = t;
    S->all_tail = t;
}

static void all_unlink(sim_task *t)
{
    if (t->all_prev)
        t->all_prev->all_next = t->all_next;
    else if (S->all == t)
        S->all = t->all_next;
    if (t->all_next)
        t->all_next->all_prev = t->all_prev;
    else if (S->all_tail == t)
        S->all_tail = t->all_prev;
    t->all_prev = t->all_next = NULL;
}

/* The task's function returned: the next task's fiber (or the host's, when
 * every task ended), where this fiber goes once it parked. */
static sim_fiber *task_exit(sim_task *cur)
{
    cur->state = T_DONE;
    cur->fiber = NULL;
    runnable_remove(cur);
    sim_touch(SIM_OBJ_TASK, cur->id);
    sim_wake_all(&cur->joiners);
    step("exit");
    chunk_point(cur, true);
    sim_task *next = pick("exit", cur->id, SIM_POINT_BLOCKED, cur, false);
    S->current = next;
    S->running = next ? next->fiber : S->host;
    return S->running;
}

static sim_fiber *task_main(void *p)
{
    sim_task *t = p;
    t->fn(t->arg);
    return task_exit(t);
}

static void begin_session(enum session s)
{
    if (!S->cfg.strategy)
        fatal("a task started before a strategy was configured");
    S->session = s;
    S->run = ++runs_made;          /* unique across instances: the interposer's tables key on it */
    S->next_id = s == ADOPTED ? 0 : 1;
    S->now = SIM_EPOCH_NS;
    S->steps = S->decisions = S->tasks = 0;
    S->jitter.s = S->cfg.jitter_seed;
    S->status = SIM_OK;
    S->ended = false;
    S->detail[0] = '\0';
    sim_log_reset(&S->log);
    on_sched_thread = true;
}

/* The calling OS thread becomes task 0, so threads can start outside run().
 * It is host_holder itself: locks the host took before stay its own. */
static void adopt(void)
{
    begin_session(ADOPTED);
    sim_task *t = &host_holder;
    t->fiber = S->host = CTX->host();
    S->running = S->host;
    t->id = S->next_id++;
    t->run = S->run;
    t->steps = 0;
    t->state = T_RUNNABLE;
    runnable_insert(t);
    all_link(t);
    S->host_task = t;
    S->current = t;
}

sim_task *sim_spawn(void (*fn)(void *), void *arg)
{
    if (S->session == NO_SESSION)
        adopt();
    check_thread();
    sim_task *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    sim_touch(SIM_OBJ_IDS, 0);
    if (!(t->fiber = CTX->start(task_main, t))) {
        free(t);
        return NULL;
    }
    t->id = S->next_id++;
    t->run = S->run;
    t->fn = fn;
    t->arg = arg;
    t->locals = t->own_locals;
    t->next = (sim_event){ "start", t->id };
    t->state = T_RUNNABLE;
    runnable_insert(t);
    all_link(t);
    S->tasks++;
    S->live++;
    return t;
}

void sim_join(sim_task *t)
{
    sim_point("thread_join", t->id, SIM_POINT_PLAIN);
    sim_touch(SIM_OBJ_TASK, t->id);
    while (t->state != T_DONE) {
        sim_wait_info why = { "thread_join", "task", t->id, -1, false };
        sim_wait(&t->joiners, &why, 0);
    }
    all_unlink(t);
    S->live--;
    free(t);
}

/* Drops every task of an abandoned run, mid-call: their stacks are reused. */
static void drop_all(void)
{
    for (sim_task *t = S->all, *next; t; t = next) {
        next = t->all_next;
        if (t->fiber && t->fiber != S->abandoned)
            CTX->abandon(t->fiber);
        S->live--;
        free(t);
    }
    CTX->abandon(S->abandoned);
    S->abandoned = NULL;
    S->all = S->all_tail = NULL;
    S->n_runnable = 0;
    S->n_blocked = 0;
    S->timed = NULL;
}

void sim_sched_run(void (*fn)(void *), void *arg, sim_run_result *out)
{
    if (S->session == ADOPTED) {
        for (sim_task *t = S->all; t; t = t->all_next)
            if (t != S->host_task && t->state != T_DONE)
                fatal("run() while threads started outside a run are still running");
        runnable_remove(S->host_task);
        all_unlink(S->host_task);
        S->host_task = NULL;
        S->current = NULL;
        S->session = NO_SESSION;
    }
    if (S->session != NO_SESSION || S->current)
        fatal("run() inside a run");
    if (!S->cfg.strategy)
        fatal("run() before a strategy was configured");
    S->host = S->running = CTX->host();
    begin_session(IN_RUN);
    sim_task *t = sim_spawn(fn, arg);
    if (!t)
        fatal("cannot map a stack for the first task");
    S->current = t;              /* the first switch is no decision */
    chunk_start(t);
    S->running = t->fiber;
    bool on_threads = CTX == &sim_threads;
    if (on_threads) {
        sim_threads_fds_mark();
        atomic_store_explicit(&threads_run_on, true, memory_order_release);
    }
    CTX->switch_to(S->host, t->fiber);
    atomic_store_explicit(&threads_run_on, false, memory_order_release);
    S->current = NULL;
    S->running = S->host;
    if (S->status != SIM_OK || S->ended) {
        drop_all();
    } else {                    /* nobody joins the first task */
        all_unlink(t);
        S->live--;
        free(t);
    }
    if (on_threads && S->status == SIM_OK &&
        atomic_load_explicit(&foreign_state, memory_order_acquire) == 2) {
        S->status = SIM_UNCONTROLLED;  /* the last step came before the foreign call */
        snprintf(S->detail, sizeof S->detail, "%s", foreign_detail);
    }
    atomic_store_explicit(&foreign_state, 0, memory_order_relaxed);
    if (CTX->settle)
        CTX->settle();
    if (on_threads && S->status != SIM_OK)
        sim_threads_fds_close_new();
    S->log.status = (int)S->status;
    sim_sched_result_so_far(out);
    out->status = S->status;
    S->session = NO_SESSION;
    S->now = SIM_EPOCH_NS;
}

void sim_sched_result_so_far(sim_run_result *out)
{
    S->log.steps = S->steps;
    out->status = SIM_OK;
    snprintf(out->detail, sizeof out->detail, "%s", S->detail);
    out->steps = S->steps;
    out->decisions = S->decisions;
    out->tasks = S->tasks;
    out->virtual_ns = S->now - SIM_EPOCH_NS;
    out->tail = S->chunk;
}

/* ---- mutexes and condition variables ---- */

static sim_task *me(void) { return S->current ? S->current : &host_holder; }

/* A holder from an older run was dropped with it. */
static void mutex_sync(sim_mutex *m)
{
    if (m->holder && m->holder != &host_holder && m->run != S->run)
        m->holder = NULL;
}

static void mutex_acquire(sim_mutex *m)
{
    sim_touch(SIM_OBJ_MUTEX, m->id);
    mutex_sync(m);
    while (m->holder) {
        sim_wait_info why = { "mutex_lock", "mutex", m->id, m->holder->id, false };
        sim_wait(&m->q, &why, 0);
        mutex_sync(m);
    }
    m->holder = me();
    m->run = S->run;
}

static void mutex_release(sim_mutex *m)
{
    sim_touch(SIM_OBJ_MUTEX, m->id);
    m->holder = NULL;
    sim_wake_all(&m->q);        /* they compete again: the strategy decides who wins */
}

void sim_mutex_lock(sim_mutex *m)
{
    sim_point("mutex_lock", m->id, SIM_POINT_PLAIN);
    mutex_acquire(m);
}

bool sim_mutex_trylock(sim_mutex *m)
{
    sim_point("mutex_trylock", m->id, SIM_POINT_PLAIN);
    sim_touch(SIM_OBJ_MUTEX, m->id);
    mutex_sync(m);
    if (m->holder)
        return false;
    m->holder = me();
    m->run = S->run;
    return true;
}

void sim_mutex_unlock(sim_mutex *m)
{
    mutex_sync(m);
    if (m->holder != me())
        fatal("mutex %ld unlocked by task %d, which does not hold it", m->id, me()->id);
    mutex_release(m);
    sim_point("mutex_unlock", m->id, SIM_POINT_PLAIN);
}

/* Releases m, waits on c until a broadcast or the deadline (0: none), takes m again. */
static bool cond_wait(sim_cond *c, sim_mutex *m, uint64_t deadline_ns)
{
    mutex_sync(m);
    if (m->holder != me())
        fatal("cond_wait on mutex %ld, which task %d does not hold", m->id, me()->id);
    mutex_release(m);
    sim_wait_info why = { "cond_wait", "cond", c->id, -1, false };
    sim_touch(SIM_OBJ_COND, c->id);
    bool woken = sim_wait(&c->q, &why, deadline_ns);
    mutex_acquire(m);
    return woken;
}

bool sim_cond_wait_until(sim_cond *c, sim_mutex *m, uint64_t deadline_ns)
{
    sim_touch_all();            /* it reads the clock */
    if (deadline_ns <= S->now) {
        sim_point("cond_wait", c->id, SIM_POINT_PLAIN);
        return false;
    }
    return cond_wait(c, m, deadline_ns);
}

void sim_cond_wait(sim_cond *c, sim_mutex *m)
{
    cond_wait(c, m, 0);
}

void sim_cond_broadcast(sim_cond *c)
{
    sim_point("cond_broadcast", c->id, SIM_POINT_PLAIN);
    sim_touch(SIM_OBJ_COND, c->id);
    sim_wake_all(&c->q);
}
