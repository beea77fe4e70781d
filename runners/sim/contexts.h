/* contexts.h: where the core's tasks run. The core (sched.c) starts, switches
 * and abandons tasks only through one of these tables, so one core serves two
 * front ends:
 *
 *   sim_fibers   stackful fibers on one OS thread (fiber.c): sim's runner,
 *                34.5 ns per round trip
 *   sim_threads  real OS threads that take turns holding a baton (baton.c):
 *                real code keeps what it keeps per thread (pthread_self,
 *                thread-locals, errno), and the interposer hands its pthread
 *                calls to the core; microseconds per switch
 *
 * Either way exactly one task runs at a time, and every switch orders what
 * ran before it before what runs after it.
 */
#ifndef SIM_CONTEXTS_H
#define SIM_CONTEXTS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "fiber.h"

typedef struct sim_contexts {
    const char *name;                                   /* "fibers", "threads" */
    sim_fiber *(*host)(void);                           /* the calling OS thread's context */
    sim_fiber *(*start)(sim_fiber_entry entry, void *arg); /* runs at the first switch to it */
    void (*switch_to)(sim_fiber *from, sim_fiber *to);  /* from: the caller's own */
    void (*abandon)(sim_fiber *f);                      /* on the host: f never goes on */
    /* The calling OS thread is one of its task contexts (NULL: only the host's thread). */
    bool (*owns_caller)(void);
    /* The OS thread f runs on, as a pthread_t (NULL: the host's thread). */
    unsigned long (*os_thread)(sim_fiber *f);
    /* On the host once a run is over: returns when the run's contexts are gone
     * (threads: every task's thread has exited), so what the process holds is
     * what the run left. NULL: nothing to wait for. */
    void (*settle)(void);
} sim_contexts;

extern const sim_contexts sim_fibers, sim_threads;

/* Scheduling points since the process started (the core counts; the threads'
 * watchdog reads it from the host: no point for a while is a task stuck). */
extern _Atomic unsigned long long sim_points_seen;
/* The calling OS thread is the harness's: the host of a run on threads, or a
 * thread that stays outside every run (sim_threads_stay_outside); its calls
 * are not a foreign thread's. */
bool sim_threads_caller_is_harness(void);
/* The calling thread is the harness's own and never touches what the tasks
 * share (a deadline watchdog on the real clock): its libc calls during a run
 * are not a thread the scheduler failed to start. */
void sim_threads_stay_outside(void);
/* Around a run on threads, on the host: which descriptors are open before it,
 * and, if it was abandoned, closing the ones its tasks left (how many). */
void sim_threads_fds_mark(void);
/* The kernel's state letter for thread t of this process (/proc: 'R', 'S',
 * ...; '?' if unknown) and, when it sleeps in a system call, its number (else -1). */
char sim_thread_state(int t, long *syscall_nr);
int sim_threads_fds_close_new(void);
/* How long a task may hold the baton without a scheduling point (0: 2000 ms). */
void sim_threads_set_stuck_ms(unsigned ms);
/* The calling task is about to end its run from a signal handler (the
 * watchdog's, or the interposer's SIGSYS): from here on its calls go to libc,
 * and its baton outlives its unwinding. */
void sim_threads_ending_in_handler(void);
/* The process ends after this run (the preloaded scheduler): a run's dropped
 * tasks stay asleep where they wait, and the host joins no thread. */
void sim_threads_keep_abandoned(void);

#endif
