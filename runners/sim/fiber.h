/* fiber.h: stackful contexts on one OS thread, for the sim scheduler core.
 *
 * A fiber is a stack and a saved stack pointer. Switching is a hand-written
 * x86-64 swap of the callee-saved registers (no signal mask, so no system
 * call: glibc's swapcontext makes one on every switch); other machines fall
 * back to ucontext. The sanitizers hear of every switch: ASan through
 * __sanitizer_{start,finish}_switch_fiber (which stack is live), TSan through
 * __tsan_{create,switch_to}_fiber (each fiber is a "thread" to TSan;
 * a switch orders everything before it with everything after it, which is
 * what one OS thread does).
 *
 * Fibers are pooled: when its entry returns, a fiber parks itself and a later
 * sim_fiber_start resumes it with the next entry, from the same frame. That
 * skips the stack set-up, and TSan's ~1 ms per fiber created, while keeping
 * TSan's shadow call stack balanced. A fiber left suspended mid-call is
 * given up with sim_fiber_abandon: its stack is reused, its frames forgotten.
 *
 * Nothing here knows about tasks or scheduling.
 */
#ifndef SIM_FIBER_H
#define SIM_FIBER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sim_fiber sim_fiber;

/* Returns the fiber to switch to once it has returned. */
typedef sim_fiber *(*sim_fiber_entry)(void *arg);

/* The OS thread's own context, which fibers switch back to. */
sim_fiber *sim_fiber_host(void);
/* A fiber that runs entry(arg) at the first switch to it; NULL when no stack
 * can be mapped. After entry returns the fiber goes back to the pool. */
sim_fiber *sim_fiber_start(sim_fiber_entry entry, void *arg);
/* Suspends from (the running fiber) and resumes to. */
void sim_fiber_switch(sim_fiber *from, sim_fiber *to);
/* Called on the host: f's entry will never go on; f unwinds and parks. */
void sim_fiber_abandon(sim_fiber *f);
/* "x86-64 switch" or "ucontext". */
const char *sim_fiber_kind(void);

#endif
