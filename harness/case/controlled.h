/* controlled.h: the case plumbing's side of a runner that owns the schedule
 * (sim): which strategy each mode runs, each schedule's seed, how a run that
 * the scheduler ended (deadlock, step bound) is counted, the failing
 * schedules written to files, and --schedule FILE replayed. Between
 * case_main.c and report.c; not for cases. */
#ifndef ASYNCRACE_CONTROLLED_H
#define ASYNCRACE_CONTROLLED_H

#include "case.h"
#include "scheduler.h"

#define AR_FAILING_KEPT 32

enum { AR_BOUND_UNSET = -1, AR_BOUND_NONE = -2 };   /* --bound absent; --bound none */

typedef struct { uint64_t iteration, hash; ar_outcome outcome; } ar_failing_schedule;
/* A search covers one program (one iteration seed) at a time; then the next. */
typedef struct { uint64_t seed, first_iteration, schedules, failures; bool exhausted;
                 uint64_t foreign; } ar_program_searched;   /* foreign: --shard's, of schedules */
#define AR_PROGRAMS_KEPT 16

typedef struct ar_controlled {
    const ar_scheduler *sched;    /* NULL: a real loop, and none of this applies */
    /* From the command line. */
    const char *strategy;         /* NULL: the mode's (natural random, chaos pct, forced
                                     random, exhaustive delay) */
    long bound;                   /* dfs, dfs-sleep, delay: AR_BOUND_UNSET (2), AR_BOUND_NONE */
    long pct_depth;               /* -1: 3 */
    long step_bound;              /* -1: the scheduler's */
    long shard, shards;           /* --shard I/N: this search's part (shards 0: the whole) */
    const char *schedule_path;    /* --schedule: replay this one */
    const char *schedules_dir;    /* where failing schedules go */
    const char *race_log_path;    /* --race-log: the first failing (or replayed) iteration's log */
    const char *search_state_path; /* --search-state: where a search is saved between batches */
    const char *explain_prefix;   /* --explain: shrink the replayed schedule (explain.c) */
    /* The run. */
    sim_options options;
    sim_schedule *replaying;
    bool searching;               /* dfs, dfs-sleep, delay: every schedule of a program in the bound */
    bool uncounted;               /* running a search's earlier schedules again, to resume it */
    uint64_t rerun;               /* how many, this process */
    const char *runner_name;      /* the runner: schedule files name it, and replay checks it */
    char identity[512];           /* case, variant, mode, build, strategy, bound, run seed */
    uint64_t run_seed;
    uint64_t program_seed;        /* searching: the seed every schedule of this program gets */
    size_t n_programs;            /* programs searched or being searched */
    size_t programs_exhausted;    /* of them, searched to the bound */
    ar_program_searched programs[AR_PROGRAMS_KEPT];
    uint64_t schedules;
    bool exhausted;               /* searching: every program begun was searched to its end */
    uint64_t run_hash;            /* of every schedule's hash, in order */
    size_t n_failing;
    ar_failing_schedule failing[AR_FAILING_KEPT];
    char files[AR_OUTCOME_COUNT][512];  /* the first failing schedule of each outcome */
    bool replayed, diverged, reproduced;
    char where[320];
    char recorded_outcome[32];
    /* --explain: the minimal schedule and its explanation, or why there is none. */
    bool explained;
    size_t deviations_before, deviations_after, shrink_runs;
    char minimal_path[512], minimal_race_log[512], explanation_path[512], explain_error[256];
    /* The program's parameters, written into every schedule file. */
    sim_param params[SIM_PARAMS_MAX];
    size_t n_params;
} ar_controlled;

/* Bad input: "asyncrace: " and the message on one line of stderr, exit 2
 * (case_main.c's, shared with this file). */
void ar_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Bad input (a sim flag without sim, a bad strategy, a schedule file that
 * does not load) prints one line and exits 2; nothing has run. */
void ar_controlled_setup(ar_controlled *c, const ar_case *cs, const ar_runner *r,
                         const ar_variant *v, ar_mode mode, uint64_t run_seed);
/* What the program is run with (workers, run time, deadline): recorded with
 * every failing schedule. */
void ar_controlled_params(ar_controlled *c, const sim_param *params, size_t n);
/* Replaying: the value the schedule recorded for a parameter. */
bool ar_controlled_recorded(const ar_controlled *c, const char *name, uint64_t *value);
/* A search resumed at iteration start: restores --search-state when it was
 * saved by this very search at an iteration <= start, and returns that
 * iteration; 0 when there is none. The schedules from there to start must run
 * again (uncounted) to bring the search to start. */
uint64_t ar_controlled_resume(ar_controlled *c, uint64_t start);
/* Saves the search (to --search-state) as it stands before iteration next. */
void ar_controlled_save_search(const ar_controlled *c, uint64_t next);
/* The iteration and seed --schedule recorded. */
uint64_t ar_controlled_replay_iteration(const ar_controlled *c);
uint64_t ar_controlled_replay_seed(const ar_controlled *c);
/* The seed of iteration i: the run's own, or a search's program's (a search
 * that exhausted one program goes on with the next). */
uint64_t ar_controlled_seed(ar_controlled *c, uint64_t i, uint64_t (*seed_of)(uint64_t, uint64_t));
/* Before each run: the schedule's seed. */
void ar_controlled_before(ar_controlled *c, uint64_t seed);
/* After each run: a run the scheduler ended early becomes deadlock or hang
 * (the iteration never returned to say otherwise). */
void ar_controlled_after(ar_controlled *c, ar_outcome *outcome, char *detail, size_t n);
/* A failing iteration's schedule and race log, written while they are the last. */
void ar_controlled_failed(ar_controlled *c, const ar_case *cs, const ar_variant *v,
                          ar_mode mode, uint64_t iteration, uint64_t seed, ar_outcome o,
                          const char *detail);
/* A file of text, whole or not at all: a temporary file beside it, then
 * rename. 0, or -1 with errno. */
int ar_write_atomically(const char *path, void (*fill)(FILE *, const void *), const void *arg);
/* The last iteration's race log into path, atomically (as above). */
int ar_write_race_log(const char *path);

/* --explain PREFIX, after the replay: runs the schedule's iteration again
 * under sim_shrink (each run through run_again, which returns its outcome and
 * fills detail) and writes PREFIX.minimal.json, its race log, and
 * PREFIX.explain.json; what came of it goes into the report's sim section. */
void ar_controlled_explain(ar_controlled *c, const ar_case *cs, const ar_variant *v, ar_mode mode,
                           ar_outcome (*run_again)(void *ctx, char *detail, size_t n), void *ctx);

/* The race log of the last iteration into --race-log, atomically. */
void ar_controlled_write_race_log(const ar_controlled *c);

#endif
