/* strategy.h: how the scheduler core makes its choices. Each strategy is one
 * implementation of sim_strategy: begin, pick, pick_value and end around each
 * run (the core asks only when there is a choice: two or more runnable tasks,
 * or a value range of two or more), and what only it knows: its parameters in
 * words, where a run left what it follows, and, for a search, exhaustion and
 * its state between processes. api.c's table maps names to makers; nothing
 * else in the core knows a strategy by name (the case plumbing names one per
 * mode).
 *
 *   random  a seeded uniform choice at every decision
 *   pos     partial-order sampling: random priorities, reset where events race
 *   surw    a uniform walk over interleavings, weighted by events left
 *   pct     Burckhardt et al., ASPLOS 2010: random task priorities, d-1
 *           priority-change points over k decisions; always the highest
 *           runnable priority
 *   dfs     every schedule with at most P preemptions (CHESS): one schedule
 *           per run, depth first; knows when the bound is exhausted
 *   dfs-sleep  the same with sleep sets: skips reorderings of independent
 *           steps (partial-order reduction)
 *   dpor    dfs-sleep with dynamic partial-order reduction: tries another
 *           task at a decision only where a race asks for it
 *   delay   the same search, bounding delays (Emmi et al., POPL 2011): any
 *           step away from a round-robin default costs, also at blocking
 *           points, which CHESS leaves free
 *   replay  the decisions of a recorded log; says where a run leaves it
 */
#ifndef SIM_STRATEGY_H
#define SIM_STRATEGY_H

#include "grow.h"
#include "sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a runnable task will do when it runs next: the point it stopped at (or
 * the wait it was woken from, or "start"), with the point's argument. */
typedef struct sim_event {
    const char *name;
    long arg;
} sim_event;

/* Whether two tasks' next events may race: the same mutex, condition, loop or
 * task, or two race points (a case's points are taken to race with each
 * other). A guess POS steers by, not a proof of independence. */
bool sim_events_race(const sim_event *a, const sim_event *b);

typedef struct sim_decision_ctx {
    uint64_t step;            /* steps of this run so far */
    uint64_t index;           /* decisions of this run before this one */
    const char *point;        /* the scheduling point, or the value's name */
    long arg;
    sim_point_kind kind;
    int task;                 /* the task that reached the point */
    uint64_t task_step;       /* its own scheduling points so far, this one included */
    int current;              /* task, when it may go on (among enabled); else -1 */
    const int *enabled;       /* runnable task ids, ascending (task decisions) */
    const sim_event *events;  /* each one's next event, parallel to enabled */
    int n;                    /* how many: >= 2 */
    const sim_chunk *since;   /* what ran since the previous decision (task decisions) */
    bool idle;                /* the task at the point went idle (sim_wait_info's idle) */
} sim_decision_ctx;

struct sim_strategy {
    const char *name;
    /* Runs it learns from before its choices follow its own rule (pct: k, surw:
     * the events per task); the case plumbing runs them first in every process,
     * uncounted, so a schedule does not depend on how iterations were batched. */
    int profile_runs;
    void (*begin)(sim_strategy *s, uint64_t seed);                  /* a run starts */
    int (*pick)(sim_strategy *s, const sim_decision_ctx *d);        /* index into d->enabled */
    uint64_t (*pick_value)(sim_strategy *s, const sim_decision_ctx *d, uint64_t n); /* [0, n) */
    void (*end)(sim_strategy *s, const sim_run_result *r);          /* the run ended */
    void (*destroy)(sim_strategy *s);
    /* Optional; NULL: nothing to say. */
    void (*describe)(const sim_strategy *s, char *buf, size_t n);   /* "depth=3, steps=412" */
    const char *(*divergence)(const sim_strategy *s); /* where the last run left what it
                                                         follows, or "" */
    /* A search (all three, or none): every schedule within its bound has run;
     * its state between two runs, as text lines another process reads back. */
    bool (*exhausted)(const sim_strategy *s);
    void (*save)(const sim_strategy *s, FILE *f);
    bool (*restore)(sim_strategy *s, FILE *f);  /* false, nothing changed: not a state of it */
    /* Optional: the run that just ended was another shard's (dfs's --shard). */
    bool (*foreign)(const sim_strategy *s);
};

sim_strategy *sim_random_new(void);
/* Partial-order sampling (Yuan, Yang, Gu, CAV 2018): random priorities per
 * task, the highest runnable one runs, and the tasks whose next event races
 * with the one that ran draw new priorities. */
sim_strategy *sim_pos_new(void);
/* A uniform random walk over interleavings (Zhao et al., ASPLOS 2025, as
 * shuttle's urw.rs): a task is picked with weight its events left, estimated
 * from profile runs. */
sim_strategy *sim_surw_new(void);
/* depth d >= 1; steps k = 0: measured, the running maximum of decisions per run. */
sim_strategy *sim_pct_new(int depth, uint64_t steps);

/* delays: bound the delays (strategy "delay"), else the preemptions ("dfs");
 * sleep: with sleep sets ("dfs-sleep"; not with delays). bound < 0: none.
 * Its divergence: where the last run stopped matching the prefix it was to
 * replay (the program is not deterministic under its schedule). Its
 * description counts the schedules run and, with sleep sets, the redundant
 * ones: runs that reached a decision where every option slept. */
sim_strategy *sim_dfs_new(int bound, bool delays, bool sleep);
/* dfs-sleep with source-DPOR (dpor.h): at each decision only the tasks a race
 * of a run asks for. bound < 0: none. Its description also counts the races
 * and the reversals they asked for. */
sim_strategy *sim_dpor_new(int bound);
/* dfs, dfs-sleep or delay runs only part shard (0..shards-1) of its tree;
 * false for dpor (strategy_dfs.c says why). */
bool sim_dfs_shard(sim_strategy *s, int shard, int shards);

/* Follows log (which must outlive the strategy); its divergence: where the
 * last run left the recorded schedule. */
sim_strategy *sim_replay_new(const sim_log *log);

/* An array by task id (elem bytes each, *cap of them) that holds index id:
 * p itself, or p grown with the new slots zeroed and *cap updated (out of
 * memory aborts: a run cannot go on). */
static inline void *sim_hold(void *p, size_t elem, int *cap, int id)
{
    if (id < *cap)
        return p;
    int c = *cap ? *cap : 16;
    while (c <= id)
        c *= 2;
    unsigned char *q = realloc(p, (size_t)c * elem);
    if (!q)
        abort();
    memset(q + (size_t)*cap * elem, 0, (size_t)(c - *cap) * elem);
    *cap = c;
    return q;
}

/* A run starts: every slot of a per-task array (cap of them) back to zero. */
static inline void sim_zero(void *p, size_t elem, int cap)
{
    if (cap > 0)
        memset(p, 0, (size_t)cap * elem);
}

/* A fast seeded generator, shared by the strategies. */
typedef struct { uint64_t s; } sim_rng;
static inline uint64_t sim_rng_next(sim_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* Uniform in [0, n), n >= 1. */
static inline uint64_t sim_rng_below(sim_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)sim_rng_next(r) * n) >> 64);
}

#endif
