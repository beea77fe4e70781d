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
    void (*shrunk_json)(FILE *f, const sim_shrunk *s);
    const char *(*build_id)(void);
} ar_scheduler;

/* The table over sim's core (sim.h), with the configure given: sim's runner
 * passes sim_configure; the controlled runners one that puts tasks on threads. */
#define AR_SCHEDULER_OF_SIM(configure_fn) {                                      \
    .configure = configure_fn, .set_seed = sim_set_seed, .exhausted = sim_exhausted, \
    .searching = sim_searching, .profile_runs = sim_profile_runs,                \
    .search_save = sim_search_save, .search_restore = sim_search_restore,        \
    .describe = sim_describe, .last_result = sim_last_result,                    \
    .last_compact = sim_last_compact, .schedule_write = sim_schedule_write,      \
    .schedule_load = sim_schedule_load, .schedule_free = sim_schedule_free,      \
    .schedule_iteration = sim_schedule_iteration, .schedule_seed = sim_schedule_seed, \
    .schedule_outcome = sim_schedule_outcome, .schedule_param = sim_schedule_param, \
    .schedule_hash = sim_schedule_hash, .replay = sim_replay, .shrink = sim_shrink, \
    .shrunk_free = sim_shrunk_free, .shrunk_json = sim_shrunk_json,              \
    .build_id = sim_build_id,                                                    \
}

#endif
