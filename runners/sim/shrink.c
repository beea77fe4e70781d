/* shrink.c: a failing schedule cut down to the decisions that make it fail,
 * and those decisions told as the race (sim.h's sim_shrink).
 *
 * A failing schedule is a passing one everywhere but at its deviations. The
 * passing one (the base) is the default schedule when that passes: the task
 * at a point goes on; at a yield, a block or an end, the next task after it
 * in id order; a value choice takes the largest value. When the default
 * fails too (the program fails without any particular interleaving of that
 * kind), the base is the first of a few seeded random schedules that passes,
 * as it ran, and the default wherever it made no choice. Delta debugging
 * (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing Input",
 * TSE 2002) over the deviations from the base finds a 1-minimal set that
 * still fails: taking away any one of what is left makes the run pass, so
 * each is a decision the failure turns on. sim_shrink says, for each, where
 * it was made (the task at the point, the point), what the base would have
 * run, what ran instead and what that task did next, and the stack of the
 * task at the point (backtrace(3) inside the decision, which runs on that
 * task's fiber).
 *
 * A decision is named by the task at its point and that task's own step count
 * there, not by its number in the run: taking one deviation away changes how
 * many decisions come before the next, not where in its own task's run it is.
 */
#include "sim_private.h"
#include "log.h"
#include "sched.h"
#include "strategy.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_TRIES 64             /* random schedules tried for a passing base */

static struct guided *active;    /* the shrink under way: what a child's run sends back */

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

static int by_name(const void *a, const void *b)
{
    const sim_choice *x = a, *y = b;
    if (x->task != y->task)
        return x->task < y->task ? -1 : 1;
    if (x->task_step != y->task_step)
        return x->task_step < y->task_step ? -1 : 1;
    return (int)x->value - (int)y->value;
}

/* ---- the guided strategy ----
 * follow:  the log's decisions by number (the recorded run exactly), learning
 *          each one's task step;
 * record:  seeded uniform choices, each kept (a base candidate);
 * guided:  a kept deviation where one is named, else the base, else the default. */

enum mode { FOLLOW, RECORD, GUIDED };

typedef struct guided {
    sim_strategy base;
    enum mode mode;
    sim_choice *keep;             /* FOLLOW: by index; GUIDED: by name */
    size_t n_keep, at;
    sim_choice *passing;          /* the base, sorted by name; NULL: the default */
    size_t n_passing;
    sim_choice *rec;              /* RECORD */
    size_t n_rec, cap_rec;
    sim_rng rng;
    bool trace;                   /* record the critical decisions (the last run) */
    uint64_t (*mark)(void);
    sim_critical *critical;       /* one per kept deviation */
} guided;

static const sim_choice *find(const sim_choice *set, size_t n, int task, uint64_t step, bool value)
{
    sim_choice key = { .task = task, .task_step = step, .value = value };
    return n ? bsearch(&key, set, n, sizeof *set, by_name) : NULL;
}

/* What the base runs at a task decision: the passing schedule's choice there
 * when it made one and that task can run, else the default's. */
static int base_task(const guided *g, int task, uint64_t step, int kind, bool goes_on,
                     const int *enabled, int n)
{
    const sim_choice *b = find(g->passing, g->n_passing, task, step, false);
    return b && in(enabled, n, (int)b->chose) ? (int)b->chose
                                              : default_task(task, kind, goes_on, enabled, n);
}

static uint64_t base_value(const guided *g, int task, uint64_t step, uint64_t range)
{
    const sim_choice *b = find(g->passing, g->n_passing, task, step, true);
    return b && b->chose < range ? b->chose : range - 1;
}

static sim_choice *kept(guided *g, const sim_decision_ctx *d, bool value)
{
    if (g->mode == FOLLOW) {
        while (g->at < g->n_keep && g->keep[g->at].index < d->index)
            g->at++;
        if (g->at == g->n_keep || g->keep[g->at].index != d->index)
            return NULL;
        g->keep[g->at].task_step = d->task_step;
        return &g->keep[g->at];
    }
    if (g->mode == GUIDED)
        for (size_t i = 0; i < g->n_keep; i++)
            if (g->keep[i].task == d->task && g->keep[i].task_step == d->task_step &&
                g->keep[i].value == value)
                return &g->keep[i];
    return NULL;
}

static void record(guided *g, const sim_decision_ctx *d, bool value, uint64_t chose)
{
    if (g->n_rec == g->cap_rec) {
        g->cap_rec = g->cap_rec ? 2 * g->cap_rec : 256;
        g->rec = realloc(g->rec, g->cap_rec * sizeof *g->rec);
        if (!g->rec)
            abort();
    }
    g->rec[g->n_rec++] = (sim_choice){ d->index, chose, value, d->task, d->task_step };
}

static void g_begin(sim_strategy *s, uint64_t seed)
{
    (void)seed;
    guided *g = (guided *)s;
    g->at = 0;
    g->n_rec = 0;
}

static void trace(guided *g, const sim_choice *c, sim_critical k)
{
    if (!g->trace || !c)
        return;
    sim_critical *out = &g->critical[c - g->keep];
    *out = k;
    out->mark = g->mark ? g->mark() : 0;
    out->frames = backtrace(out->stack, SIM_STACK_FRAMES);
}

static int g_pick(sim_strategy *s, const sim_decision_ctx *d)
{
    guided *g = (guided *)s;
    int dflt = base_task(g, d->task, d->task_step, d->kind, d->current >= 0, d->enabled, d->n);
    int want = dflt;
    const sim_choice *c = kept(g, d, false);
    if (c && in(d->enabled, d->n, (int)c->chose))
        want = (int)c->chose;
    if (g->mode == RECORD)
        want = d->enabled[sim_rng_below(&g->rng, (uint64_t)d->n)];
    int chosen = 0;
    while (d->enabled[chosen] != want)
        chosen++;
    if (g->mode == RECORD)
        record(g, d, false, (uint64_t)want);
    trace(g, c, (sim_critical){ .index = d->index, .step = d->step, .point = d->point,
                                .arg = d->arg, .task = d->task, .default_task = dflt,
                                .chose = want, .chose_next = d->events[chosen].name,
                                .chose_next_arg = d->events[chosen].arg });
    return chosen;
}

static uint64_t g_pick_value(sim_strategy *s, const sim_decision_ctx *d, uint64_t n)
{
    guided *g = (guided *)s;
    uint64_t dflt = base_value(g, d->task, d->task_step, n), v = dflt;
    const sim_choice *c = kept(g, d, true);
    if (c && c->chose < n)
        v = c->chose;
    if (g->mode == RECORD) {
        v = sim_rng_below(&g->rng, n);
        record(g, d, true, v);
    }
    trace(g, c, (sim_critical){ .index = d->index, .step = d->step, .point = d->point,
                                .task = d->task, .value = true, .default_value = dflt,
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

static bool try_keep(shrinking *sh, enum mode mode, sim_choice *keep, size_t n)
{
    sh->g->mode = mode;
    sh->g->keep = keep;
    sh->g->n_keep = n;
    sh->tests++;
    return sh->fails(sh->ctx);
}

static bool try_set(shrinking *sh, sim_choice *keep, size_t n)
{
    return try_keep(sh, GUIDED, keep, n);
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
            if (try_set(sh, part, hi - lo)) {
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
            if (try_set(sh, part, m)) {
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

/* The recorded run's decisions (all[i] is decision i, its task step learned)
 * that the base would not have made, into out; how many. */
static size_t deviations(const sim_log *log, const sim_choice *all, const guided *g,
                         sim_choice *out)
{
    size_t k = 0;
    for (size_t i = 0; i < log->n; i++) {
        const sim_decision *d = &log->d[i];
        uint64_t base;
        if (d->kind == SIM_DECISION_VALUE) {
            base = base_value(g, d->task, all[i].task_step, d->n);
        } else {
            const int *en = log->ids + d->off;
            bool goes_on = d->point_kind != SIM_POINT_BLOCKED && in(en, (int)d->n, d->task);
            base = (uint64_t)base_task(g, d->task, all[i].task_step, d->point_kind, goes_on, en,
                                       (int)d->n);
        }
        if (d->chose != base)
            out[k++] = all[i];
    }
    return k;
}

/* A passing schedule to measure the failure against: the default when it
 * passes, else the first seeded random schedule that does (as recorded). */
static void find_base(shrinking *sh, sim_shrunk *out)
{
    guided *g = sh->g;
    out->base_seed = -1;
    if (!try_set(sh, NULL, 0))
        return;
    for (int k = 0; k < BASE_TRIES; k++) {
        g->rng.s = 0x5eed0000u + (uint64_t)k;
        out->base_tries++;
        if (!try_keep(sh, RECORD, NULL, 0)) {
            g->passing = g->rec;          /* the recording becomes the base */
            g->n_passing = g->n_rec;
            g->rec = NULL;
            g->cap_rec = 0;
            qsort(g->passing, g->n_passing, sizeof *g->passing, by_name);
            out->base_seed = k;
            return;
        }
    }
    out->no_base = true;
}

static int by_index(const void *a, const void *b)
{
    const sim_critical *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void release(guided *g, sim_choice *all, sim_choice *keep)
{
    sim_guide(NULL);
    active = NULL;
    free(g->passing);
    free(g->rec);
    free(g);
    free(all);
    free(keep);
}

int sim_shrink(const sim_schedule *s, bool (*fails)(void *ctx), void *ctx,
               uint64_t (*mark)(void), sim_shrunk *out, char *err, size_t n)
{
    *out = (sim_shrunk){ .base_seed = -1 };
    const sim_log *log = sim_schedule_log(s);
    sim_choice *all = calloc(log->n ? log->n : 1, sizeof *all);
    sim_choice *keep = calloc(log->n ? log->n : 1, sizeof *keep);
    guided *g = calloc(1, sizeof *g);
    if (!all || !keep || !g)
        abort();
    for (size_t i = 0; i < log->n; i++)
        all[i] = (sim_choice){ i, log->d[i].chose, log->d[i].kind == SIM_DECISION_VALUE,
                               log->d[i].task, 0 };
    g->base = (sim_strategy){ .name = "shrink", .begin = g_begin, .pick = g_pick,
                              .pick_value = g_pick_value, .end = g_end, .destroy = g_destroy };
    shrinking sh = { g, fails, ctx, 0 };
    sim_guide(&g->base);
    active = g;
    if (!try_keep(&sh, FOLLOW, all, log->n)) {
        snprintf(err, n, "the schedule's %zu decisions, followed as recorded, do not fail "
                 "again: the program is not the one recorded", log->n);
        release(g, all, keep);
        return -1;
    }
    find_base(&sh, out);
    size_t count = deviations(log, all, g, keep);
    out->before = count;
    /* The base passed in find_base and every deviation from it is the recorded
     * run, which failed: ddmin starts from there. No base: nothing to shrink. */
    size_t m = out->no_base ? 0 : ddmin(&sh, keep, count);
    /* Each one left: without it, does the run pass? (It must: 1-minimal.) */
    sim_choice *without = malloc((m ? m : 1) * sizeof *without);
    bool *needed = calloc(m ? m : 1, sizeof *needed);
    out->critical = calloc(m ? m : 1, sizeof *out->critical);
    if (!without || !needed || !out->critical)
        abort();
    for (size_t i = 0; i < m; i++) {
        size_t k = 0;
        for (size_t j = 0; j < m; j++)
            if (j != i)
                without[k++] = keep[j];
        needed[i] = !try_set(&sh, without, k);
    }
    free(without);
    /* The last run follows the minimal set, records its critical decisions, and
     * leaves its log for sim_schedule_write. */
    g->trace = true;
    g->mark = mark;
    g->critical = out->critical;
    bool still = try_set(&sh, keep, m);
    g->trace = false;
    for (size_t i = 0; i < m; i++)
        out->critical[i].needed = needed[i];
    qsort(out->critical, m, sizeof *out->critical, by_index);
    free(needed);
    release(g, all, keep);
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

/* ---- a try run in another process (the preloaded scheduler: one run each) ----
 * What a run writes into the guide, sent back as it was written: the task
 * steps FOLLOW learns, the choices RECORD makes, the decisions a traced run
 * tells (their names by value: a child's strings are not the parent's). */

static void put_string(FILE *f, const char *s)
{
    size_t n = s ? strlen(s) + 1 : 0;
    fwrite(&n, sizeof n, 1, f);
    fwrite(s ? s : "", 1, n, f);
}

static bool get_string(FILE *f, const char **out)
{
    size_t n;
    if (fread(&n, sizeof n, 1, f) != 1 || n > 4096)
        return false;
    char *s = n ? malloc(n) : NULL;   /* kept: the explanation's names, until the process ends */
    if (n && (!s || fread(s, 1, n, f) != n || s[n - 1] != '\0')) {
        free(s);
        return false;
    }
    *out = s;
    return true;
}

void sim_shrink_send(FILE *f)
{
    guided *g = active;
    if (!g)
        return;
    if (g->mode == FOLLOW)
        for (size_t i = 0; i < g->n_keep; i++)
            fwrite(&g->keep[i].task_step, sizeof g->keep[i].task_step, 1, f);
    if (g->mode == RECORD) {
        fwrite(&g->n_rec, sizeof g->n_rec, 1, f);
        fwrite(g->rec, sizeof *g->rec, g->n_rec, f);
    }
    if (g->trace)
        for (size_t i = 0; i < g->n_keep; i++) {
            fwrite(&g->critical[i], sizeof g->critical[i], 1, f);
            put_string(f, g->critical[i].point);
            put_string(f, g->critical[i].chose_next);
        }
}

bool sim_shrink_receive(FILE *f)
{
    guided *g = active;
    if (!g)
        return false;
    if (g->mode == FOLLOW)
        for (size_t i = 0; i < g->n_keep; i++)
            if (fread(&g->keep[i].task_step, sizeof g->keep[i].task_step, 1, f) != 1)
                return false;
    if (g->mode == RECORD) {
        size_t n;
        if (fread(&n, sizeof n, 1, f) != 1 || n > (size_t)1 << 24)
            return false;
        free(g->rec);
        g->rec = malloc((n ? n : 1) * sizeof *g->rec);
        if (!g->rec)
            abort();
        g->n_rec = g->cap_rec = n;
        if (fread(g->rec, sizeof *g->rec, n, f) != n)
            return false;
    }
    if (g->trace)
        for (size_t i = 0; i < g->n_keep; i++)
            if (fread(&g->critical[i], sizeof g->critical[i], 1, f) != 1 ||
                !get_string(f, &g->critical[i].point) ||
                !get_string(f, &g->critical[i].chose_next))
                return false;
    return true;
}

/* ---- the shrunk schedule told, as JSON members ----
 * Stacks as module and offset: a reader symbolizes them (addr2line), so the
 * program needs no symbol tables of its own. */

static void write_frame(FILE *f, void *pc, bool first)
{
    Dl_info info;
    fprintf(f, "%s{\"pc\": \"%p\"", first ? "" : ", ", pc);
    if (dladdr(pc, &info) && info.dli_fname) {
        fprintf(f, ", \"module\": ");
        sim_json_string(f, info.dli_fname);
        fprintf(f, ", \"offset\": \"0x%lx\"",
                (unsigned long)((char *)pc - (char *)info.dli_fbase));
        if (info.dli_sname) {
            fprintf(f, ", \"symbol\": ");
            sim_json_string(f, info.dli_sname);
        }
    }
    fputc('}', f);
}

void sim_shrunk_json(FILE *f, const sim_shrunk *s)
{
    fprintf(f, "  \"deviations\": %zu,\n  \"critical_count\": %zu,\n  \"runs\": %zu,\n"
            "  \"base_seed\": %d,\n  \"base_tries\": %zu,\n  \"no_base\": %s,\n"
            "  \"critical\": [", s->before, s->after, s->tests, s->base_seed, s->base_tries,
            s->no_base ? "true" : "false");
    for (size_t i = 0; i < s->after; i++) {
        const sim_critical *k = &s->critical[i];
        fprintf(f, "%s\n    {\"decision\": %llu, \"step\": %llu, \"point\": ", i ? "," : "",
                (unsigned long long)k->index, (unsigned long long)k->step);
        sim_json_string(f, k->point);
        fprintf(f, ", \"arg\": %ld, \"task\": %d, \"needed\": %s, \"race_events_before\": %llu, ",
                k->arg, k->task, k->needed ? "true" : "false", (unsigned long long)k->mark);
        if (k->value) {
            fprintf(f, "\"value\": true, \"default_value\": %llu, \"chose_value\": %llu",
                    (unsigned long long)k->default_value, (unsigned long long)k->chose_value);
        } else {
            fprintf(f, "\"value\": false, \"default_task\": %d, \"chose\": %d, \"chose_next\": ",
                    k->default_task, k->chose);
            sim_json_string(f, k->chose_next);
            fprintf(f, ", \"chose_next_arg\": %ld", k->chose_next_arg);
        }
        fprintf(f, ",\n     \"stack\": [");
        for (int j = 0; j < k->frames; j++)
            write_frame(f, k->stack[j], j == 0);
        fprintf(f, "]}");
    }
    fprintf(f, "\n  ]");
}
