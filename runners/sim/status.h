/* status.h: how a run of the scheduler ended; one type for the core
 * (sched.h) and for the harness's calls (sim.h). */
#ifndef SIM_STATUS_H
#define SIM_STATUS_H

typedef enum { SIM_OK, SIM_DEADLOCK, SIM_STEP_BOUND, SIM_STATUS_COUNT } sim_status;
extern const char *const sim_status_names[SIM_STATUS_COUNT]; /* "ok", "deadlock", "step_bound" */

#endif
