/* strategy_replay.c: follows a recorded decision log.
 *
 * At each decision it takes the recorded choice when the decision matches the
 * record (same kind, point, task and candidates); the first mismatch, a run
 * that needs more decisions than were recorded, or one that ends with some
 * unused, is the divergence: where the run left its schedule. From there on it
 * picks the task that may go on (or the lowest id), and the largest value, so
 * a diverged replay still ends; it is not a reproduction.
 */
#include "strategy.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    sim_strategy base;
    const sim_log *rec;
    size_t at;
    bool diverged;
    char where[320];
} replay;

static void begin(sim_strategy *st, uint64_t seed)
{
    replay *r = (replay *)st;
    r->at = 0;
    r->diverged = false;
    r->where[0] = '\0';
}

/* Decisions are numbered from 0, as the schedule file's "decisions" list (and
 * dfs's messages) number them. */
static void diverge(replay *r, size_t index, const sim_decision_ctx *d, const char *why)
{
    if (r->diverged)
        return;
    r->diverged = true;
    snprintf(r->where, sizeof r->where, "left its schedule at decision %zu (step %llu, task %d "
             "at '%s'): %s", index, (unsigned long long)d->step, d->task, d->point, why);
}

/* The recorded decision at this index, when it matches d; else NULL. */
static const sim_decision *expect(replay *r, const sim_decision_ctx *d, sim_decision_kind kind)
{
    if (r->diverged)
        return NULL;
    size_t index = r->at;
    if (index >= r->rec->n) {
        diverge(r, index, d, "the recorded schedule has no more decisions");
        return NULL;
    }
    const sim_decision *e = &r->rec->d[r->at++];
    char why[160];
    if (e->kind != kind)
        snprintf(why, sizeof why, "recorded a %s choice here", kind == SIM_DECISION_TASK ? "value" : "task");
    else if (e->task != d->task || !e->point || strcmp(e->point, d->point) != 0)
        snprintf(why, sizeof why, "recorded task %d at '%s'", e->task, e->point ? e->point : "?");
    else if (kind == SIM_DECISION_TASK &&
             (e->n != (uint32_t)d->n ||
              memcmp(r->rec->ids + e->off, d->enabled, (size_t)d->n * sizeof *d->enabled) != 0))
        snprintf(why, sizeof why, "recorded other runnable tasks (%u then, %d now)", e->n, d->n);
    else
        return e;
    diverge(r, index, d, why);
    return NULL;
}

static int pick(sim_strategy *st, const sim_decision_ctx *d)
{
    replay *r = (replay *)st;
    const sim_decision *e = expect(r, d, SIM_DECISION_TASK);
    for (int i = 0; e && i < d->n; i++)
        if ((uint64_t)d->enabled[i] == e->chose)
            return i;
    for (int i = 0; i < d->n; i++)
        if (d->enabled[i] == d->current)
            return i;
    return 0;
}

static uint64_t pick_value(sim_strategy *st, const sim_decision_ctx *d, uint64_t n)
{
    replay *r = (replay *)st;
    const sim_decision *e = expect(r, d, SIM_DECISION_VALUE);
    if (e && e->n == n && e->chose < n)
        return e->chose;
    if (e)
        diverge(r, r->at - 1, d, "recorded another value range");
    return n - 1;
}

static void end(sim_strategy *st, const sim_run_result *res)
{
    replay *r = (replay *)st;
    if (!r->diverged && r->at < r->rec->n) {
        r->diverged = true;
        snprintf(r->where, sizeof r->where, "left its schedule at its end: the run ended after "
                 "%zu of %zu recorded decisions", r->at, r->rec->n);
    }
    if (!r->diverged && (res->steps != r->rec->steps || (int)res->status != r->rec->status)) {
        r->diverged = true;
        snprintf(r->where, sizeof r->where, "left its schedule at its end: %llu steps and %s, "
                 "recorded %llu steps and %s", (unsigned long long)res->steps,
                 sim_status_names[res->status], (unsigned long long)r->rec->steps,
                 r->rec->status >= 0 && r->rec->status < SIM_STATUS_COUNT
                     ? sim_status_names[r->rec->status] : "?");
    }
}

static void destroy(sim_strategy *st) { free(st); }

static const char *divergence(const sim_strategy *s) { return ((const replay *)s)->where; }

sim_strategy *sim_replay_new(const sim_log *log)
{
    replay *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->base = (sim_strategy){ .name = "replay", .begin = begin, .pick = pick,
                              .pick_value = pick_value, .end = end, .destroy = destroy,
                              .divergence = divergence };
    r->rec = log;
    return &r->base;
}


