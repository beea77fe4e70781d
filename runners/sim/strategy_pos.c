/* strategy_pos.c: partial-order sampling (Yuan, Yang and Gu, "Partial Order
 * Aware Concurrency Sampling", CAV 2018; as Fray's POSScheduler and RFF's
 * libsched do it).
 *
 * Every task holds a random priority; at each decision the runnable task with
 * the highest one runs. Then the task that ran, and every other runnable task
 * whose next event races with the event that ran (sim_events_race), draw new
 * priorities. Independent events keep their order; racing ones are reshuffled
 * each time one of them runs. Where uniform random needs many consecutive
 * choices against one task to starve it (dropped_writer.partial's window), a
 * low priority holds until a racing event moves it.
 *
 * One thing is added: a task passed over at STARVED decisions in a row while
 * it could run goes first at the next. Without it a task whose next event
 * races with nothing keeps a low priority for ever: main, its sleep over,
 * never ran again while a producer and its worker traded messages, until the
 * step bound ended the run as a hang (shutdown_order on libevent_ctl). An OS
 * scheduler is fair that way; a run that needs such a starvation is not one a
 * user would see. */
#include "strategy.h"

#include <stdlib.h>
#include <string.h>

enum { STARVED = 1000 };

typedef struct {
    sim_strategy base;
    sim_rng rng;
    uint64_t *prio;               /* by task id; 0: not drawn yet this run */
    uint32_t *passed;             /* by task id: decisions in a row it could run and did not */
    int cap, cap_passed;
} pos;

static uint64_t draw(pos *p) { return sim_rng_next(&p->rng) | 1; }

static void begin(sim_strategy *s, uint64_t seed)
{
    pos *p = (pos *)s;
    p->rng.s = seed;
    sim_zero(p->prio, sizeof *p->prio, p->cap);
    sim_zero(p->passed, sizeof *p->passed, p->cap_passed);
}

static int pick(sim_strategy *s, const sim_decision_ctx *d)
{
    pos *p = (pos *)s;
    p->prio = sim_hold(p->prio, sizeof *p->prio, &p->cap, d->enabled[d->n - 1]);
    p->passed = sim_hold(p->passed, sizeof *p->passed, &p->cap_passed, d->enabled[d->n - 1]);
    int best = 0;
    for (int i = 0; i < d->n; i++) {
        uint64_t *pr = &p->prio[d->enabled[i]];
        if (!*pr)
            *pr = draw(p);
        if (p->passed[d->enabled[i]] >= STARVED)
            *pr = UINT64_MAX;
        if (*pr > p->prio[d->enabled[best]])
            best = i;
    }
    for (int i = 0; i < d->n; i++) {
        p->passed[d->enabled[i]] = i == best ? 0 : p->passed[d->enabled[i]] + 1;
        if (i == best || sim_events_race(&d->events[i], &d->events[best]))
            p->prio[d->enabled[i]] = draw(p);
    }
    return best;
}

static uint64_t pick_value(sim_strategy *s, const sim_decision_ctx *d, uint64_t n)
{
    return sim_rng_below(&((pos *)s)->rng, n);
}

static void end(sim_strategy *s, const sim_run_result *r) {}

static void destroy(sim_strategy *s)
{
    free(((pos *)s)->prio);
    free(((pos *)s)->passed);
    free(s);
}

sim_strategy *sim_pos_new(void)
{
    pos *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->base = (sim_strategy){ .name = "pos", .profile_runs = 0, .begin = begin, .pick = pick,
                              .pick_value = pick_value, .end = end, .destroy = destroy };
    return &p->base;
}

/* ---- which events race ---- */

static const char *family(const char *name)
{
    static const struct { const char *name, *family; } known[] = {
        { "mutex_lock", "mutex" }, { "mutex_trylock", "mutex" }, { "mutex_unlock", "mutex" },
        { "cond_wait", "cond" }, { "cond_broadcast", "cond" },
        { "post", "loop" }, { "loop.turn", "loop" }, { "loop_stop", "loop" }, { "loop_run", "loop" },
        { "start", "task" }, { "thread_start", "task" }, { "thread_join", "task" }, { "exit", "task" },
        { "yield", NULL }, { "sleep", NULL },
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (!strcmp(name, known[i].name))
            return known[i].family;
    return "race";                /* a race point of the runtime or a case */
}

bool sim_events_race(const sim_event *a, const sim_event *b)
{
    const char *fa = family(a->name), *fb = family(b->name);
    if (!fa || !fb || strcmp(fa, fb) != 0)
        return false;
    return !strcmp(fa, "race") || a->arg == b->arg;
}
