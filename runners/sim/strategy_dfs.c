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
 *
 * dfs-sleep is dfs with sleep sets (Godefroid, 1996): after a subtree that
 * starts with task a is done, a sleeps in its siblings' subtrees until a step
 * that may touch what a's step touched runs (sched.h's footprints: mutexes,
 * conditions, loops, tasks, TCP, the race points, the clock). Running a there
 * would only reorder independent steps of a schedule already run. Unbounded
 * (bound -1), every schedule's equivalence class is run at least once. With a
 * preemption bound, reordering can change a schedule's cost (Coons, Musuvathi
 * and McKinley, OOPSLA 2013: the bound adds dependences), so a sleeps only
 * where a twin within the bound exists. Two cases:
 *  - a was the task that could go on at a plain point, preempted for b: the
 *    pruned s.b.w.a1.rest (w independent of a's step a1) has the twin
 *    s.a1.b.w.rest, whose switch to b after a1 costs at most the preemption
 *    s.b paid;
 *  - a's run from the decision, uninterrupted (a1 ... ak, as the first
 *    schedule of a's subtree ran it), ended in a block: a sleeps with the
 *    footprint of that whole run. Picked again, a runs some prefix a1 ... aj
 *    of it, each step independent of w, and then blocks or is preempted; the
 *    twin runs that prefix first and switches to b where a blocked (free) or
 *    where the pruned schedule preempted a (one for one).
 * In both, where the pruned schedule picked a the twin saves at least what
 * that pick cost. Not at yields, time-slice ends or where fairness holds a
 * task back: their costs and picks depend on what ran before.
 *
 * dpor is dfs-sleep where a new frame tries only its default; after each run
 * the race analysis (dpor.c) adds the tasks that reverse the run's races, and
 * a frame runs the ones it has not run (in option order, wherever they
 * stand), within the bound and awake. A frame where fairness narrows the
 * picks tries every task, as dfs does.
 *
 * Sharded (shard i of n; dfs, dfs-sleep and delay), a search runs only the
 * schedules of its part of the tree, so n processes on n machines run one
 * search between them. A schedule's part is named by the options its path took
 * at the decisions with a choice, up to its CUT_DEVIATIONS-th deviation (an
 * option other than the first its frame allowed; the cut): a hash of them, mod
 * n. Every shard runs the tree above the cut, and of each subtree below it that
 * is another shard's one schedule only (it finds the subtree's path and
 * footprints), which it counts as foreign. The subtrees, their sleep sets and
 * their order are the unsharded search's, so the shards' own schedules add up
 * to its count. Not dpor: its frames above the cut learn what to try from races
 * in every subtree.
 */
#include "dpor.h"
#include "strategy.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUANTUM 64
enum { CUT_DEVIATIONS = 2 };      /* a shard's part: the subtrees below this many */
enum { KIND_SLICE_OVER = 3 };     /* a plain point where the time slice ran out */

/* A task that sleeps, or an option already run at a frame: the footprint of its
 * first step, or of its whole run to a block (see the top). */
typedef struct {
    int task;
    bool bounded_ok;              /* it may sleep under a bound (see the top): its step
                                     ended in a block, or it was preempted at a plain point */
    sim_footprint fp;
} sleeper;

typedef struct {
    uint32_t off, n;              /* the candidates: ids[off .. off+n) */
    uint32_t sl_off, sl_n, ex_n;  /* pool[sl_off ..+sl_n): asleep here; then ex_n options run */
    bool dead;                    /* every option within the bound sleeps: no alternatives */
    sim_chunk got;                /* what the option taken ran until the next decision (set
                                     in every run before it is read: never saved) */
    sim_footprint run;            /* what the option's task ran from here, uninterrupted,
                                     in the first schedule that took the option */
    bool run_blocked;             /* ... and whether that run ended in a block */
    int32_t current;              /* the task that may go on, or -1 */
    int32_t task;                 /* the task at the point */
    uint8_t kind;                 /* the point's kind, as recorded */
    uint8_t eff;                  /* the kind the options follow (or KIND_SLICE_OVER) */
    uint64_t held_back;           /* tasks fairness keeps from running here (ids < 64) */
    int option;                   /* the one this schedule takes */
    int pre_before;               /* preemptions before this decision */
    uint64_t backtrack;           /* dpor: the tasks to try here */
} frame;

typedef struct {
    sim_strategy base;
    int bound;
    bool delays;                  /* delay bounding, else preemption bounding */
    bool sleep;                   /* sleep sets (dfs-sleep, dpor) */
    bool dpor;                    /* source-DPOR: only what races ask for */
    sim_dpor races;
    sim_dpor_event *ev;           /* dpor: this run's events */
    size_t nev, capev, ev_cut;    /* ... and how many the analysis reads (a dead run's
                                     end at its dead frame) */
    uint64_t *en;                 /* dpor: each frame's runnable tasks, for the analysis */
    size_t capen;
    bool *free_at;                /* dpor under a bound: a switch at the frame is free */
    size_t capfree;
    sleeper *pool;
    size_t npool, cappool;
    bool dead_run;                /* this run reached a frame where every option sleeps */
    uint64_t redundant;           /* runs that did */
    frame *f;
    size_t nf, capf;
    int *ids;
    size_t nids, capids;
    size_t depth;
    int preemptions;
    size_t fresh_from;            /* frames from here on take an option for the first time */
    long run_from;                /* the first frame of the chosen task's open run, or -1 */
    int run_task;
    uint64_t slice_start;         /* the step the running task got the CPU */
    int last_task;                /* the task the last decision chose */
    /* Fairness at idle waits (dfs): per task id below 64, the tasks that must
     * run before it may run again at a free decision, and since its last idle
     * wait, the tasks enabled at every decision and the tasks that ran. */
    uint64_t before[64], enabled_since[64], ran_since[64];
    uint64_t seen, en_all, ran_all; /* tasks seen this run; every decision's enabled ANDed, ran ORed */
    uint64_t schedules;
    int shard, shards;            /* this search runs part shard of shards (top); 0: all */
    uint64_t cut_hash;            /* this run: its options at choices so far, hashed */
    int cut_devs;                 /* ... how many of them were not the default */
    long cut_at;                  /* ... and the frame of its cut, or -1 */
    uint64_t foreign;             /* schedules run that are another shard's */
    bool last_foreign;            /* ... the last one was */
    bool exhausted;
    char nondet[256];
} dfs;

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

static bool same(const dfs *s, const frame *fr, const sim_decision_ctx *d, uint64_t held)
{
    if (fr->n != (uint32_t)d->n || fr->current != d->current || fr->task != d->task ||
        fr->kind != (uint8_t)d->kind || fr->held_back != held)
        return false;
    return memcmp(s->ids + fr->off, d->enabled, (size_t)d->n * sizeof *d->enabled) == 0;
}

/* Sleepers may be held at this frame (see the top). Not at a yield, nor where
 * fairness holds a task back: fairness forbids a pick there, so a pruned
 * schedule's twin could be one the search never runs. */
static bool sleepy(const dfs *s, const frame *fr)
{
    if (!s->sleep || (fr->eff == SIM_POINT_YIELD && fr->current >= 0) || fr->held_back)
        return false;
    return s->bound == INT_MAX || (!s->delays && fr->eff != KIND_SLICE_OVER);
}

/* dpor: the frame has run task's option (its explored sleepers, the pool
 * after those asleep there). */
static bool tried(const dfs *s, const frame *fr, int task)
{
    for (uint32_t i = fr->sl_n; i < fr->sl_n + fr->ex_n; i++)
        if (s->pool[fr->sl_off + i].task == task)
            return true;
    return false;
}

static bool asleep(const dfs *s, const frame *fr, int task)
{
    for (uint32_t i = 0; i < fr->sl_n; i++)
        if (s->pool[fr->sl_off + i].task == task)
            return true;
    return false;
}

/* e stays asleep across what ran (it did not run, nothing it touched was touched). */
static bool stays_asleep(const sleeper *e, const sim_chunk *c)
{
    if (c->ran_many || e->task < 0 || e->task >= 64 || (c->ran >> e->task & 1))
        return false;
    return !sim_footprints_meet(&e->fp, &c->fp);
}

static void pool_push(dfs *s, sleeper e)
{
    s->pool = sim_grow(s->pool, &s->cappool, s->npool + 1, sizeof *s->pool);
    s->pool[s->npool++] = e;
}

/* The chosen task's uninterrupted run, open since frame run_from, ended after
 * frame last: each of its frames gets the footprint of the run from there on. */
static void close_run(dfs *s, size_t last, bool blocked)
{
    if (s->run_from < 0)
        return;
    sim_footprint acc = { { 0 }, false };
    for (size_t j = last + 1; j-- > (size_t)s->run_from;) {
        const sim_footprint *g = &s->f[j].got.fp;
        for (int b = 0; b < 4; b++)
            acc.bits[b] |= g->bits[b];
        acc.all |= g->all;
        s->f[j].run = acc;
        s->f[j].run_blocked = blocked;
    }
    s->run_from = -1;
}

/* The new frame's sleep set (at the pool's end): the parent's sleepers and
 * the options it already ran that stay asleep across what its option ran. */
static void inherit_sleep(dfs *s, frame *fr, const frame *parent)
{
    fr->sl_off = (uint32_t)s->npool;
    fr->sl_n = fr->ex_n = 0;
    if (!parent || !sleepy(s, fr) || !sleepy(s, parent))
        return;
    uint32_t end = parent->sl_off + parent->sl_n + parent->ex_n;
    for (uint32_t i = parent->sl_off; i < end; i++) {
        sleeper e = s->pool[i];
        bool explored = i >= parent->sl_off + parent->sl_n;
        if (explored && !e.bounded_ok && s->bound != INT_MAX)
            continue;
        if (stays_asleep(&e, &parent->got)) {
            pool_push(s, e);
            fr->sl_n++;
        }
    }
}

/* Cuts the search back to its first depth frames. */
static void truncate_to(dfs *s, size_t depth)
{
    if (depth >= s->nf)
        return;
    s->nids = s->f[depth].off;
    s->npool = s->f[depth].sl_off;
    s->nf = depth;
}

/* dfs: a task that yields does not run again before another runnable one has
 * (CHESS's fairness, Musuvathi and Qadeer, PLDI 2008). Staying is free at a
 * yield, so without it every spin could go round once more for nothing: the
 * schedules grow without end and no bound is ever exhausted. delay charges
 * for staying instead. */
static bool unfair(const dfs *s, const frame *fr, int k)
{
    return !s->delays && fr->eff == SIM_POINT_YIELD && option_task(s, fr, k) == fr->current;
}

/* dfs: fairness at idle waits (CHESS's priority rule, Musuvathi and Qadeer,
 * PLDI 2008, with a loop's wait counted as a yield: an event loop that waits
 * for work is where its thread gives the CPU up). When task t goes idle, the
 * tasks that were enabled at every decision since t last went idle, and never
 * ran in that time, must run before t does again at a free decision. Without
 * it two workers that wake each other (a producer and its worker) take every
 * free decision between them while main, runnable, never runs: the schedules
 * grow without end and no bound is exhausted. A plain point never forces a
 * switch: the rule only narrows the free picks. Returns the tasks held back. */
static uint64_t fairness(dfs *s, const sim_decision_ctx *d)
{
    uint64_t en = 0, ran = d->since->ran;
    for (int i = 0; i < d->n; i++)
        if (d->enabled[i] < 64)
            en |= 1ull << d->enabled[i];
    /* Only the tasks seen so far (the loop ran over all 64 at every decision:
     * 15 % of early_writer_drop's dpor search); one seen now starts from what
     * every decision before would have left it. */
    for (uint64_t m = (en | ran) & ~s->seen; m; m &= m - 1) {
        int t = __builtin_ctzll(m);
        s->before[t] = 0;
        s->enabled_since[t] = s->en_all;
        s->ran_since[t] = s->ran_all;
    }
    s->seen |= en | ran;
    s->en_all &= en;
    s->ran_all |= ran;
    for (uint64_t m = s->seen; m; m &= m - 1) {
        int t = __builtin_ctzll(m);
        s->before[t] &= ~ran;
        s->enabled_since[t] &= en;
        s->ran_since[t] |= ran;
    }
    int t = d->task;
    if (d->idle && t >= 0 && t < 64) {
        s->before[t] |= s->enabled_since[t] & ~s->ran_since[t] & ~(1ull << t);
        s->enabled_since[t] = en;
        s->ran_since[t] = 0;
    }
    if (s->delays || d->current >= 0)
        return 0;
    uint64_t held = 0;
    for (int i = 0; i < d->n; i++)
        if (d->enabled[i] < 64 && (s->before[d->enabled[i]] & en))
            held |= 1ull << d->enabled[i];
    return held == en ? 0 : held;   /* a cycle cannot form (an edge goes when its
                                       task runs); if one did, hold none back */
}

static bool held_back(const frame *fr, int task)
{
    return task >= 0 && task < 64 && (fr->held_back >> task & 1);
}

static bool allowed(const dfs *s, const frame *fr, int k)
{
    int task = option_task(s, fr, k);
    return fr->pre_before + cost(s, fr, k) <= s->bound && !unfair(s, fr, k) &&
           !held_back(fr, task) && !asleep(s, fr, task);
}

/* dpor: the frame's runnable tasks as a mask; all ones if an id is 64 or more. */
static uint64_t runnable_mask(const dfs *s, const frame *fr)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < fr->n; i++) {
        int id = s->ids[fr->off + i];
        if (id < 0 || id >= 64)
            return ~0ull;
        m |= 1ull << id;
    }
    return m;
}

/* dpor: a frame where the analysis does not choose, every option is tried:
 * at a yield the analysis's reversal may be the pick fairness forbids (the
 * yielder), and a task id of 64 or more has no bit. */
static uint64_t first_backtrack(const dfs *s, const frame *fr)
{
    uint64_t all = runnable_mask(s, fr);
    if (all == ~0ull || (fr->eff == SIM_POINT_YIELD && fr->current >= 0))
        return all;
    return 1ull << option_task(s, fr, fr->option);
}

/* dpor: what ran since the decision at frame at (or the run's start, -1), as
 * events: its first segment the decision chose, the others ran alone. */
static void record(dfs *s, const sim_chunk *c, long at)
{
    s->ev = sim_grow(s->ev, &s->capev, s->nev + (size_t)c->nseg, sizeof *s->ev);
    for (int q = 0; q < c->nseg; q++)
        s->ev[s->nev++] = (sim_dpor_event){ c->seg[q].task, q == 0 ? at : -1, c->seg[q].fp };
}

/* dpor: the run's races ask each frame for the tasks that reverse them. */
static void analyse(dfs *s)
{
    s->en = sim_grow(s->en, &s->capen, 2 * s->nf, sizeof *s->en);
    uint64_t *bt = s->en + s->nf;
    for (size_t i = 0; i < s->nf; i++) {
        /* a task fairness holds back cannot be picked there: a reversal
         * that starts with it widens to every task that can */
        s->en[i] = runnable_mask(s, &s->f[i]);
        if (s->en[i] != ~0ull)
            s->en[i] &= ~s->f[i].held_back;
        bt[i] = s->f[i].backtrack;
    }
    size_t n = s->nev < s->ev_cut ? s->nev : s->ev_cut;
    s->free_at = sim_grow(s->free_at, &s->capfree, s->nf, sizeof *s->free_at);
    for (size_t i = 0; i < s->nf; i++)
        s->free_at[i] = s->f[i].current < 0 || s->f[i].eff == SIM_POINT_YIELD;
    if (!sim_dpor_races(&s->races, s->ev, n, s->bound != INT_MAX ? s->free_at : NULL, s->en, bt))
        for (size_t i = 0; i < s->nf; i++)
            bt[i] = s->en[i];
    for (size_t i = 0; i < s->nf; i++)
        s->f[i].backtrack = bt[i];
}

static void begin(sim_strategy *st, uint64_t seed)
{
    dfs *s = (dfs *)st;
    s->depth = 0;
    s->preemptions = 0;
    s->fresh_from = s->nf ? s->nf - 1 : 0;
    s->run_from = -1;
    s->slice_start = 0;
    s->last_task = 1;
    s->dead_run = false;
    s->nev = 0;
    s->ev_cut = SIZE_MAX;
    s->nondet[0] = '\0';
    s->seen = s->ran_all = 0;
    s->en_all = ~0ull;
    s->cut_hash = 0x736861726421ull;
    s->cut_devs = 0;
    s->cut_at = -1;
}

/* Sharded: the frame at depth is passed with its option; its part of the tree
 * is known at the cut (see the top). */
static void toward_cut(dfs *s, const frame *fr, size_t depth)
{
    if (s->shards < 2 || s->cut_at >= 0 || fr->dead)
        return;
    int first = -1, m = 0;          /* the options within the bound, and the default */
    for (int k = 0; k < (int)fr->n; k++)
        if (allowed(s, fr, k)) {
            first = first < 0 ? k : first;
            m++;
        }
    if (m < 2)
        return;
    s->cut_hash = (s->cut_hash ^ (uint64_t)fr->option ^ (uint64_t)depth << 8) * 0x100000001b3ull;
    if (fr->option != first && ++s->cut_devs == CUT_DEVIATIONS)
        s->cut_at = (long)depth;
}

static bool foreign_run(const dfs *s)
{
    if (s->shards < 2)
        return false;
    uint64_t h = s->cut_hash;     /* mixed: the low bits of the hash alone take few values */
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return (h ^ (h >> 31)) % (uint64_t)s->shards != (uint64_t)s->shard;
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
    uint64_t held = fairness(s, d);
    if (s->depth < s->nf && !same(s, &s->f[s->depth], d, held)) {
        snprintf(s->nondet, sizeof s->nondet, "decision %zu (step %llu, '%s') differs from the "
                 "schedule it replays: the program is not deterministic under its schedule",
                 s->depth, (unsigned long long)d->step, d->point);
        truncate_to(s, s->depth);
        if (s->fresh_from > s->depth)
            s->fresh_from = s->depth;
    }
    if (s->depth > 0)
        s->f[s->depth - 1].got = *d->since;
    if (s->dpor)
        record(s, d->since, (long)s->depth - 1);
    if (s->depth < s->nf) {
        fr = &s->f[s->depth];
    } else {
        s->f = sim_grow(s->f, &s->capf, s->nf + 1, sizeof *s->f);
        s->ids = sim_grow(s->ids, &s->capids, s->nids + (size_t)d->n, sizeof *s->ids);
        memcpy(s->ids + s->nids, d->enabled, (size_t)d->n * sizeof *d->enabled);
        fr = &s->f[s->nf++];
        *fr = (frame){ .off = (uint32_t)s->nids, .n = (uint32_t)d->n, .current = d->current,
                       .task = d->task, .kind = (uint8_t)d->kind, .eff = eff,
                       .held_back = held, .option = 0, .pre_before = s->preemptions };
        s->nids += (size_t)d->n;
        inherit_sleep(s, fr, fr > s->f ? fr - 1 : NULL);
        while (fr->option < (int)fr->n && !allowed(s, fr, fr->option))
            fr->option++;
        if (fr->option == (int)fr->n || s->dead_run) {   /* a schedule already run, reordered */
            fr->option = 0;
            fr->dead = true;
            if (!s->dead_run)
                s->ev_cut = s->nev;
            s->dead_run = true;
        }
        if (s->dpor)
            fr->backtrack = first_backtrack(s, fr);
    }
    toward_cut(s, fr, s->depth);
    s->preemptions += cost(s, fr, fr->option);
    int id = option_task(s, fr, fr->option);
    if (s->run_from >= 0 && (s->f[s->depth - 1].got.first_blocked || id != s->run_task))
        close_run(s, s->depth - 1, s->f[s->depth - 1].got.first_blocked);
    if (s->sleep && s->run_from < 0 && s->depth >= s->fresh_from) {
        s->run_from = (long)s->depth;
        s->run_task = id;
    }
    s->depth++;
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
    s->redundant += s->dead_run;
    if (s->depth < s->nf) {
        if (!s->nondet[0])
            snprintf(s->nondet, sizeof s->nondet, "the run ended after %zu of the %zu decisions "
                     "it replays: the program is not deterministic under its schedule",
                     s->depth, s->nf);
        truncate_to(s, s->depth);
    }
    if (s->nf > 0) {
        s->f[s->nf - 1].got = r->tail;
        close_run(s, s->nf - 1, r->tail.first_blocked);
        if (s->dpor) {
            record(s, &r->tail, (long)s->nf - 1);
            analyse(s);
        }
    }
    s->last_foreign = foreign_run(s);
    if (s->last_foreign) {        /* one schedule of another shard's subtree is enough */
        s->foreign++;
        if (s->cut_at >= 0)
            truncate_to(s, (size_t)s->cut_at + 1);
    }
    while (s->nf > 0) {
        frame *fr = &s->f[s->nf - 1];
        if (!fr->dead) {
            if (s->sleep) {         /* the option sleeps in its siblings' subtrees (top) */
                bool preempted = fr->option == 0 && fr->current >= 0 &&
                                 fr->eff == SIM_POINT_PLAIN;
                bool whole_run = s->bound != INT_MAX && !preempted && fr->run_blocked;
                pool_push(s, (sleeper){ option_task(s, fr, fr->option),
                                        preempted || fr->run_blocked,
                                        whole_run ? fr->run : fr->got.fp });
                fr->ex_n++;
            }
            if (s->dpor) {
                for (int k = 0; k < (int)fr->n; k++) {
                    int task = option_task(s, fr, k);
                    if ((fr->backtrack >> task & 1) && !tried(s, fr, task) && allowed(s, fr, k)) {
                        fr->option = k;
                        return;
                    }
                }
            } else {
                for (int k = fr->option + 1; k < (int)fr->n; k++)
                    if (allowed(s, fr, k)) {
                        fr->option = k;
                        return;
                    }
            }
        }
        truncate_to(s, s->nf - 1);
    }
    s->exhausted = true;
}

static void destroy(sim_strategy *st)
{
    dfs *s = (dfs *)st;
    free(s->f);
    free(s->ids);
    free(s->pool);
    free(s->ev);
    free(s->en);
    free(s->free_at);
    sim_dpor_free(&s->races);
    free(s);
}

static const char *kind_name(const dfs *s)
{
    return s->delays ? "delay" : s->dpor ? "dpor" : s->sleep ? "dfs-sleep" : "dfs";
}


static void save_fp(FILE *f, const sim_footprint *fp)
{
    fprintf(f, " %llx %llx %llx %llx %d", (unsigned long long)fp->bits[0],
            (unsigned long long)fp->bits[1], (unsigned long long)fp->bits[2],
            (unsigned long long)fp->bits[3], fp->all);
}

static bool load_fp(FILE *f, sim_footprint *fp)
{
    unsigned long long b[4];
    int all;
    if (fscanf(f, " %llx %llx %llx %llx %d", &b[0], &b[1], &b[2], &b[3], &all) != 5)
        return false;
    *fp = (sim_footprint){ { b[0], b[1], b[2], b[3] }, all != 0 };
    return true;
}

static void save(const sim_strategy *st, FILE *f)
{
    const dfs *s = (const dfs *)st;
    fprintf(f, "dfs %s %d %llu %llu %d %zu %zu %zu shard %d %d %llu\n", kind_name(s), s->bound,
            (unsigned long long)s->schedules, (unsigned long long)s->redundant, s->exhausted,
            s->nf, s->nids, s->npool, s->shard, s->shards, (unsigned long long)s->foreign);
    for (size_t i = 0; i < s->nf; i++) {
        const frame *fr = &s->f[i];
        fprintf(f, "frame %u %u %d %d %u %u %d %d %u %u %u %llx %d %llx", fr->off, fr->n,
                fr->current, fr->task, fr->kind, fr->eff, fr->option, fr->pre_before, fr->sl_off,
                fr->sl_n, fr->ex_n, (unsigned long long)fr->held_back, fr->run_blocked,
                (unsigned long long)fr->backtrack);
        save_fp(f, &fr->run);
        fputs("\n", f);
    }
    fputs("ids", f);
    for (size_t i = 0; i < s->nids; i++)
        fprintf(f, " %d", s->ids[i]);
    fputs("\n", f);
    for (size_t i = 0; i < s->npool; i++) {
        fprintf(f, "sleeper %d %d", s->pool[i].task, s->pool[i].bounded_ok);
        save_fp(f, &s->pool[i].fp);
        fputs("\n", f);
    }
}

/* A frame as save wrote it: between runs no frame is dead (end pops them), and
 * what each option ran is recorded again before it is read. */
static bool load_frame(FILE *f, frame *fr, size_t nids, size_t npool)
{
    unsigned kind, eff;
    unsigned long long held, backtrack;
    int run_blocked;
    if (fscanf(f, " frame %u %u %d %d %u %u %d %d %u %u %u %llx %d %llx", &fr->off, &fr->n,
               &fr->current, &fr->task, &kind, &eff, &fr->option, &fr->pre_before, &fr->sl_off,
               &fr->sl_n, &fr->ex_n, &held, &run_blocked, &backtrack) != 14 ||
        !load_fp(f, &fr->run))
        return false;
    fr->backtrack = backtrack;
    fr->run_blocked = run_blocked != 0;
    fr->kind = (uint8_t)kind;
    fr->eff = (uint8_t)eff;
    fr->held_back = held;
    return (size_t)fr->off + fr->n <= nids && fr->option >= 0 && (uint32_t)fr->option < fr->n &&
           (size_t)fr->sl_off + fr->sl_n + fr->ex_n <= npool;
}

static bool restore(sim_strategy *st, FILE *f)
{
    dfs *s = (dfs *)st;
    char kind[12];
    int bound, exhausted, shard, shards;
    unsigned long long schedules, redundant, foreign;
    size_t nf, nids, npool;
    if (fscanf(f, " dfs %11s %d %llu %llu %d %zu %zu %zu shard %d %d %llu", kind, &bound,
               &schedules, &redundant, &exhausted, &nf, &nids, &npool, &shard, &shards,
               &foreign) != 11 || strcmp(kind, kind_name(s)) != 0 || bound != s->bound ||
        shard != s->shard || shards != s->shards || nf > (1u << 24) || nids > (1u << 28) ||
        npool > (1u << 28))
        return false;
    frame *frames = calloc(nf ? nf : 1, sizeof *frames);
    int *ids = calloc(nids ? nids : 1, sizeof *ids);
    sleeper *pool = calloc(npool ? npool : 1, sizeof *pool);
    bool ok = frames && ids && pool;
    for (size_t i = 0; ok && i < nf; i++)
        ok = load_frame(f, &frames[i], nids, npool);
    ok = ok && fscanf(f, " ids") == 0;
    for (size_t i = 0; ok && i < nids; i++)
        ok = fscanf(f, " %d", &ids[i]) == 1;
    for (size_t i = 0; ok && i < npool; i++) {
        int bounded_ok;
        ok = fscanf(f, " sleeper %d %d", &pool[i].task, &bounded_ok) == 2 &&
             load_fp(f, &pool[i].fp);
        pool[i].bounded_ok = bounded_ok != 0;
    }
    if (!ok) {
        free(frames);
        free(ids);
        free(pool);
        return false;
    }
    free(s->f);
    free(s->ids);
    free(s->pool);
    s->f = frames;
    s->capf = nf ? nf : 1;
    s->nf = nf;
    s->ids = ids;
    s->capids = nids ? nids : 1;
    s->nids = nids;
    s->pool = pool;
    s->cappool = npool ? npool : 1;
    s->npool = npool;
    s->schedules = schedules;
    s->redundant = redundant;
    s->foreign = foreign;
    s->exhausted = exhausted != 0;
    return true;
}

static bool exhausted(const sim_strategy *s) { return ((const dfs *)s)->exhausted; }
static bool foreign(const sim_strategy *s) { return ((const dfs *)s)->last_foreign; }
static const char *divergence(const sim_strategy *s) { return ((const dfs *)s)->nondet; }

static void describe(const sim_strategy *st, char *buf, size_t n)
{
    const dfs *s = (const dfs *)st;
    char bound[16] = "none";
    if (s->bound != INT_MAX)
        snprintf(bound, sizeof bound, "%d", s->bound);
    int k = snprintf(buf, n, "bound=%s, schedules=%llu%s", bound,
                     (unsigned long long)s->schedules, s->exhausted ? ", exhausted" : "");
    if (s->sleep && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", redundant=%llu", (unsigned long long)s->redundant);
    if (s->shards > 1 && k >= 0 && (size_t)k < n)
        k += snprintf(buf + k, n - (size_t)k, ", shard=%d/%d, foreign=%llu", s->shard + 1, s->shards,
                      (unsigned long long)s->foreign);
    if (s->dpor && k >= 0 && (size_t)k < n)
        snprintf(buf + k, n - (size_t)k, ", races=%llu, reversals=%llu, widened=%llu",
                 (unsigned long long)s->races.races, (unsigned long long)s->races.reversals,
                 (unsigned long long)s->races.widened);
}

static sim_strategy *make(int bound, bool delays, bool sleep, bool dpor)
{
    if (delays && sleep)
        return NULL;
    dfs *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->delays = delays;
    s->sleep = sleep;
    s->dpor = dpor;
    s->base = (sim_strategy){ .name = kind_name(s), .begin = begin, .pick = pick,
                              .pick_value = pick_value, .end = end, .destroy = destroy,
                              .describe = describe, .divergence = divergence,
                              .exhausted = exhausted, .save = save, .restore = restore,
                              .foreign = foreign };
    s->bound = bound < 0 ? INT_MAX : bound;
    return &s->base;
}

sim_strategy *sim_dfs_new(int bound, bool delays, bool sleep)
{
    return make(bound, delays, sleep, false);
}

bool sim_dfs_shard(sim_strategy *st, int shard, int shards)
{
    dfs *s = (dfs *)st;
    if (s->dpor || shards < 1 || shard < 0 || shard >= shards)
        return false;
    s->shard = shard;
    s->shards = shards;
    return true;
}

sim_strategy *sim_dpor_new(int bound)
{
    return make(bound, false, true, true);
}
