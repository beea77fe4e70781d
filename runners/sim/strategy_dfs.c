/* strategy_dfs.c: every schedule within a bound, depth first. Two bounds:
 *
 *   dfs    at most P preemptions (Musuvathi and Qadeer, "Iterative context
 *          bounding", PLDI 2007, as in CHESS)
 *   delay  at most P delays (Emmi, Qadeer and Rakamaric, "Delay-bounded
 *          scheduling", POPL 2011): the default is a round-robin scheduler
 *          that runs a task until it blocks or yields, and taking the k-th
 *          other candidate instead costs k. Blocking points are not free, so
 *          the number of schedules is polynomial in their length, where
 *          CHESS's free choices at every loop wait make it exponential.
 *
 * The default is not purely non-preemptive: a task that ran QUANTUM steps
 * while others could run is switched out (round-robin) by default, as an OS
 * time slice would, so a loop that always has work (one worker ping-ponging
 * posts with itself) cannot starve main forever at bound 0. Staying on it
 * is then the deviation.
 *
 * Stateless search: each run replays the prefix of the previous one up to its
 * deepest decision that has an untried option within the bound, takes that
 * option, then the default at every later decision. For dfs, switching away
 * from a task that could go on is a preemption, except at a yield (where the
 * default is to switch: a spinner lets others run), and any pick is free when
 * the task at the point blocked or ended. Value choices (read sizes) are
 * not branched: they take the largest value. Exhausted means every schedule
 * within the bound ran. A prefix that does not come back the same (another
 * set of runnable tasks at a replayed decision) means the program is not
 * deterministic under its schedule; the search goes on from there and says so.
 */
#include "strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUANTUM 64
enum { KIND_SLICE_OVER = 3 };     /* a plain point where the time slice ran out */

typedef struct {
    uint32_t off, n;              /* the candidates: ids[off .. off+n) */
    int32_t current;              /* the task that may go on, or -1 */
    int32_t task;                 /* the task at the point */
    uint8_t kind;                 /* the point's kind, as recorded */
    uint8_t eff;                  /* the kind the options follow (or KIND_SLICE_OVER) */
    int option;                   /* the one this schedule takes */
    int pre_before;               /* preemptions before this decision */
} frame;

typedef struct {
    sim_strategy base;
    int bound;
    bool delays;                  /* delay bounding, else preemption bounding */
    frame *f;
    size_t nf, capf;
    int *ids;
    size_t nids, capids;
    size_t depth;
    int preemptions;
    uint64_t slice_start;         /* the step the running task got the CPU */
    int last_task;                /* the task the last decision chose */
    uint64_t schedules;
    bool exhausted;
    char nondet[256];
} dfs;

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    if (!(p = realloc(p, c * size)))
        abort();
    *cap = c;
    return p;
}

static int current_index(const frame *fr, const int *en)
{
    for (uint32_t i = 0; i < fr->n; i++)
        if (en[i] == fr->current)
            return (int)i;
    return -1;
}

/* The first candidate after id, in id order, cyclically. */
static uint32_t after(const frame *fr, const int *en, int id)
{
    for (uint32_t i = 0; i < fr->n; i++)
        if (en[i] > id)
            return i;
    return 0;
}

/* Option k of a frame. dfs: current first (last at a yield), the others by
 * id. delay: current first (last at a yield), then round-robin after the
 * task at the point. */
static int option_task(const dfs *s, const frame *fr, int k)
{
    const int *en = s->ids + fr->off;
    int c = fr->current >= 0 ? current_index(fr, en) : -1;
    if (c < 0)
        return s->delays ? en[(after(fr, en, fr->task) + (uint32_t)k) % fr->n] : en[k];
    if (fr->eff == SIM_POINT_YIELD || fr->eff == KIND_SLICE_OVER)
        return en[((uint32_t)c + 1 + (uint32_t)k) % fr->n];
    if (k == 0)
        return en[c];
    if (s->delays)
        return en[((uint32_t)c + (uint32_t)k) % fr->n];
    return en[k - 1 < c ? k - 1 : k];
}

static int cost(const dfs *s, const frame *fr, int k)
{
    if (s->delays)
        return k;
    if (fr->current < 0 || fr->eff == SIM_POINT_YIELD)
        return 0;
    return k > 0;             /* plain: other than current; slice over: other than the next */
}

static bool same(const dfs *s, const frame *fr, const sim_decision_ctx *d)
{
    if (fr->n != (uint32_t)d->n || fr->current != d->current || fr->task != d->task ||
        fr->kind != (uint8_t)d->kind)
        return false;
    return memcmp(s->ids + fr->off, d->enabled, (size_t)d->n * sizeof *d->enabled) == 0;
}

static void begin(sim_strategy *st, uint64_t seed)
{
    dfs *s = (dfs *)st;
    s->depth = 0;
    s->preemptions = 0;
    s->slice_start = 0;
    s->last_task = 1;
    s->nondet[0] = '\0';
}

static int pick(sim_strategy *st, const sim_decision_ctx *d)
{
    dfs *s = (dfs *)st;
    frame *fr;
    if (d->task != s->last_task || d->current < 0)
        s->slice_start = d->step;   /* a switch no decision made, or the task blocked */
    uint8_t eff = (uint8_t)d->kind;
    if (d->kind == SIM_POINT_PLAIN && d->current >= 0 && d->step - s->slice_start >= QUANTUM)
        eff = KIND_SLICE_OVER;
    if (s->depth < s->nf && !same(s, &s->f[s->depth], d)) {
        snprintf(s->nondet, sizeof s->nondet, "decision %zu (step %llu, '%s') differs from the "
                 "schedule it replays: the program is not deterministic under its schedule",
                 s->depth, (unsigned long long)d->step, d->point);
        s->nids = s->f[s->depth].off;
        s->nf = s->depth;
    }
    if (s->depth < s->nf) {
        fr = &s->f[s->depth];
    } else {
        s->f = grow(s->f, &s->capf, s->nf + 1, sizeof *s->f);
        s->ids = grow(s->ids, &s->capids, s->nids + (size_t)d->n, sizeof *s->ids);
        memcpy(s->ids + s->nids, d->enabled, (size_t)d->n * sizeof *d->enabled);
        fr = &s->f[s->nf++];
        *fr = (frame){ .off = (uint32_t)s->nids, .n = (uint32_t)d->n, .current = d->current,
                       .task = d->task, .kind = (uint8_t)d->kind, .eff = eff, .option = 0,
                       .pre_before = s->preemptions };
        s->nids += (size_t)d->n;
    }
    s->preemptions += cost(s, fr, fr->option);
    s->depth++;
    int id = option_task(s, fr, fr->option);
    if (id != d->task)
        s->slice_start = d->step;
    s->last_task = id;
    for (int i = 0; i < d->n; i++)
        if (d->enabled[i] == id)
            return i;
    abort();
}

static uint64_t pick_value(sim_strategy *st, const sim_decision_ctx *d, uint64_t n) { return n - 1; }

static void end(sim_strategy *st, const sim_run_result *r)
{
    dfs *s = (dfs *)st;
    s->schedules++;
    if (s->depth < s->nf) {
        if (!s->nondet[0])
            snprintf(s->nondet, sizeof s->nondet, "the run ended after %zu of the %zu decisions "
                     "it replays: the program is not deterministic under its schedule",
                     s->depth, s->nf);
        s->nids = s->f[s->depth].off;
        s->nf = s->depth;
    }
    while (s->nf > 0) {
        frame *fr = &s->f[s->nf - 1];
        for (int k = fr->option + 1; k < (int)fr->n; k++)
            if (fr->pre_before + cost(s, fr, k) <= s->bound) {
                fr->option = k;
                return;
            }
        s->nf--;
        s->nids = fr->off;
    }
    s->exhausted = true;
}

static void destroy(sim_strategy *st)
{
    dfs *s = (dfs *)st;
    free(s->f);
    free(s->ids);
    free(s);
}

sim_strategy *sim_dfs_new(int bound, bool delays)
{
    if (bound < 0)
        return NULL;
    dfs *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base = (sim_strategy){ delays ? "delay" : "dfs", 0, begin, pick, pick_value, end, destroy };
    s->bound = bound;
    s->delays = delays;
    return &s->base;
}

void sim_dfs_save(const sim_strategy *st, FILE *f)
{
    const dfs *s = (const dfs *)st;
    fprintf(f, "dfs %s %d %llu %d %zu %zu\n", s->delays ? "delay" : "dfs", s->bound,
            (unsigned long long)s->schedules, s->exhausted, s->nf, s->nids);
    for (size_t i = 0; i < s->nf; i++) {
        const frame *fr = &s->f[i];
        fprintf(f, "frame %u %u %d %d %u %u %d %d\n", fr->off, fr->n, fr->current, fr->task,
                fr->kind, fr->eff, fr->option, fr->pre_before);
    }
    fputs("ids", f);
    for (size_t i = 0; i < s->nids; i++)
        fprintf(f, " %d", s->ids[i]);
    fputs("\n", f);
}

bool sim_dfs_restore(sim_strategy *st, FILE *f)
{
    dfs *s = (dfs *)st;
    char kind[8];
    int bound, exhausted;
    unsigned long long schedules;
    size_t nf, nids;
    if (fscanf(f, " dfs %7s %d %llu %d %zu %zu", kind, &bound, &schedules, &exhausted, &nf,
               &nids) != 6 || strcmp(kind, s->delays ? "delay" : "dfs") != 0 ||
        bound != s->bound || nf > (1u << 24) || nids > (1u << 28))
        return false;
    frame *frames = calloc(nf ? nf : 1, sizeof *frames);
    int *ids = calloc(nids ? nids : 1, sizeof *ids);
    bool ok = frames && ids;
    for (size_t i = 0; ok && i < nf; i++) {
        frame *fr = &frames[i];
        unsigned kind_, eff;
        ok = fscanf(f, " frame %u %u %d %d %u %u %d %d", &fr->off, &fr->n, &fr->current,
                    &fr->task, &kind_, &eff, &fr->option, &fr->pre_before) == 8 &&
             (size_t)fr->off + fr->n <= nids && fr->option >= 0 && (uint32_t)fr->option < fr->n;
        fr->kind = (uint8_t)kind_;
        fr->eff = (uint8_t)eff;
    }
    ok = ok && fscanf(f, " ids") == 0;
    for (size_t i = 0; ok && i < nids; i++)
        ok = fscanf(f, " %d", &ids[i]) == 1;
    if (!ok) {
        free(frames);
        free(ids);
        return false;
    }
    free(s->f);
    free(s->ids);
    s->f = frames;
    s->capf = nf ? nf : 1;
    s->nf = nf;
    s->ids = ids;
    s->capids = nids ? nids : 1;
    s->nids = nids;
    s->schedules = schedules;
    s->exhausted = exhausted != 0;
    return true;
}

bool sim_dfs_exhausted(const sim_strategy *s) { return ((const dfs *)s)->exhausted; }
uint64_t sim_dfs_schedules(const sim_strategy *s) { return ((const dfs *)s)->schedules; }
const char *sim_dfs_nondeterminism(const sim_strategy *s) { return ((const dfs *)s)->nondet; }
