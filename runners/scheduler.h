/* scheduler.h: what a runner that owns the schedule (sim) offers the case
 * plumbing around its iterations, through runner.h's `scheduler` entry: the
 * strategy, each schedule's seed, how a schedule ended, and schedule files to
 * replay. A real loop's entry is NULL. The types are the scheduler core's
 * (runners/sim/sim.h), which knows nothing of runner.h. */
#ifndef ASYNCRACE_SCHEDULER_H
#define ASYNCRACE_SCHEDULER_H

#include "sim/sim.h"

typedef struct ar_scheduler {
    int (*configure)(const sim_options *o, char *err, size_t n);
    void (*set_seed)(uint64_t seed);
    bool (*exhausted)(void);
    bool (*searching)(void);
    int (*profile_runs)(void);
    void (*search_save)(FILE *f);
    bool (*search_restore)(FILE *f, char *err, size_t n);
    const char *(*describe)(void);
    const sim_result *(*last_result)(void);
    char *(*last_compact)(void);          /* malloc'd */
    int (*schedule_write)(const char *path, const sim_schedule_id *id, uint64_t iteration,
                          uint64_t seed, const char *outcome, const char *detail,
                          char *err, size_t n);
    sim_schedule *(*schedule_load)(const char *path, const sim_schedule_id *expect,
                                   char *err, size_t n);
    void (*schedule_free)(sim_schedule *s);
    uint64_t (*schedule_iteration)(const sim_schedule *s);
    uint64_t (*schedule_seed)(const sim_schedule *s);
    const char *(*schedule_outcome)(const sim_schedule *s);
    bool (*schedule_param)(const sim_schedule *s, const char *name, uint64_t *value);
    uint64_t (*schedule_hash)(const sim_schedule *s);
    void (*replay)(const sim_schedule *s);
    int (*shrink)(const sim_schedule *s, bool (*fails)(void *ctx), void *ctx,
                  uint64_t (*mark)(void), sim_shrunk *out, char *err, size_t n);
    void (*shrunk_free)(sim_shrunk *s);
    const char *(*build_id)(void);
} ar_scheduler;

#endif
