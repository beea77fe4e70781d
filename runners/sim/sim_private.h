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

#endif
