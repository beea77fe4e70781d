/* threads.c: pthread create and join, mutexes, condition variables and
 * sched_yield, handed to the scheduler core (see interpose.h).
 *
 * A task's mutex or condition is the core's (sim_mutex, sim_cond), found by
 * the pthread object's address in a table that starts empty each run, and
 * numbered in the order the run first used them (so a schedule names the
 * same objects in every process). Locking, unlocking, waiting and waking
 * are scheduling points, where the strategy may switch tasks. The pthread
 * object itself is never locked by a task: its memory only says its kind
 * (glibc's __kind: normal, recursive or errorcheck).
 *
 * pthread_create starts a core task on a new OS thread (sim_threads) and
 * returns that thread's real pthread_t, so pthread_self, thread-locals and
 * errno are the thread's own; pthread_join waits for the task through the
 * core, then forgets it.
 *
 * Semaphores, rwlocks, spin locks, pthread_once and getrandom are in sync.c,
 * fd calls in fds.c, clocks and sleeps in time.c. Not yet handed over (a
 * task that calls them gets libc; one that blocks there is caught by the
 * watchdog): barriers, pthread_exit, detach.
 */
#include "interpose.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

_Noreturn void ar_uncontrolled(const char *call, const char *why)
{
    if (sim_caller_is_task())
        sim_lost_control("%s: %s", call, why);
    fprintf(stderr, "asyncrace interposer: uncontrolled: %s: %s\n", call, why);
    abort();
}

void ar_foreign_call(const char *call, void *from)
{
    char where[200];
    sim_where(where, sizeof where, from);
    sim_note_foreign("a thread the scheduler did not start called %s, from %s", call, where);
}

/* ---- the run's objects, by address ---- */

enum { TABLE = 1 << 12 };

typedef struct {
    const void *key;
    uint64_t run;                 /* the run it belongs to: others' are empty */
    int kind;                     /* mutexes: PTHREAD_MUTEX_{NORMAL,RECURSIVE,ERRORCHECK} */
    int depth;                    /* recursive mutexes: locks held */
    union { sim_mutex m; sim_cond c; sim_waitq q; };
} entry;

typedef struct {
    entry e[TABLE];
    uint64_t run;                 /* the run the ids count for */
    long next_id;
} table;

static table mutexes, conds, blockers;

static entry *find(table *t, const void *key)
{
    uint64_t run = sim_run_serial();
    if (t->run != run) {
        t->run = run;
        t->next_id = 0;
    }
    size_t i = ((uintptr_t)key >> 3) * 0x9e3779b97f4a7c15ull >> 52;
    for (size_t n = 0; n < TABLE; n++, i = (i + 1) % TABLE) {
        entry *e = &t->e[i];
        if (e->run == run && e->key == key)
            return e;
        if (e->run != run) {
            memset(e, 0, sizeof *e);
            e->key = key;
            e->run = run;
            return e;
        }
    }
    ar_uncontrolled("pthread object table", "more than 4096 mutexes or conditions in one run");
}

static entry *mutex_entry(pthread_mutex_t *pm)
{
    entry *e = find(&mutexes, pm);
    if (!e->m.id) {
        e->m.id = ++mutexes.next_id;
        e->kind = pm->__data.__kind & 3;   /* what the initializer or attribute set */
    }
    return e;
}

static void forget(table *t, const void *key);

/* The run's wait queue for an object of sync.c's (a semaphore, an rwlock, a once). */
sim_waitq *ar_waitq_of(const void *object) { return &find(&blockers, object)->q; }
void ar_waitq_forget(const void *object) { forget(&blockers, object); }

static sim_cond *cond_of(pthread_cond_t *pc)
{
    entry *e = find(&conds, pc);
    if (!e->c.id)
        e->c.id = ++conds.next_id;
    return &e->c;
}

/* ---- threads ---- */

typedef struct start {
    void *(*fn)(void *);
    void *arg;
    void *ret;
    pthread_t tid;
    sim_task *task;
    uint64_t run;
    bool detached;                /* nobody joins it; its entry lives until a later run */
    struct start *next;
} start;

static start *started;            /* this run's, not yet joined */

static void task_body(void *p)
{
    start *s = p;
    s->ret = s->fn(s->arg);
}

int pthread_create(pthread_t *tid, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (!ar_controlled())
        return REAL(pthread_create)(tid, attr, fn, arg);
    start *s = calloc(1, sizeof *s);
    if (!s)
        return EAGAIN;
    *s = (start){ .fn = fn, .arg = arg, .run = sim_run_serial() };
    if (!(s->task = sim_spawn(task_body, s))) {
        free(s);
        return EAGAIN;
    }
    s->tid = *tid = (pthread_t)sim_task_os_thread(s->task);
    for (start **p = &started; *p;)         /* drop what abandoned runs left */
        if ((*p)->run != s->run) {
            start *old = *p;
            *p = old->next;
            free(old);
        } else {
            p = &(*p)->next;
        }
    s->next = started;
    started = s;
    sim_point("pthread_create", sim_task_id(s->task), SIM_POINT_PLAIN);
    return 0;
}

int pthread_join(pthread_t tid, void **ret)
{
    if (!ar_controlled())
        return REAL(pthread_join)(tid, ret);
    for (start **p = &started; *p; p = &(*p)->next) {
        start *s = *p;
        if (s->run != sim_run_serial() || !pthread_equal(s->tid, tid))
            continue;
        if (s->detached)
            ar_uncontrolled("pthread_join", "a detached thread");
        sim_join(s->task);
        *p = s->next;
        if (ret)
            *ret = s->ret;
        free(s);
        return 0;
    }
    ar_uncontrolled("pthread_join", "a thread this run's tasks did not start");
}

/* The task runs to its end like any other, and the host joins its OS thread
 * when the run settles (so the real thread is never detached). */
int pthread_detach(pthread_t tid)
{
    if (!ar_controlled())
        return REAL(pthread_detach)(tid);
    for (start *s = started; s; s = s->next)
        if (s->run == sim_run_serial() && pthread_equal(s->tid, tid) && !s->detached) {
            s->detached = true;
            return 0;
        }
    ar_uncontrolled("pthread_detach", "a thread this run's tasks did not start");
}

int sched_yield(void)
{
    if (!ar_controlled())
        return REAL(sched_yield)();
    sim_point("sched_yield", 0, SIM_POINT_YIELD);
    return 0;
}

/* An object made anew where another was (malloc hands a freed mutex's memory
 * to the next one) is a new object: init and destroy forget the address, so
 * it is numbered at its first use like any other. Without this its number
 * would be the old one's or a new one's depending on which address malloc
 * picked, and that varies with the order the last run's threads exited
 * (glibc gives a new thread the arena the last exiting one freed). */
static void forget(table *t, const void *key)
{
    entry *e = find(t, key);
    memset(&e->kind, 0, sizeof *e - offsetof(entry, kind));
}

int pthread_mutex_init(pthread_mutex_t *pm, const pthread_mutexattr_t *attr)
{
    if (ar_controlled())
        forget(&mutexes, pm);
    return REAL(pthread_mutex_init)(pm, attr);
}

int pthread_mutex_destroy(pthread_mutex_t *pm)
{
    if (ar_controlled())
        forget(&mutexes, pm);
    return REAL(pthread_mutex_destroy)(pm);
}

int pthread_cond_init(pthread_cond_t *pc, const pthread_condattr_t *attr)
{
    if (ar_controlled())
        forget(&conds, pc);
    return REAL(pthread_cond_init)(pc, attr);
}

int pthread_cond_destroy(pthread_cond_t *pc)
{
    if (ar_controlled())
        forget(&conds, pc);
    return REAL(pthread_cond_destroy)(pc);
}

/* ---- mutexes ---- */

int pthread_mutex_lock(pthread_mutex_t *pm)
{
    if (!ar_controlled())
        return REAL(pthread_mutex_lock)(pm);
    entry *e = mutex_entry(pm);
    if (e->m.holder == sim_self() && e->m.run == sim_run_serial()) {
        if (e->kind == PTHREAD_MUTEX_RECURSIVE) {
            e->depth++;
            return 0;
        }
        if (e->kind == PTHREAD_MUTEX_ERRORCHECK)
            return EDEADLK;
    }
    sim_mutex_lock(&e->m);          /* a normal mutex locked twice: the core's deadlock */
    e->depth = 1;
    return 0;
}

int pthread_mutex_trylock(pthread_mutex_t *pm)
{
    if (!ar_controlled())
        return REAL(pthread_mutex_trylock)(pm);
    entry *e = mutex_entry(pm);
    if (e->kind == PTHREAD_MUTEX_RECURSIVE && e->m.holder == sim_self() &&
        e->m.run == sim_run_serial()) {
        e->depth++;
        return 0;
    }
    if (!sim_mutex_trylock(&e->m))
        return EBUSY;
    e->depth = 1;
    return 0;
}

int pthread_mutex_unlock(pthread_mutex_t *pm)
{
    if (!ar_controlled())
        return REAL(pthread_mutex_unlock)(pm);
    entry *e = mutex_entry(pm);
    if (e->m.holder != sim_self() || e->m.run != sim_run_serial()) {
        if (e->kind != PTHREAD_MUTEX_NORMAL)
            return EPERM;
        ar_uncontrolled("pthread_mutex_unlock", "a mutex the calling task does not hold");
    }
    if (--e->depth > 0)
        return 0;
    sim_mutex_unlock(&e->m);
    return 0;
}

/* ---- condition variables ---- */

/* The cond's clock (pthread_condattr_setclock): glibc keeps it in bit 1 of
 * __wrefs, set for CLOCK_MONOTONIC (nptl/pthread_cond_common.c). */
static uint64_t deadline_of(const pthread_cond_t *pc, const struct timespec *abstime)
{
    if (!abstime)
        return 1;                 /* already passed: times out at once */
    uint64_t ns = (uint64_t)abstime->tv_sec * 1000000000u + (uint64_t)abstime->tv_nsec;
    if (!(pc->__data.__wrefs & 2))
        ns = ns > AR_REALTIME_BASE_NS ? ns - AR_REALTIME_BASE_NS : 1;
    return ns ? ns : 1;
}

static int cond_wait(pthread_cond_t *pc, pthread_mutex_t *pm, uint64_t deadline_ns)
{
    entry *e = mutex_entry(pm);
    if (e->m.holder != sim_self() || e->m.run != sim_run_serial())
        return EPERM;
    int depth = e->depth;           /* a recursive mutex is released whole, as glibc does */
    e->depth = 0;
    bool woken = true;
    if (deadline_ns)
        woken = sim_cond_wait_until(cond_of(pc), &e->m, deadline_ns);
    else
        sim_cond_wait(cond_of(pc), &e->m);
    e->depth = depth;
    return woken ? 0 : ETIMEDOUT;
}

int pthread_cond_wait(pthread_cond_t *pc, pthread_mutex_t *pm)
{
    if (!ar_controlled())
        return REAL(pthread_cond_wait)(pc, pm);
    return cond_wait(pc, pm, 0);
}

int pthread_cond_timedwait(pthread_cond_t *pc, pthread_mutex_t *pm, const struct timespec *abstime)
{
    if (!ar_controlled())
        return REAL(pthread_cond_timedwait)(pc, pm, abstime);
    return cond_wait(pc, pm, deadline_of(pc, abstime));
}

/* POSIX lets a signal wake more than one waiter ("at least one"), and the
 * core's conditions wake all: which waiter gets the mutex first is then the
 * strategy's choice, as the core's mutex hand-over is. */
int pthread_cond_signal(pthread_cond_t *pc)
{
    if (!ar_controlled())
        return REAL(pthread_cond_signal)(pc);
    sim_cond_broadcast(cond_of(pc));
    return 0;
}

int pthread_cond_broadcast(pthread_cond_t *pc)
{
    if (!ar_controlled())
        return REAL(pthread_cond_broadcast)(pc);
    sim_cond_broadcast(cond_of(pc));
    return 0;
}
