/* interpose.h: the interposer's shared parts. The interposer is a set of
 * definitions of libc functions (threads.c: pthread create, join, mutexes,
 * conditions, sched_yield; time.c: clocks and sleeps). Linked into an
 * executable, they also take the calls libuv.so, libevent.so and libev.so
 * make (their imports bind through the PLT to the executable's definitions;
 * -Wl,--wrap would miss them; see docs/controlled.md). Every case program
 * links them; outside a run on threads they only cost a test.
 *
 * A call from a task of a run on threads contexts (sim_caller_is_task) goes
 * to the scheduler core; any other caller gets libc's function, found with
 * dlsym(RTLD_NEXT), so an ASan or TSan interceptor in between still sees it.
 * A call from a thread the scheduler did not start, while a run is on, also
 * ends that run (SIM_UNCONTROLLED), naming the call and its caller.
 */
#ifndef AR_INTERPOSE_H
#define AR_INTERPOSE_H

#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim/sched.h"

/* libc's definition of name (or the sanitizer's interceptor before it),
 * looked up once per call site. */
#define REAL(name) ({                                                          \
    static _Atomic(__typeof__(&name)) real_;                                  \
    __typeof__(&name) fn_ = atomic_load_explicit(&real_, memory_order_relaxed); \
    if (!fn_) {                                                               \
        fn_ = (__typeof__(&name))ar_real(#name);                             \
        atomic_store_explicit(&real_, fn_, memory_order_relaxed);             \
    }                                                                         \
    fn_; })

static inline void *ar_real(const char *name)
{
    void *fn = dlsym(RTLD_NEXT, name);
    if (!fn) {
        fprintf(stderr, "asyncrace interposer: no libc definition of %s\n", name);
        abort();
    }
    return fn;
}

/* A thread the scheduler did not start made this call during a run. */
void ar_foreign_call(const char *call, void *from);

/* The calling thread is a task of a controlled run. (A macro, so that the
 * wrapper's name and its caller's address are the call's.) */
#define ar_controlled() ar_controlled_at(__func__, __builtin_return_address(0))
static inline bool ar_controlled_at(const char *call, void *from)
{
    if (sim_caller_is_task())
        return true;
    if (sim_caller_is_foreign())
        ar_foreign_call(call, from);
    return false;
}

/* A call the interposer cannot hand to the scheduler: the run cannot stay
 * deterministic, so it ends (SIM_UNCONTROLLED), naming the call; outside a
 * task, the process stops. */
_Noreturn void ar_uncontrolled(const char *call, const char *why);

/* The run's wait queue for a synchronisation object, by its address
 * (threads.c's tables: empty each run); forget: the object was made anew. */
sim_waitq *ar_waitq_of(const void *object);
void ar_waitq_forget(const void *object);

/* answers.c: what of the kernel's answer a task gets, the strategy's choice.
 * How many of n bytes a read on fd asks for (n, or fewer on a stream with
 * fewer waiting); the same over an iovec (out: the shortened copy, its count
 * returned; out has room for n). */
struct epoll_event;
struct iovec;
size_t ar_read_size(int fd, size_t n);
size_t ar_read_size_iov(int fd, const struct iovec *iov, int n, struct iovec *out);
/* epoll_ctl succeeded / fd was closed (its registrations and kind forgotten). */
void ar_registered(int epfd, int op, int fd, const struct epoll_event *ev);
void ar_closed(int fd);
/* The n events epoll_wait found, reordered; returns how many come now. */
int ar_deliver(int epfd, struct epoll_event *ev, int n);

/* futex.c: a task's futex call through syscall() (its six arguments). */
long ar_futex(const long a[6]);

/* escapes.c: traps system calls made outside libc (once per process; 0, or
 * -1 with err filled). */
int ar_trap_escapes(char *err, size_t n);

/* Virtual CLOCK_REALTIME is virtual monotonic time plus this (2026-01-01). */
#define AR_REALTIME_BASE_NS 1767225600000000000ull

#endif
