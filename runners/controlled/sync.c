/* sync.c: semaphores, rwlocks, spin locks, barriers and pthread_once under
 * the scheduler, and getrandom and arc4random from the run's seed (see
 * interpose.h).
 *
 * The real object stays the truth: a task only ever calls its try operations
 * (sem_trywait, pthread_rwlock_trywrlock, ...), which never wait. When one
 * says busy, the task waits in the core on the object's queue (threads.c's
 * table, by address), and every release wakes that queue: who tries again
 * first is the strategy's choice. So the object's value is right for any
 * thread after the run too, and no task ever sleeps in the kernel on it.
 *
 * Each operation is a scheduling point that touches everything (reductions
 * must not take two of them as independent: a semaphore has no owner).
 */
#include "interpose.h"
#include "sim/sim.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void point(const char *name)
{
    sim_point(name, 0, SIM_POINT_PLAIN);
    sim_touch_all();
}

/* An absolute CLOCK_REALTIME deadline on the virtual clock (0: none). */
static uint64_t realtime_deadline(const struct timespec *abstime)
{
    if (!abstime)
        return 0;
    uint64_t ns = (uint64_t)abstime->tv_sec * 1000000000u + (uint64_t)abstime->tv_nsec;
    return ns > AR_REALTIME_BASE_NS ? ns - AR_REALTIME_BASE_NS : 1;
}

/* Tries until try_op stops answering busy; between tries, waits on object's
 * queue (until deadline, if any). Returns try_op's answer, or ETIMEDOUT. */
static int acquire(const char *name, const void *object, int (*try_op)(void *), void *arg,
                   int busy, uint64_t deadline)
{
    point(name);
    for (;;) {
        int r = try_op(arg);
        if (r != busy)
            return r;
        sim_wait_info why = { name, "object", 0, -1, false };
        if (!sim_wait(ar_waitq_of(object), &why, deadline))
            return ETIMEDOUT;
    }
}

static void released(const char *name, const void *object)
{
    point(name);
    sim_wake_all(ar_waitq_of(object));
}

/* ---- semaphores: errno conventions (-1 and errno) ---- */

static int sem_try(void *s) { return REAL(sem_trywait)(s) == 0 ? 0 : errno; }

static int sem_result(int r)
{
    if (!r)
        return 0;
    errno = r;
    return -1;
}

int sem_init(sem_t *s, int pshared, unsigned value)
{
    if (ar_controlled())
        ar_waitq_forget(s);
    return REAL(sem_init)(s, pshared, value);
}

int sem_destroy(sem_t *s)
{
    if (ar_controlled())
        ar_waitq_forget(s);
    return REAL(sem_destroy)(s);
}

int sem_wait(sem_t *s)
{
    if (!ar_controlled())
        return REAL(sem_wait)(s);
    return sem_result(acquire("sem_wait", s, sem_try, s, EAGAIN, 0));
}

int sem_timedwait(sem_t *s, const struct timespec *abstime)
{
    if (!ar_controlled())
        return REAL(sem_timedwait)(s, abstime);
    return sem_result(acquire("sem_wait", s, sem_try, s, EAGAIN, realtime_deadline(abstime)));
}

int sem_trywait(sem_t *s)
{
    if (!ar_controlled())
        return REAL(sem_trywait)(s);
    point("sem_trywait");
    return REAL(sem_trywait)(s);
}

int sem_post(sem_t *s)
{
    if (!ar_controlled())
        return REAL(sem_post)(s);
    int r = REAL(sem_post)(s);
    released("sem_post", s);
    return r;
}

/* ---- rwlocks: error numbers returned ---- */

static int try_rd(void *l) { return REAL(pthread_rwlock_tryrdlock)(l); }
static int try_wr(void *l) { return REAL(pthread_rwlock_trywrlock)(l); }

int pthread_rwlock_init(pthread_rwlock_t *l, const pthread_rwlockattr_t *a)
{
    if (ar_controlled())
        ar_waitq_forget(l);
    return REAL(pthread_rwlock_init)(l, a);
}

int pthread_rwlock_destroy(pthread_rwlock_t *l)
{
    if (ar_controlled())
        ar_waitq_forget(l);
    return REAL(pthread_rwlock_destroy)(l);
}

int pthread_rwlock_rdlock(pthread_rwlock_t *l)
{
    if (!ar_controlled())
        return REAL(pthread_rwlock_rdlock)(l);
    return acquire("rwlock_rdlock", l, try_rd, l, EBUSY, 0);
}

int pthread_rwlock_wrlock(pthread_rwlock_t *l)
{
    if (!ar_controlled())
        return REAL(pthread_rwlock_wrlock)(l);
    return acquire("rwlock_wrlock", l, try_wr, l, EBUSY, 0);
}

int pthread_rwlock_timedrdlock(pthread_rwlock_t *l, const struct timespec *abstime)
{
    if (!ar_controlled())
        return REAL(pthread_rwlock_timedrdlock)(l, abstime);
    return acquire("rwlock_rdlock", l, try_rd, l, EBUSY, realtime_deadline(abstime));
}

int pthread_rwlock_timedwrlock(pthread_rwlock_t *l, const struct timespec *abstime)
{
    if (!ar_controlled())
        return REAL(pthread_rwlock_timedwrlock)(l, abstime);
    return acquire("rwlock_wrlock", l, try_wr, l, EBUSY, realtime_deadline(abstime));
}

int pthread_rwlock_tryrdlock(pthread_rwlock_t *l)
{
    if (!ar_controlled())
        return REAL(pthread_rwlock_tryrdlock)(l);
    point("rwlock_tryrdlock");
    return REAL(pthread_rwlock_tryrdlock)(l);
}

int pthread_rwlock_trywrlock(pthread_rwlock_t *l)
{
    if (!ar_controlled())
        return REAL(pthread_rwlock_trywrlock)(l);
    point("rwlock_trywrlock");
    return REAL(pthread_rwlock_trywrlock)(l);
}

int pthread_rwlock_unlock(pthread_rwlock_t *l)
{
    if (!ar_controlled())
        return REAL(pthread_rwlock_unlock)(l);
    int r = REAL(pthread_rwlock_unlock)(l);
    released("rwlock_unlock", l);
    return r;
}

/* ---- spin locks: a spin on a lock held by a parked task would never end ---- */

static int try_spin(void *l) { return REAL(pthread_spin_trylock)(l); }

int pthread_spin_lock(pthread_spinlock_t *l)
{
    if (!ar_controlled())
        return REAL(pthread_spin_lock)(l);
    return acquire("spin_lock", (void *)(uintptr_t)l, try_spin, (void *)(uintptr_t)l, EBUSY, 0);
}

int pthread_spin_unlock(pthread_spinlock_t *l)
{
    if (!ar_controlled())
        return REAL(pthread_spin_unlock)(l);
    int r = REAL(pthread_spin_unlock)(l);
    released("spin_unlock", (void *)(uintptr_t)l);
    return r;
}

/* ---- pthread_once ---- */

/* The control word is left to libc (or a sanitizer's own pthread_once, which
 * keeps it its own way): a task only waits here while another task of the
 * run is inside the same init (which may reach scheduling points), where
 * libc would block it in the kernel. */
enum { RUNNING_ONCES = 64 };

/* The onces whose init a task of this run is in (a run abandoned there
 * leaves the word as it was: the next run starts the init again). */
static struct { const void *once; uint64_t run; } running[RUNNING_ONCES];

static bool once_running(const void *once)
{
    for (int i = 0; i < RUNNING_ONCES; i++)
        if (running[i].once == once && running[i].run == sim_run_serial())
            return true;
    return false;
}

static void once_mark(const void *once, bool on)
{
    for (int i = 0; i < RUNNING_ONCES; i++) {
        bool mine = running[i].once == once && running[i].run == sim_run_serial();
        bool free_slot = running[i].run != sim_run_serial() || !running[i].once;
        if (on ? free_slot : mine) {
            running[i].once = on ? once : NULL;
            running[i].run = sim_run_serial();
            return;
        }
    }
    if (on)
        ar_uncontrolled("pthread_once", "more than 64 inits running at once");
}

int pthread_once(pthread_once_t *once, void (*init)(void))
{
    if (!ar_controlled())
        return REAL(pthread_once)(once, init);
    /* No scheduling point of its own: until init runs nothing is seen by
     * anyone, and init's own points (and the wait below) are where orders
     * differ. So a call on a done once (libuv's, at every loop init) adds no
     * decision to a schedule. */
    while (once_running(once)) {
        sim_wait_info why = { "once", "once", 0, -1, false };
        sim_wait(ar_waitq_of(once), &why, 0);
    }
    once_mark(once, true);
    int r = REAL(pthread_once)(once, init);   /* init runs here, or it ran before */
    once_mark(once, false);
    sim_wake_all(ar_waitq_of(once));
    return r;
}

/* ---- chance: the run's seed, not the kernel's ---- */

/* splitmix64: the n-th 64 bits of a stream keyed by the run's seed. */
static uint64_t chance(uint64_t n)
{
    uint64_t z = sim_run_seed() + 0x9e3779b97f4a7c15ull * (n + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t drawn, drawn_run;    /* 8-byte words given out in this run */

static void fill(void *buf, size_t n)
{
    if (drawn_run != sim_run_serial()) {
        drawn_run = sim_run_serial();
        drawn = 0;
    }
    for (size_t i = 0; i < n; i += 8) {
        uint64_t w = chance(drawn++);
        memcpy((char *)buf + i, &w, n - i < 8 ? n - i : 8);
    }
}

ssize_t getrandom(void *buf, size_t n, unsigned flags)
{
    if (!ar_controlled())
        return REAL(getrandom)(buf, n, flags);
    point("getrandom");
    fill(buf, n);
    return (ssize_t)n;
}

int getentropy(void *buf, size_t n)
{
    if (!ar_controlled())
        return REAL(getentropy)(buf, n);
    if (n > 256) {
        errno = EIO;
        return -1;
    }
    point("getrandom");
    fill(buf, n);
    return 0;
}

/* libevent seeds its own generator from arc4random (glibc 2.36 has one). */
uint32_t arc4random(void)
{
    if (!ar_controlled())
        return REAL(arc4random)();
    point("getrandom");
    uint32_t v;
    fill(&v, sizeof v);
    return v;
}

void arc4random_buf(void *buf, size_t n)
{
    if (!ar_controlled()) {
        REAL(arc4random_buf)(buf, n);
        return;
    }
    point("getrandom");
    fill(buf, n);
}

uint32_t arc4random_uniform(uint32_t bound)
{
    if (!ar_controlled())
        return REAL(arc4random_uniform)(bound);
    point("getrandom");
    if (bound < 2)
        return 0;
    uint32_t floor = -bound % bound, v;   /* below it, the draw would favour small values */
    do
        fill(&v, sizeof v);
    while (v < floor);
    return v % bound;
}

/* ---- barriers: counted here, waited for in the core ---- */

/* The real barrier is not used under control (a task would sleep in its
 * futex); a run's barriers are counted in this table, by address. */
enum { BARRIERS = 64 };

static struct {
    const void *barrier;
    uint64_t run;
    unsigned count, arrived, generation;
} barriers[BARRIERS];

/* This run's entry for b, or -1. */
static int barrier_of(const pthread_barrier_t *b)
{
    for (int i = 0; i < BARRIERS; i++)
        if (barriers[i].run == sim_run_serial() && barriers[i].barrier == b)
            return i;
    return -1;
}

int pthread_barrier_init(pthread_barrier_t *b, const pthread_barrierattr_t *a, unsigned count)
{
    int r = REAL(pthread_barrier_init)(b, a, count);
    if (r != 0 || !ar_controlled())
        return r;
    ar_waitq_forget(b);
    int i = barrier_of(b);            /* made anew where it was: starts afresh */
    for (int k = 0; i < 0 && k < BARRIERS; k++)
        if (barriers[k].run != sim_run_serial() || !barriers[k].barrier)
            i = k;
    if (i < 0)
        ar_uncontrolled("pthread_barrier_init", "more than 64 barriers in one run");
    barriers[i].barrier = b;
    barriers[i].run = sim_run_serial();
    barriers[i].count = count;
    barriers[i].arrived = barriers[i].generation = 0;
    return 0;
}

int pthread_barrier_destroy(pthread_barrier_t *b)
{
    int i = ar_controlled() ? barrier_of(b) : -1;
    if (i >= 0)
        barriers[i].barrier = NULL;
    return REAL(pthread_barrier_destroy)(b);
}

/* The last to arrive wakes the others and gets PTHREAD_BARRIER_SERIAL_THREAD. */
int pthread_barrier_wait(pthread_barrier_t *b)
{
    if (!ar_controlled())
        return REAL(pthread_barrier_wait)(b);
    point("barrier_wait");
    int i = barrier_of(b);
    if (i < 0)
        ar_uncontrolled("pthread_barrier_wait", "a barrier initialised outside the run");
    if (++barriers[i].arrived == barriers[i].count) {
        barriers[i].arrived = 0;
        barriers[i].generation++;
        sim_wake_all(ar_waitq_of(b));
        return PTHREAD_BARRIER_SERIAL_THREAD;
    }
    unsigned generation = barriers[i].generation;
    while (barriers[i].generation == generation) {
        sim_wait_info why = { "barrier_wait", "barrier", 0, -1, false };
        sim_wait(ar_waitq_of(b), &why, 0);
    }
    return 0;
}
