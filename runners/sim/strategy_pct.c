/* strategy_pct.c: probabilistic concurrency testing (Burckhardt, Kothari,
 * Musuvathi, Nagarakatte, ASPLOS 2010).
 *
 * Every task gets a random priority above d when first seen; d-1 change
 * points k_1..k_{d-1} are drawn from the decisions 1..k, and the task that
 * runs at decision k_i drops to priority i afterwards. The highest runnable
 * priority always runs. A bug of depth d then shows with probability at least
 * 1/(n k^(d-1)). k is given, or measured by profile runs: the first
 * PROFILE_RUNS runs choose uniformly at random, and k is the most decisions
 * one of them made (runs stopped by the step bound do not count). Later runs
 * do not change k: a PCT run is longer than a fair one (see below), and
 * measuring those would grow k without end.
 *
 * Strict priorities starve: a ping-pong of two high-priority tasks (a producer
 * and its worker) can keep the lowest one (main, whose sleep ended) from ever
 * running, and the run from ever ending. So after decision k the choice is
 * uniform (fair) again: the priority phase covers the measured length of a
 * run, and whatever it left undone still finishes. A yield drops the yielder
 * below every other task.
 */
#include "strategy.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 16
#define PROFILE_RUNS 5

typedef struct {
    sim_strategy base;
    int depth;
    uint64_t k_fixed, k;
    int n_max;
    int profiled;                 /* profile runs done */
    bool profiling;               /* this run is one */
    sim_rng rng;
    int64_t *prio;                /* by task id; 0: not yet seen this run */
    int cap;
    struct { uint64_t at; int64_t value; } change[MAX_DEPTH];
    int n_change, next_change;
    int64_t yield_floor;
} pct;

static void begin(sim_strategy *s, uint64_t seed)
{
    pct *p = (pct *)s;
    p->rng.s = seed;
    sim_zero(p->prio, sizeof *p->prio, p->cap);
    p->yield_floor = 0;
    p->next_change = 0;
    p->profiling = !p->k_fixed && p->profiled < PROFILE_RUNS;
    p->n_change = p->k ? p->depth - 1 : 0;
    for (int i = 0; i < p->n_change; i++) {
        p->change[i].at = 1 + sim_rng_below(&p->rng, p->k);
        p->change[i].value = i + 1;
    }
    for (int i = 1; i < p->n_change; i++)       /* by decision, ascending */
        for (int j = i; j > 0 && p->change[j].at < p->change[j - 1].at; j--) {
            __typeof__(p->change[0]) t = p->change[j];
            p->change[j] = p->change[j - 1];
            p->change[j - 1] = t;
        }
}

static int pick(sim_strategy *s, const sim_decision_ctx *d)
{
    pct *p = (pct *)s;
    if (p->profiling || !p->k || d->index >= p->k)  /* profiling, or past the priority phase */
        return (int)sim_rng_below(&p->rng, (uint64_t)d->n);
    p->prio = sim_hold(p->prio, sizeof *p->prio, &p->cap, d->enabled[d->n - 1]);  /* current too */
    for (int i = 0; i < d->n; i++) {
        int64_t *pr = &p->prio[d->enabled[i]];
        if (!*pr)   /* above every change value; the id breaks ties */
            *pr = (int64_t)((sim_rng_next(&p->rng) >> 24) << 16 | (uint64_t)d->enabled[i]) + MAX_DEPTH;
    }
    if (d->kind == SIM_POINT_YIELD && d->current >= 0)
        p->prio[d->current] = --p->yield_floor;
    int best = 0;
    for (int i = 1; i < d->n; i++)
        if (p->prio[d->enabled[i]] > p->prio[d->enabled[best]])
            best = i;
    uint64_t j = d->index + 1;
    while (p->next_change < p->n_change && p->change[p->next_change].at <= j)
        p->prio[d->enabled[best]] = p->change[p->next_change++].value;
    return best;
}

static uint64_t pick_value(sim_strategy *s, const sim_decision_ctx *d, uint64_t n)
{
    return sim_rng_below(&((pct *)s)->rng, n);
}

static void end(sim_strategy *s, const sim_run_result *r)
{
    pct *p = (pct *)s;
    if (p->profiling) {
        p->profiled++;
        if (r->status != SIM_STEP_BOUND && r->decisions > p->k)
            p->k = r->decisions;
    }
    if ((int)r->tasks > p->n_max)
        p->n_max = (int)r->tasks;
}

static void destroy(sim_strategy *s)
{
    free(((pct *)s)->prio);
    free(s);
}

/* k in use (0 before the profile run) and n, the most tasks seen in one run. */
static void describe(const sim_strategy *s, char *buf, size_t n)
{
    const pct *p = (const pct *)s;
    snprintf(buf, n, "depth=%d, steps=%llu%s, tasks=%d", p->depth, (unsigned long long)p->k,
             p->k_fixed ? "" : " (measured)", p->n_max);
}

sim_strategy *sim_pct_new(int depth, uint64_t steps)
{
    if (depth < 1 || depth > MAX_DEPTH)
        return NULL;
    pct *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base = (sim_strategy){ .name = "pct", .profile_runs = steps ? 0 : PROFILE_RUNS,
                              .begin = begin, .pick = pick, .pick_value = pick_value, .end = end,
                              .destroy = destroy, .describe = describe };
    p->depth = depth;
    p->k_fixed = p->k = steps;
    return &p->base;
}

