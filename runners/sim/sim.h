/* sim.h: what the harness calls around iterations on the sim runner.
 *
 * Each call of the runner table's run() (ar_runner_sim.run) is one schedule:
 * the function runs as task 1 of a fresh run of the scheduler with every
 * thread it starts, on a virtual clock that starts at the same value each
 * time. Before it: choose a strategy (sim_configure, once) and the schedule's
 * seed (sim_set_seed, per iteration), or a schedule to replay (sim_replay).
 * After it: sim_last_result() says how the schedule ended, with its hashes,
 * and sim_schedule_write() saves it when the iteration failed.
 *
 *   random  seeded uniform choice at each decision
 *   pct     PCT depth d; k measured by the first (profile) run unless given
 *   dfs     every schedule with at most P preemptions (CHESS); iteration i
 *           runs the i-th schedule; stop when sim_exhausted(). The program
 *           must be the same each time (same seed for the case), else the
 *           result says so. Switches at blocking points are free, so on event
 *           loops (a choice at every loop wait) the count is exponential.
 *   dfs-sleep  dfs with sleep sets: reorderings of independent steps are
 *           skipped (strategy_dfs.c says when that is sound under a bound)
 *   delay   the same search over every schedule with at most P delays: each
 *           step away from a round-robin default costs, blocking points too;
 *           polynomial in the schedule's length.
 *
 * Nothing here includes runner.h: the same calls serve a pthread front end.
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "status.h"

typedef struct sim_options {
    const char *strategy;     /* "random", "pct", "dfs" or "delay" */
    int pct_depth;            /* d, 1..16 */
    uint64_t pct_steps;       /* k, decisions per schedule; 0: measured */
    int dfs_bound;            /* P: preemptions (dfs) or delays (delay) per schedule; -1: none */
    uint64_t step_bound;      /* scheduling points per schedule; 0: none */
    uint64_t step_ns;         /* virtual time per scheduling point */
    bool threads;             /* tasks are real threads taking turns (real code under
                                 the interposer); false: fibers of one OS thread */
    bool step_jitter;         /* each step's virtual time drawn from the run's seed
                                 (step_ns/2 to 3*step_ns/2), so a timeout ends at a
                                 different point of a loop in each program: with fixed
                                 steps it ends at the same point of a loop that repeats
                                 in every schedule (the preloaded scheduler) */
    int shard, shards;        /* dfs, dfs-sleep, delay: run part shard of shards (0: all) */
} sim_options;

#define SIM_OPTIONS_DEFAULT { "random", 3, 0, 2, 1000000, 1000, false, false, 0, 0 }

/* Everything below acts on the current instance of the core: its options,
 * strategy and search state, its run counters, hashes and last result. A
 * process starts with one; sim_core_new makes another, as a fresh process
 * would have it, and sim_core_use makes it current (returning the one that
 * was; not inside a run), so two searches can go on side by side in one
 * process, each as if alone. sim_core_free drops one that is not current. */
typedef struct sim_core sim_core;
sim_core *sim_core_new(void);
sim_core *sim_core_use(sim_core *c);
void sim_core_free(sim_core *c);

/* "random, pos, surw, pct, dfs, dfs-sleep, delay": what sim_configure accepts. */
const char *sim_strategy_names(void);
/* Sets the strategy of the next schedules and starts counting them (and the
 * run hash) afresh. 0, or -1 with one line in err naming the bad value. */
int sim_configure(const sim_options *o, char *err, size_t n);
/* The seed of the next schedule (random and pct choose from it; dfs does not). */
void sim_set_seed(uint64_t seed);
/* The seed the current run was started with (a replay: the schedule's). */
uint64_t sim_run_seed(void);
/* How many runs the strategy profiles before it follows its own rule (pct,
 * surw; 0 for the others): run them first, uncounted, in every process. */
int sim_profile_runs(void);
/* dfs, dfs-sleep, delay: every schedule within the bound has run. Always
 * false otherwise. */
bool sim_exhausted(void);
/* The configured strategy is a search (dfs, dfs-sleep, delay): one program
 * (seed) per search, schedule after schedule until it is exhausted. */
bool sim_searching(void);
/* dfs, delay: the search's state between two schedules, as text, so another
 * process can go on with it (a resumed search runs none of its schedules
 * again). Restore needs the same strategy and bound configured: false, with
 * one line in err, when the text is not a state of it. */
void sim_search_save(FILE *f);
bool sim_search_restore(FILE *f, char *err, size_t n);
/* "pct(depth=3, steps=412, tasks=3, step_ns=1000, step_bound=1000000)". */
const char *sim_describe(void);

/* Runs fn(arg) as one schedule (what ar_runner_sim.run does). */
void sim_run(void (*fn)(void *), void *arg);


typedef struct sim_result {
    sim_status status;
    const char *detail;       /* deadlock: each task's wait; step bound: where; else "" */
    uint64_t index;           /* 0-based, since sim_configure (dfs: the schedule's number) */
    uint64_t steps;           /* scheduling points */
    uint64_t decisions;       /* of them, real choices (the log's length) */
    uint64_t tasks;           /* threads, the first included */
    uint64_t virtual_ns;      /* virtual time the schedule took */
    uint64_t hash;            /* of this schedule's decision log */
    uint64_t run_hash;        /* of every schedule since sim_configure, in order */
    bool diverged;            /* replay: it left its schedule; dfs: the program is not deterministic */
    bool foreign;             /* a sharded search: the schedule is another shard's */
    const char *divergence;   /* where; "" when not diverged */
} sim_result;

/* Inside a run the process will not come back from (a task dies on a
 * signal): the decisions so far become the last schedule, for
 * sim_schedule_write. */
void sim_result_so_far(void);

/* The last schedule's result; NULL before the first. */
const sim_result *sim_last_result(void);
/* The last schedule's decisions as one line ("1*3.2.=17.1"); malloc'd. */
char *sim_last_compact(void);

/* ---- schedule files ----
 * JSON: a header (format, case, variant, mode, build, the program's own
 * parameters, strategy and its parameters, iteration, seed, outcome), the run
 * (status, steps, hash, the compact string) and the decisions, one per line. */

typedef struct sim_schedule sim_schedule;

/* A parameter of the program that changes what it does (its workers, how
 * long its scenario runs): recorded, so a replay runs the same program. */
typedef struct sim_param {
    const char *name;
    uint64_t value;
} sim_param;
#define SIM_PARAMS_MAX 8

/* Who a schedule belongs to; build NULL means sim_build_id(). params are
 * written with the schedule; loading does not check them (the caller
 * compares what it was given with sim_schedule_param). */
typedef struct sim_schedule_id {
    const char *case_name, *variant, *mode, *build;
    const sim_param *params;
    size_t n_params;
    const char *runner;       /* the runner that ran it; NULL: "sim" (files without one
                                 were all recorded on sim) */
} sim_schedule_id;

/* Writes the last schedule (atomically: a temporary file, then rename).
 * outcome and detail are the harness's verdict on it. 0, or -1 with err. */
int sim_schedule_write(const char *path, const sim_schedule_id *id, uint64_t iteration,
                       uint64_t seed, const char *outcome, const char *detail,
                       char *err, size_t n);
/* Reads and checks a schedule file. NULL with one line in err when it is
 * missing, truncated, corrupt (bad JSON, a field missing, hash or compact
 * string not matching the decisions) or recorded for another case, variant,
 * mode or build than expect names (a NULL field in expect is not checked). */
sim_schedule *sim_schedule_load(const char *path, const sim_schedule_id *expect,
                                char *err, size_t n);
void sim_schedule_free(sim_schedule *s);
uint64_t sim_schedule_hash(const sim_schedule *s);
uint64_t sim_schedule_steps(const sim_schedule *s);   /* how many the recorded run took */
uint64_t sim_schedule_iteration(const sim_schedule *s);
uint64_t sim_schedule_seed(const sim_schedule *s);
const char *sim_schedule_outcome(const sim_schedule *s);
/* The recorded value of a program parameter; false when the file has none. */
bool sim_schedule_param(const sim_schedule *s, const char *name, uint64_t *value);
/* The next schedules replay s (with its step_ns and step bound) until
 * sim_replay(NULL) or sim_configure; s must stay alive until then. */
void sim_replay(const sim_schedule *s);

/* ---- a failing schedule, shrunk and explained ----
 * A failing schedule is a passing one (the base) but at its deviations. The
 * base is the default schedule when it passes (the task at a point goes on;
 * at a yield, a block or an end, the next runnable task in id order; a value
 * choice takes its largest), else the first of a few seeded random schedules
 * that passes. sim_shrink cuts the replayed schedule's deviations from the
 * base down to a 1-minimal set that still fails (delta debugging): taking
 * away any one of them makes the run pass. fails() runs one iteration
 * of the program (the schedule's iteration, seed and parameters) and says
 * whether it failed as recorded; sim_shrink steers each run it makes. mark
 * (may be NULL) stamps each critical decision of the last run with where the
 * program is (the case plumbing: how many race-point events came before). */

#define SIM_STACK_FRAMES 24

typedef struct sim_critical {
    uint64_t index, step;         /* the decision's number, the step it was made at */
    const char *point;            /* where: the point's (or value's) name */
    long arg;
    int task;                     /* the task at the point */
    int default_task, chose;      /* what the base would run; what ran instead */
    const char *chose_next;       /* what that task did next (its pending event) */
    long chose_next_arg;
    bool value;                   /* a value choice: default_value, chose_value */
    uint64_t default_value, chose_value;
    bool needed;                  /* without it alone, the run passed */
    uint64_t mark;                /* sim_shrink's mark() at the decision (0 without one) */
    int frames;                   /* the stack of the task at the point */
    void *stack[SIM_STACK_FRAMES];
} sim_critical;

typedef struct sim_shrunk {
    int base_seed;                /* -1: the base is the default; else the random one's number */
    size_t base_tries;            /* random schedules run to find a passing one */
    bool no_base;                 /* none passed: nothing to measure the failure against */
    size_t before, after;         /* deviations in the schedule; in the minimal one */
    size_t tests;                 /* runs it took */
    sim_critical *critical;       /* after of them, in decision order */
} sim_shrunk;

/* 0: out is filled and the last run was the minimal schedule (what
 * sim_schedule_write saves next). -1 with one line in err: the schedule does
 * not fail again when its deviations are followed, or its minimal one passed
 * when run again (the program is not deterministic under its schedule). */
int sim_shrink(const sim_schedule *s, bool (*fails)(void *ctx), void *ctx,
               uint64_t (*mark)(void), sim_shrunk *out, char *err, size_t n);
void sim_shrunk_free(sim_shrunk *s);
/* The shrunk schedule as JSON object members (deviations, critical_count, runs,
 * base_seed, base_tries, no_base, critical: each decision with its stack as
 * module and offset), no braces. */
void sim_shrunk_json(FILE *f, const sim_shrunk *s);
/* For a fails() that runs each try in a child process (one run per process):
 * the child, its run over, sends what the run wrote into the shrink's guide
 * (task steps, a recorded base, the traced decisions); the parent takes it
 * in before fails() returns. false: what came is not what was sent. */
void sim_shrink_send(FILE *f);
bool sim_shrink_receive(FILE *f);
/* The step bound of the shrink's tries (0, the default: the schedule's own).
 * A try that runs far past the failure's length is not that failure; where a
 * try is a process (the preloaded scheduler), one that spins to the
 * schedule's bound costs seconds. */
void sim_guide_step_bound(uint64_t n);

/* The GNU build-id of the executable, in hex (or a hash of it). */
const char *sim_build_id(void);

#endif
