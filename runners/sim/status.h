/* status.h: how a run of the scheduler ended; one type for the core
 * (sched.h) and for the harness's calls (sim.h). */
#ifndef SIM_STATUS_H
#define SIM_STATUS_H

/* SIM_UNCONTROLLED: on threads, something the scheduler does not order ran
 * (a thread it did not start, a call past the interposer, a task that spins
 * or blocks in the kernel without a scheduling point); the detail names it. */
typedef enum { SIM_OK, SIM_DEADLOCK, SIM_STEP_BOUND, SIM_UNCONTROLLED, SIM_STATUS_COUNT } sim_status;
extern const char *const sim_status_names[SIM_STATUS_COUNT]; /* "ok", "deadlock", "step_bound", "uncontrolled" */

#endif
