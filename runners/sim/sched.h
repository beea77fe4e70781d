/* sched.h: the deterministic scheduler core: tasks on fibers of one OS
 * thread, a virtual clock, wait queues, mutexes and condition variables, and
 * one strategy that makes every choice.
 *
 * The core knows nothing of loops, TCP or runner.h: sim.c builds the runner
 * table on it, and a pthread front end (LD_PRELOAD) could do the same.
 *
 * Exactly one task runs at a time. It runs until it reaches a scheduling
 * point (sim_point), blocks (sim_wait), or ends; there the strategy picks the
 * next task among the runnable ones, and every pick with more than one
 * candidate is a decision in the log. Each step (point, block, end) costs
 * step_ns of virtual time, so a task that never blocks still lets sleepers'
 * deadlines come; when nothing is runnable the clock jumps to the earliest
 * deadline; when nothing is runnable and nothing has a deadline but some task
 * waits, the run is a deadlock. More than step_bound steps end it too.
 * A run that ends that way is abandoned: its fibers are dropped mid-call.
 *
 * Two ways in: sim_sched_run() runs a function as the first task of a fresh
 * run (virtual time restarts at SIM_EPOCH_NS, task ids at 1) and returns when
 * every task ended or the run was abandoned. Outside a run, the first task
 * started makes the calling OS thread task 0 of an open-ended "adopted"
 * session (for programs that never call run); a deadlock there cannot be
 * abandoned, so it prints every wait and aborts.
 */
#ifndef SIM_SCHED_H
#define SIM_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define SIM_EPOCH_NS 1000000000000ull  /* what the virtual clock reads when a run starts */
#define SIM_LOCALS_BYTES 256           /* zeroed per-task bytes (the runner's thread_locals) */

typedef struct sim_task sim_task;
typedef struct sim_strategy sim_strategy;
typedef struct sim_log sim_log;

typedef enum {
    SIM_POINT_PLAIN,    /* switching away from a runnable task here is a preemption */
    SIM_POINT_YIELD,    /* the task offers to let others run: switching away is free */
    SIM_POINT_BLOCKED,  /* the task cannot go on (blocked or ended): any pick is free */
} sim_point_kind;

/* What a stretch of a run touched, for partial-order reduction: shared objects
 * as bits of a 256-bit Bloom filter (a false positive only makes two steps
 * look dependent), or everything (a clock read: its value depends on how many
 * steps ran before it, whoever ran them; a race point: it marks an access that
 * may race with any other). Memory shared otherwise must be under a mutex. */
typedef enum {
    SIM_OBJ_MUTEX, SIM_OBJ_COND, SIM_OBJ_LOOP, SIM_OBJ_TASK, SIM_OBJ_NET,
    SIM_OBJ_IDS,        /* the id counters: creating an object or a task */
} sim_object_kind;

typedef struct sim_footprint {
    uint64_t bits[4];
    bool all;
} sim_footprint;

/* Whether two footprints may touch one object (a reordering could matter). */
static inline bool sim_footprints_meet(const sim_footprint *a, const sim_footprint *b)
{
    return a->all || b->all || (a->bits[0] & b->bits[0]) || (a->bits[1] & b->bits[1]) ||
           (a->bits[2] & b->bits[2]) || (a->bits[3] & b->bits[3]);
}

/* One task's step (from one scheduling point to its next) inside a chunk,
 * and what it touched. */
typedef struct sim_segment {
    int task;
    sim_footprint fp;
} sim_segment;

/* What ran between two decisions (or from the last one to the run's end): the
 * union footprint of every step, which tasks ran (as a mask of ids below 64;
 * many: one at 64 or above ran), and whether the task the decision chose
 * blocked or ended at its first point (it cannot go on right after its step).
 * seg: the same stretch cut into its steps, in order, the chosen task's first
 * (a later step that touched nothing is left out); the core's buffer, valid
 * until the next decision (DPOR reads it). */
typedef struct sim_chunk {
    sim_footprint fp;
    uint64_t ran;
    bool ran_many;
    bool first_blocked;
    const sim_segment *seg;
    int nseg;
} sim_chunk;

/* The running task's current step touches object (kind, id). */
void sim_touch(sim_object_kind kind, long id);
/* ... or depends on everything (reads the clock, races). */
void sim_touch_all(void);


/* What a blocked task waits for, for the deadlock detail:
 * "<what>(<object> <id>[, held by task <owner>])". */
typedef struct sim_wait_info {
    const char *what;         /* "mutex_lock", "cond_wait", "loop_run", ... */
    const char *object;       /* "mutex", "cond", "loop", "task"; may be NULL */
    long id;
    int owner;                /* the task holding it, or -1 */
    bool idle;                /* it waits for work (a loop's wait), not for a peer
                                 it needs: fairness treats it as a yield */
} sim_wait_info;

/* A FIFO of blocked tasks; zero-initialised is empty. */
typedef struct sim_waitq {
    sim_task *head, *tail;
    uint64_t run;             /* the run whose tasks are queued (older runs' are gone) */
} sim_waitq;

/* ---- configuration of the next runs ---- */

typedef struct sim_sched_config {
    sim_strategy *strategy;   /* makes every decision; must not be NULL */
    uint64_t step_bound;      /* steps per run, 0 = unbounded */
    uint64_t step_ns;         /* virtual time per step */
    bool log;                 /* keep the decision log of each run */
    const struct sim_contexts *contexts; /* where tasks run (contexts.h); NULL: fibers */
    uint64_t jitter_seed;     /* 0: every step takes step_ns; else each takes step_ns/2 to
                                 3*step_ns/2, drawn from this seed (sim.h's step_jitter) */
} sim_sched_config;

void sim_sched_configure(const sim_sched_config *c);
/* The core's state is an instance: new makes one as a fresh process has it;
 * use makes it the current one (returning the one before; never inside a run
 * or adopted session); free drops one that is neither current nor the first.
 * sim.h's sim_core pairs one with its own state. */
typedef struct sim_sched_state sim_sched_state;
sim_sched_state *sim_sched_state_new(void);
sim_sched_state *sim_sched_state_use(sim_sched_state *s);
void sim_sched_state_free(sim_sched_state *s);

/* ---- runs ---- */

typedef struct sim_run_result {
    sim_status status;
    char detail[1024];        /* deadlock: every task's wait; step bound: where */
    uint64_t steps, decisions, tasks, virtual_ns;
    sim_chunk tail;           /* what ran after the last decision */
} sim_run_result;

/* Runs fn(arg) as task 1 with every task it starts; returns when all ended or
 * the run was abandoned. Must be called outside any task. */
void sim_sched_run(void (*fn)(void *), void *arg, sim_run_result *out);
/* Inside a run that ends with the process (a task dies of a signal): the
 * result as if the run had ended here. */
void sim_sched_result_so_far(sim_run_result *out);
/* The decision log of the last (or current) run. */
const sim_log *sim_sched_log(void);
/* Counts runs and adopted sessions: changes when a new one starts. */
uint64_t sim_run_serial(void);
/* True while a run or an adopted session is on and the caller is one of its tasks. */
bool sim_in_task(void);
/* On threads contexts: a run is on and the calling OS thread is one of its
 * tasks' (the interposer's test: any other thread goes to libc). Never on fibers. */
bool sim_caller_is_task(void);
/* On threads contexts: a run is on and the calling OS thread is neither one of
 * its tasks' nor the host's: a thread the scheduler did not start. */
bool sim_caller_is_foreign(void);
/* From any thread: the run is not deterministic any more (the first note of a
 * run wins); the task holding the baton ends it, SIM_UNCONTROLLED, at its next
 * scheduling point, or the run ends so if none comes. */
void sim_note_foreign(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "libc.so.6 (sem_wait+0x3f)": the object and symbol an address is in (no
 * symbol: the offset in the object), for a detail. */
int sim_where(char *out, size_t n, void *pc);
/* "futex": a few system calls' names, for details ("?" for the others). */
const char *sim_syscall_name(long number);
/* On a task of a run: ends the run now, SIM_UNCONTROLLED, with this detail. */
_Noreturn void sim_lost_control(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* On a task of a run: ends the run now, status ok, with this detail (the
 * program exited: every other task is dropped where it waits). */
_Noreturn void sim_end_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- tasks ---- */

/* Starts fn(arg) as a new runnable task (no switch). NULL when no stack. */
sim_task *sim_spawn(void (*fn)(void *), void *arg);
/* Waits for t to end (a scheduling point), then frees it. */
void sim_join(sim_task *t);
sim_task *sim_self(void);            /* NULL outside tasks */
int sim_task_id(const sim_task *t);  /* 1, 2, ... per run; 0 is the adopted host */
/* The OS thread t runs on, as a pthread_t: on threads contexts; 0 on fibers. */
unsigned long sim_task_os_thread(const sim_task *t);
/* The calling task's SIM_LOCALS_BYTES bytes (outside tasks: the host's). */
void *sim_locals(void);
/* Tasks started and not yet joined (any run). */
long sim_live_tasks(void);

/* ---- scheduling ---- */

/* A scheduling point: name (a string constant) is logged with arg. */
void sim_point(const char *name, long arg, sim_point_kind kind);
/* A choice of a value in [0, n) that the strategy makes (n >= 1), e.g. how
 * many bytes one read returns; logged and replayed like task choices. */
uint64_t sim_choose(const char *name, uint64_t n);

/* Blocks the calling task on q (NULL: only a sim_wake_task or the deadline
 * wakes it) until woken or until the virtual clock reaches deadline_ns (0:
 * none). True when woken, false on timeout. */
bool sim_wait(sim_waitq *q, const sim_wait_info *why, uint64_t deadline_ns);
void sim_wake_one(sim_waitq *q);
void sim_wake_all(sim_waitq *q);
/* How many wait on q; wakes the k-th of them (0: the first in). */
size_t sim_waitq_len(sim_waitq *q);
void sim_wake_nth(sim_waitq *q, size_t k);
void sim_wake_task(sim_task *t);     /* no-op unless t is blocked */
bool sim_waitq_empty(sim_waitq *q);

uint64_t sim_now(void);
/* The same clock for a log: reading it is not part of the step's footprint. */
uint64_t sim_clock(void);
void sim_sleep(uint64_t ns);

/* ---- mutexes and condition variables (zero-initialised is ready) ---- */

typedef struct sim_mutex {
    sim_task *holder;
    uint64_t run;             /* the run holder belongs to */
    sim_waitq q;
    long id;                  /* for waits and the log */
} sim_mutex;

typedef struct sim_cond {
    sim_waitq q;
    long id;
} sim_cond;

void sim_mutex_lock(sim_mutex *m);
bool sim_mutex_trylock(sim_mutex *m);   /* false when held, also by the caller */
void sim_mutex_unlock(sim_mutex *m);
/* Unlocks m, waits for a broadcast or the deadline, locks m again. False on
 * timeout (also at once when the deadline has passed). */
bool sim_cond_wait_until(sim_cond *c, sim_mutex *m, uint64_t deadline_ns);
/* The same without a deadline (pthread_cond_wait): only a broadcast ends it,
 * so a wait nobody will end is a deadlock the core reports. */
void sim_cond_wait(sim_cond *c, sim_mutex *m);
void sim_cond_broadcast(sim_cond *c);

#endif
