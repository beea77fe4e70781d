/* sim_private.h: between the files of sim (api.c, schedule.c, sim.c); not
 * for the harness, which uses sim.h. */
#ifndef SIM_PRIVATE_H
#define SIM_PRIVATE_H

#include "log.h"
#include "sim.h"

/* Configures the defaults unless sim_configure ran: the runner calls it
 * before anything that may start a task. */
void sim_api_ready(void);
const sim_options *sim_api_options(void);
uint64_t sim_api_seed(void);

const sim_log *sim_schedule_log(const sim_schedule *s);
const char *sim_schedule_strategy(const sim_schedule *s);
uint64_t sim_schedule_step_ns(const sim_schedule *s);
uint64_t sim_schedule_step_bound(const sim_schedule *s);

/* A decision, named by its number in the run and by the task at its point
 * and that task's own step count there (shrink.c). */
typedef struct sim_choice {
    uint64_t index, chose;        /* the decision's number in the log; what it chose */
    bool value;
    int task;
    uint64_t task_step;
} sim_choice;
/* While a schedule is replayed, the next runs follow s instead (with the
 * schedule's seed, step length and bound); NULL: the replay again. */
void sim_guide(sim_strategy *s);
/* The strategy, step length and bound the last run had (a replayed or
 * guided run's are its schedule's), for sim_schedule_write. */
const char *sim_api_last_strategy(void);
uint64_t sim_api_last_step_ns(void);
uint64_t sim_api_last_step_bound(void);

#endif
