/* shrink.c: a failing schedule cut down to the decisions that make it fail,
 * and those decisions told as the race (sim.h's sim_shrink).
 *
 * A schedule is the default everywhere (the task at a point goes on; at a
 * yield, a block or an end, the next task after it in id order; a value
 * choice takes the largest value) but at its deviations. Delta debugging
 * (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing Input",
 * TSE 2002) over the deviations finds a 1-minimal set that still fails: the
 * run follows the kept deviations (each named by its task and that task's own
 * step count), the default elsewhere.
 * Taking away any one of what is left makes the run pass, so each is a
 * decision the failure turns on: sim_shrink says, for each, where it was made
 * (the task at the point, the point), what the default would have run, what
 * ran instead and what that task did next, and the stack of the task at the
 * point (backtrace(3) inside the decision, which runs on that task's fiber).
 */
#include "sim_private.h"
#include "log.h"
#include "sched.h"
#include "strategy.h"

#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the default, and a log's deviations from it ---- */

static int default_task(int task, int kind, bool task_can_go_on, const int *enabled, int n)
{
    if (kind == SIM_POINT_PLAIN && task_can_go_on)
        return task;
    for (int i = 0; i < n; i++)   /* the next after the task at the point, in id order */
        if (enabled[i] > task)
            return enabled[i];
    return enabled[0];
}

static bool in(const int *ids, int n, int id)
{
    for (int i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

size_t sim_deviations(const sim_log *log, sim_choice *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < log->n; i++) {
        const sim_decision *d = &log->d[i];
        bool deviates;
        if (d->kind == SIM_DECISION_VALUE) {
            deviates = d->chose != (uint64_t)d->n - 1;
        } else {
            const int *en = log->ids + d->off;
            bool goes_on = d->point_kind != SIM_POINT_BLOCKED && in(en, (int)d->n, d->task);
            deviates = (int)d->chose != default_task(d->task, d->point_kind, goes_on, en, (int)d->n);
        }
        if (deviates) {
            if (k < cap)
                out[k] = (sim_choice){ i, d->chose, d->kind == SIM_DECISION_VALUE, d->task, 0 };
            k++;
        }
    }
    return k;
}

/* ---- the guided strategy: the kept deviations, the default elsewhere ----
 * A deviation is named by the task at its point and that task's own step
 * count there, not by its number in the run: taking another deviation away
 * changes how many decisions come before, not where in its own task's run
 * this one is. The first run (by_index) follows the log's numbering, which
 * is the recorded run exactly, and learns each deviation's task step. */

typedef struct {
    sim_strategy base;
    sim_choice *keep;
    size_t n_keep, at;
    bool by_index;
    bool trace;                   /* record the critical decisions (the last run) */
    sim_critical *critical;       /* one per kept deviation */
} guided;

static sim_choice *kept(guided *g, const sim_decision_ctx *d, bool value)
{
    if (g->by_index) {
        while (g->at < g->n_keep && g->keep[g->at].index < d->index)
            g->at++;
        if (g->at == g->n_keep || g->keep[g->at].index != d->index)
            return NULL;
        g->keep[g->at].task_step = d->task_step;
        return &g->keep[g->at];
    }
    for (size_t i = 0; i < g->n_keep; i++)
        if (g->keep[i].task == d->task && g->keep[i].task_step == d->task_step &&
            g->keep[i].value == value)
            return &g->keep[i];
    return NULL;
}

static void g_begin(sim_strategy *s, uint64_t seed)
{
    (void)seed;
    ((guided *)s)->at = 0;
}

static void trace(guided *g, const sim_choice *c, sim_critical k)
{
    if (!g->trace || !c)
        return;
    sim_critical *out = &g->critical[c - g->keep];
    *out = k;
    out->frames = backtrace(out->stack, SIM_STACK_FRAMES);
}

static int g_pick(sim_strategy *s, const sim_decision_ctx *d)
{
    guided *g = (guided *)s;
    const sim_choice *c = kept(g, d, false);
    int want = default_task(d->task, d->kind, d->current >= 0, d->enabled, d->n), dflt = want;
    if (c && in(d->enabled, d->n, (int)c->chose))
        want = (int)c->chose;
    int chosen = 0;
    while (d->enabled[chosen] != want)
        chosen++;
    trace(g, c, (sim_critical){ .index = d->index, .step = d->step, .point = d->point,
                                .arg = d->arg, .task = d->task, .default_task = dflt,
                                .chose = want, .chose_next = d->events[chosen].name,
                                .chose_next_arg = d->events[chosen].arg });
    return chosen;
}

static uint64_t g_pick_value(sim_strategy *s, const sim_decision_ctx *d, uint64_t n)
{
    guided *g = (guided *)s;
    const sim_choice *c = kept(g, d, true);
    uint64_t v = c && c->chose < n ? c->chose : n - 1;
    trace(g, c, (sim_critical){ .index = d->index, .step = d->step, .point = d->point,
                                .task = d->task, .value = true, .default_value = n - 1,
                                .chose_value = v });
    return v;
}

static void g_end(sim_strategy *s, const sim_run_result *r) { (void)s; (void)r; }
static void g_destroy(sim_strategy *s) { free(s); }

/* ---- delta debugging over the deviations ---- */

typedef struct {
    guided *g;
    bool (*fails)(void *ctx);
    void *ctx;
    size_t tests;
} shrinking;

static bool try_keep(shrinking *sh, sim_choice *keep, size_t n)
{
    sh->g->keep = keep;
    sh->g->n_keep = n;
    sh->tests++;
    return sh->fails(sh->ctx);
}

/* keep[0..n) fails; returns the size of a 1-minimal failing subset left in keep. */
static size_t ddmin(shrinking *sh, sim_choice *keep, size_t n)
{
    sim_choice *part = malloc((n ? n : 1) * sizeof *part);
    if (!part)
        abort();
    size_t chunks = 2;
    while (n >= 2) {
        bool reduced = false;
        size_t size = (n + chunks - 1) / chunks;
        for (size_t c = 0; c < chunks && !reduced; c++) {       /* a chunk alone */
            size_t lo = c * size, hi = lo + size < n ? lo + size : n;
            if (lo >= hi)
                continue;
            memcpy(part, keep + lo, (hi - lo) * sizeof *part);
            if (try_keep(sh, part, hi - lo)) {
                memcpy(keep, part, (hi - lo) * sizeof *part);
                n = hi - lo;
                chunks = 2;
                reduced = true;
            }
        }
        for (size_t c = 0; c < chunks && !reduced; c++) {       /* all but a chunk */
            size_t lo = c * size, hi = lo + size < n ? lo + size : n, m = 0;
            if (lo >= hi)
                continue;
            for (size_t i = 0; i < n; i++)
                if (i < lo || i >= hi)
                    part[m++] = keep[i];
            if (try_keep(sh, part, m)) {
                memcpy(keep, part, m * sizeof *part);
                n = m;
                chunks = chunks > 2 ? chunks - 1 : 2;
                reduced = true;
            }
        }
        if (!reduced) {
            if (chunks >= n)
                break;
            chunks = chunks * 2 < n ? chunks * 2 : n;
        }
    }
    free(part);
    return n;
}

static int by_index(const void *a, const void *b)
{
    const sim_critical *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

int sim_shrink(const sim_schedule *s, bool (*fails)(void *ctx), void *ctx, sim_shrunk *out,
               char *err, size_t n)
{
    *out = (sim_shrunk){ 0 };
    const sim_log *log = sim_schedule_log(s);
    size_t count = sim_deviations(log, NULL, 0);
    sim_choice *keep = calloc(count ? count : 1, sizeof *keep);
    guided *g = calloc(1, sizeof *g);
    if (!keep || !g) {
        snprintf(err, n, "out of memory");
        free(keep);
        free(g);
        return -1;
    }
    sim_deviations(log, keep, count);
    g->base = (sim_strategy){ "shrink", 0, g_begin, g_pick, g_pick_value, g_end, g_destroy };
    shrinking sh = { g, fails, ctx, 0 };
    sim_guide(&g->base);
    *out = (sim_shrunk){ .before = count };
    g->by_index = true;
    bool again = try_keep(&sh, keep, count);
    g->by_index = false;
    if (!again) {
        snprintf(err, n, "the schedule's %zu deviations from the default, followed as recorded, "
                 "do not fail again: the program is not the one recorded", count);
        sim_guide(NULL);
        free(keep);
        free(g);
        return -1;
    }
    size_t m = try_keep(&sh, keep, 0) ? 0 : ddmin(&sh, keep, count);
    /* Each one left: without it, does the run pass? (It must: 1-minimal.) */
    sim_choice *without = malloc((m ? m : 1) * sizeof *without);
    bool *needed = calloc(m ? m : 1, sizeof *needed);
    if (!without || !needed)
        abort();
    for (size_t i = 0; i < m; i++) {
        size_t k = 0;
        for (size_t j = 0; j < m; j++)
            if (j != i)
                without[k++] = keep[j];
        needed[i] = !try_keep(&sh, without, k);
    }
    free(without);
    /* The last run follows the minimal set, records its critical decisions, and
     * leaves its log for sim_schedule_write. */
    out->critical = calloc(m ? m : 1, sizeof *out->critical);
    if (!out->critical)
        abort();
    g->trace = true;
    g->critical = out->critical;
    bool still = try_keep(&sh, keep, m);
    g->trace = false;
    sim_guide(NULL);
    for (size_t i = 0; i < m; i++)
        out->critical[i].needed = needed[i];
    qsort(out->critical, m, sizeof *out->critical, by_index);
    free(needed);
    free(keep);
    free(g);
    out->after = m;
    out->tests = sh.tests;
    if (!still) {
        snprintf(err, n, "the shrunk schedule passed when run again: the program is not "
                 "deterministic under its schedule");
        return -1;
    }
    return 0;
}

void sim_shrunk_free(sim_shrunk *s)
{
    free(s->critical);
    s->critical = NULL;
}
