/* baton.c: the core's tasks as real OS threads that take turns holding a
 * baton (see contexts.h). Each context has a futex word; "switch from a to b"
 * sets b's word, wakes b and sleeps on a's until someone hands the baton
 * back. The word is a C11 atomic (release on hand-over, acquire on taking
 * it), so the sanitizers see every switch as the happens-before edge it is.
 *
 * A task's thread is created with the real pthread_create (looked up past any
 * definition in the executable: the interposer defines its own), waits for
 * its first turn, runs entry, hands the baton to what entry returned and
 * exits. The host joins every one of them once the run is over (settle), so a
 * run returns only when its threads are gone: a leak check or a thread count
 * right after it sees no thread still on its way out. An abandoned one (a run ended by a deadlock or the step bound)
 * wakes, hands the baton back to the host and exits where it waited, with
 * pthread_exit: its frames are never resumed, as with fibers.
 */
#include "contexts.h"

#include <dlfcn.h>
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct baton {
    _Atomic uint32_t turn;        /* 1: this context holds the baton */
    _Atomic bool abandoned;
    sim_fiber_entry entry;
    void *arg;
    bool host;
    pthread_t tid;
    struct baton *unwind_to;      /* where an abandoned one hands the baton */
} baton;

static _Thread_local baton *self;     /* the calling thread's context, once it has one */
static _Thread_local baton host_ctx;

typedef long (*syscall_fn)(long, ...);

static void futex(_Atomic uint32_t *word, int op, uint32_t val)
{
    /* libc's syscall(), past the interposer's (which takes syscall() from
     * tasks). The kernel reads the word itself; EAGAIN (it changed) and EINTR
     * only send the caller round its loop again. */
    static _Atomic syscall_fn real;
    syscall_fn fn = atomic_load_explicit(&real, memory_order_relaxed);
    if (!fn) {
        fn = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
        atomic_store_explicit(&real, fn ? fn : syscall, memory_order_relaxed);
        fn = fn ? fn : syscall;
    }
    fn(SYS_futex, (uint32_t *)word, op, val, NULL, NULL, 0);
}

/* The word: 1, the context holds the baton; 0, it waits awake (spinning);
 * 2, it sleeps in the kernel and must be woken. */
enum { WAITING = 0, HOLDS = 1, ASLEEP = 2, SPINS = 200 };

static void hand(baton *to)
{
    if (atomic_exchange_explicit(&to->turn, HOLDS, memory_order_release) == ASLEEP)
        futex(&to->turn, FUTEX_WAKE_PRIVATE, 1);
}

/* Waits until me holds the baton: a short spin first (the hand-back often
 * comes within microseconds, and a futex wake-up costs several), then the
 * kernel. An abandoned task exits here. */
static void take(baton *me)
{
    for (int i = 0;; i++) {
        uint32_t v = atomic_load_explicit(&me->turn, memory_order_acquire);
        if (v == HOLDS) {
            atomic_store_explicit(&me->turn, WAITING, memory_order_relaxed);
            break;
        }
        if (i < SPINS) {
            __builtin_ia32_pause();
            continue;
        }
        uint32_t expect = WAITING;
        if (v == ASLEEP || atomic_compare_exchange_strong_explicit(&me->turn, &expect, ASLEEP,
                                                                   memory_order_acquire,
                                                                   memory_order_acquire))
            futex(&me->turn, FUTEX_WAIT_PRIVATE, ASLEEP);
    }
    if (atomic_load_explicit(&me->abandoned, memory_order_acquire)) {
        baton *to = me->unwind_to;
        free(me);
        self = NULL;
        hand(to);
        pthread_exit(NULL);
    }
}

static void *thread_main(void *p)
{
    baton *me = p;
    self = me;
    take(me);
    baton *next = (baton *)me->entry(me->arg);
    self = NULL;
    free(me);
    hand(next);
    return NULL;
}

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*join_fn)(pthread_t, void **);

static create_fn real_create(void)
{
    static create_fn fn;
    if (!fn) {
        fn = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
        if (!fn)
            fn = pthread_create;
    }
    return fn;
}

static join_fn real_join(void)
{
    static join_fn fn;
    if (!fn) {
        fn = (join_fn)dlsym(RTLD_NEXT, "pthread_join");
        if (!fn)
            fn = pthread_join;
    }
    return fn;
}

/* The threads started since the last settle (only the baton's holder adds). */
static pthread_t *started;
static size_t n_started, cap_started;

static sim_fiber *host(void)
{
    if (!self) {
        host_ctx.host = true;
        self = &host_ctx;
    }
    return (sim_fiber *)self;
}

static sim_fiber *start(sim_fiber_entry entry, void *arg)
{
    baton *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->entry = entry;
    b->arg = arg;
    if (n_started == cap_started) {
        size_t cap = cap_started ? cap_started * 2 : 16;
        pthread_t *p = realloc(started, cap * sizeof *p);
        if (!p) {
            free(b);
            return NULL;
        }
        started = p;
        cap_started = cap;
    }
    int err = real_create()(&b->tid, NULL, thread_main, b);
    if (err) {
        free(b);
        errno = err;
        return NULL;
    }
    started[n_started++] = b->tid;
    return (sim_fiber *)b;
}

static void switch_to(sim_fiber *from, sim_fiber *to)
{
    baton *me = (baton *)from, *next = (baton *)to;
    if (me == next)
        return;
    hand(next);
    take(me);
}

static void abandon(sim_fiber *f)
{
    baton *b = (baton *)f;
    b->unwind_to = self;
    atomic_store_explicit(&b->abandoned, true, memory_order_release);
    switch_to((sim_fiber *)self, f);
}

static void settle(void)
{
    for (size_t i = 0; i < n_started; i++)
        real_join()(started[i], NULL);
    n_started = 0;
}

static bool owns_caller(void) { return self && !self->host; }
static unsigned long os_thread(sim_fiber *f) { return (unsigned long)((baton *)f)->tid; }

const sim_contexts sim_threads = { "threads", host, start, switch_to, abandon, owns_caller,
                                   os_thread, settle };
