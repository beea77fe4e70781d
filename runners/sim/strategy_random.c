/* strategy_random.c: a seeded uniform choice at every decision. */
#include "strategy.h"

#include <stdlib.h>

typedef struct {
    sim_strategy base;
    sim_rng rng;
} random_strategy;

static void begin(sim_strategy *s, uint64_t seed) { ((random_strategy *)s)->rng.s = seed; }

static int pick(sim_strategy *s, const sim_decision_ctx *d)
{
    return (int)sim_rng_below(&((random_strategy *)s)->rng, (uint64_t)d->n);
}

static uint64_t pick_value(sim_strategy *s, const sim_decision_ctx *d, uint64_t n)
{
    return sim_rng_below(&((random_strategy *)s)->rng, n);
}

static void end(sim_strategy *s, const sim_run_result *r) {}
static void destroy(sim_strategy *s) { free(s); }

sim_strategy *sim_random_new(void)
{
    random_strategy *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->base = (sim_strategy){ .name = "random", .profile_runs = 0, .begin = begin, .pick = pick,
                              .pick_value = pick_value, .end = end, .destroy = destroy };
    return &r->base;
}
