/* dpor.c: source-DPOR's race analysis over one run (dpor.h).
 *
 * Happens-before by vector clocks over task ids: clock[k][t] is one past the
 * index of the last event of task t that happens before event k (k itself
 * excluded), so event i (of task t) happens before k exactly when
 * clock[k][t] > i. An event's direct predecessors are its task's previous
 * event and the last event on each footprint bit it touches (the last that
 * touched everything too); one that touches everything has the last event of
 * every task. An earlier toucher of a bit is ordered before the last one, so
 * only the last can race. */
#include "dpor.h"
#include "strategy.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const sim_dpor_event *ev;
    const uint32_t *clock;
    int w;
} order;

/* Event i happens before event k (or is k). */
static bool before(const order *o, size_t i, size_t k)
{
    if (o->ev[i].task == o->ev[k].task)
        return i <= k;
    return o->clock[k * (size_t)o->w + (size_t)o->ev[i].task] > i;
}

/* The race i < j: the tasks that can start the reversed order, that is,
 * whose first event in v (the events after i that do not happen after it,
 * then j) has no predecessor in v. A predecessor of an event of v that comes
 * after i is in v itself (else the event would happen after i), so an event
 * of v has none in v exactly when its clock holds nothing past i. */
static uint64_t initials(const order *o, size_t i, size_t j)
{
    uint64_t first = 0, init = 0;
    for (size_t k = i + 1; k <= j; k++) {
        if (k < j && before(o, i, k))
            continue;
        uint64_t bit = 1ull << o->ev[k].task;
        if (first & bit)
            continue;
        first |= bit;
        const uint32_t *c = o->clock + k * (size_t)o->w;
        bool free_of_v = true;
        for (int t = 0; t < o->w && free_of_v; t++)
            free_of_v = c[t] <= i + 1;
        if (free_of_v)
            init |= bit;
    }
    return init;
}

/* Under a bound, where the reversal costs no more than the schedule paid
 * (Coons, Musuvathi and McKinley, OOPSLA 2013): reversing the race at i's own
 * decision may cost a preemption the bound has not got left. Going back over
 * i's task's run, the latest decision where a switch was free (its task
 * blocked or yielded there), else the one where the run began, taking over
 * from another task (a switch there costs what the schedule paid). */
static long cheaper_point(const sim_dpor_event *ev, size_t i, const bool *free_at)
{
    long f = ev[i].frame;
    if (free_at[f])
        return f;
    for (size_t k = i; k-- > 0 && ev[k].task == ev[i].task;)
        if (ev[k].frame >= 0) {
            f = ev[k].frame;
            if (free_at[f])
                break;
        }
    return f;
}

/* Asks decision f for one of init (the reversal's initials), unless it has
 * one: the first that can run there, or every task if one cannot (the
 * dependences missed what enables it). */
static void ask(sim_dpor *d, long f, uint64_t init, const uint64_t *enabled, uint64_t *backtrack)
{
    uint64_t can = init & enabled[f];
    if (init & backtrack[f])
        return;
    d->reversals++;
    if (can && can == init) {
        backtrack[f] |= can & -can;
    } else {
        backtrack[f] |= enabled[f];
        d->widened++;
    }
}

static void reverse(sim_dpor *d, const order *o, size_t i, size_t j, const bool *free_at,
                    const uint64_t *enabled, uint64_t *backtrack)
{
    uint64_t init = initials(o, i, j);
    d->races++;
    ask(d, o->ev[i].frame, init, enabled, backtrack);
    long g = free_at ? cheaper_point(o->ev, i, free_at) : -1;
    if (g >= 0 && g != o->ev[i].frame)
        ask(d, g, init, enabled, backtrack);
}

bool sim_dpor_races(sim_dpor *d, const sim_dpor_event *ev, size_t n, const bool *free_at,
                    const uint64_t *enabled, uint64_t *backtrack)
{
    int w = 1;
    for (size_t k = 0; k < n; k++) {
        if (ev[k].task < 0 || ev[k].task >= 64)
            return false;
        if (ev[k].task + 1 > w)
            w = ev[k].task + 1;
    }
    d->clock = sim_grow(d->clock, &d->cap_clock, (n ? n : 1) * (size_t)w, sizeof *d->clock);
    d->preds = sim_grow(d->preds, &d->cap_preds, 320, sizeof *d->preds);
    order o = { ev, d->clock, w };
    long last_task[64], last_bit[256], last_all = -1;
    for (int t = 0; t < 64; t++)
        last_task[t] = -1;
    for (int b = 0; b < 256; b++)
        last_bit[b] = -1;
    for (size_t j = 0; j < n; j++) {
        const sim_dpor_event *e = &ev[j];
        size_t np = 0;
        if (last_task[e->task] >= 0)
            d->preds[np++] = last_task[e->task];
        if (e->fp.all) {
            for (int t = 0; t < w; t++)
                if (t != e->task && last_task[t] >= 0)
                    d->preds[np++] = last_task[t];
        } else {
            for (int q = 0; q < 4; q++)
                for (uint64_t m = e->fp.bits[q]; m; m &= m - 1)
                    if (last_bit[q * 64 + __builtin_ctzll(m)] >= 0)
                        d->preds[np++] = last_bit[q * 64 + __builtin_ctzll(m)];
            if (last_all >= 0)
                d->preds[np++] = last_all;
        }
        uint32_t *c = d->clock + j * (size_t)w;
        memset(c, 0, (size_t)w * sizeof *c);
        for (size_t p = 0; p < np; p++) {
            size_t q = (size_t)d->preds[p];
            if (c[ev[q].task] > q)
                continue;       /* q happens before one merged already: its clock is in */
            const uint32_t *cq = d->clock + q * (size_t)w;
            for (int t = 0; t < w; t++)
                if (cq[t] > c[t])
                    c[t] = cq[t];
            c[ev[q].task] = (uint32_t)q + 1;
        }
        /* Races: a direct predecessor of another task that comes after no
         * other direct predecessor (else the two are ordered through it). */
        for (size_t p = 0; p < np; p++) {
            size_t i = (size_t)d->preds[p];
            if (ev[i].task == e->task || ev[i].frame < 0)
                continue;
            bool direct = true;
            for (size_t r = 0; r < np && direct; r++)
                if ((size_t)d->preds[r] != i && before(&o, i, (size_t)d->preds[r]))
                    direct = false;
            for (size_t r = 0; r < p && direct; r++)
                direct = (size_t)d->preds[r] != i;      /* once per pair */
            if (direct)
                reverse(d, &o, i, j, free_at, enabled, backtrack);
        }
        last_task[e->task] = (long)j;
        if (e->fp.all) {
            last_all = (long)j;
        } else {
            for (int q = 0; q < 4; q++)
                for (uint64_t m = e->fp.bits[q]; m; m &= m - 1)
                    last_bit[q * 64 + __builtin_ctzll(m)] = (long)j;
        }
    }
    return true;
}

void sim_dpor_free(sim_dpor *d)
{
    free(d->clock);
    free(d->preds);
    *d = (sim_dpor){ 0 };
}
