/* strategy_surw.c: a uniform random walk over interleavings (URW; Zhao, Wolff,
 * Mathur and Roychoudhury, "Selectively Uniform Concurrency Testing", ASPLOS
 * 2025; as shuttle's urw.rs). Picking each runnable task with probability in
 * proportion to the events it has left samples interleavings uniformly when
 * nothing blocks, where a uniform choice per step favours the interleavings
 * that switch often. The events left are estimated from PROFILE_RUNS uniform
 * runs first: for each task id, the most decisions it won in one of them. */
#include "strategy.h"

#include <stdlib.h>
#include <string.h>

#define PROFILE_RUNS 5

typedef struct {
    sim_strategy base;
    sim_rng rng;
    uint64_t *estimate;           /* by task id: events it takes in a run */
    uint64_t *done;               /* by task id: events it took in this run */
    int cap_estimate, cap;        /* cap: done's (every id seen so far) */
    int profiled;
} surw;

static void begin(sim_strategy *s, uint64_t seed)
{
    surw *u = (surw *)s;
    u->rng.s = seed;
    sim_zero(u->done, sizeof *u->done, u->cap);
}

static int pick(sim_strategy *s, const sim_decision_ctx *d)
{
    surw *u = (surw *)s;
    int top = d->enabled[d->n - 1];
    u->estimate = sim_hold(u->estimate, sizeof *u->estimate, &u->cap_estimate, top);
    u->done = sim_hold(u->done, sizeof *u->done, &u->cap, top);
    int chosen;
    if (u->profiled < PROFILE_RUNS) {
        chosen = (int)sim_rng_below(&u->rng, (uint64_t)d->n);
    } else {
        uint64_t total = 0, weight[d->n];
        for (int i = 0; i < d->n; i++) {
            int id = d->enabled[i];
            weight[i] = u->estimate[id] > u->done[id] ? u->estimate[id] - u->done[id] : 1;
            total += weight[i];
        }
        uint64_t r = sim_rng_below(&u->rng, total);
        for (chosen = 0; r >= weight[chosen]; chosen++)
            r -= weight[chosen];
    }
    u->done[d->enabled[chosen]]++;
    return chosen;
}

static uint64_t pick_value(sim_strategy *s, const sim_decision_ctx *d, uint64_t n)
{
    return sim_rng_below(&((surw *)s)->rng, n);
}

static void end(sim_strategy *s, const sim_run_result *r)
{
    surw *u = (surw *)s;
    if (u->profiled >= PROFILE_RUNS)
        return;
    u->profiled++;
    for (int id = 0; id < u->cap; id++)
        if (u->done[id] > u->estimate[id])
            u->estimate[id] = u->done[id];
}

static void destroy(sim_strategy *s)
{
    surw *u = (surw *)s;
    free(u->estimate);
    free(u->done);
    free(u);
}

sim_strategy *sim_surw_new(void)
{
    surw *u = calloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->base = (sim_strategy){ .name = "surw", .profile_runs = PROFILE_RUNS, .begin = begin, .pick = pick,
                              .pick_value = pick_value, .end = end, .destroy = destroy };
    return &u->base;
}
