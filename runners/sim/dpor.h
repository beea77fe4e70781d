/* dpor.h: the race analysis of dynamic partial-order reduction, for the dfs
 * strategy's "dpor" search (strategy_dfs.c). Source-DPOR (Abdulla, Aronis,
 * Jonsson and Sagonas, "Optimal dynamic partial order reduction", POPL 2014):
 * after a run, each race between two events of different tasks whose first
 * event a decision chose asks that the decision also try a task that can
 * start the reversed order; unbounded search then runs only what some race
 * asks for, where dfs runs every runnable task at every decision. */
#ifndef SIM_DPOR_H
#define SIM_DPOR_H

#include "sched.h"

#include <stddef.h>
#include <stdint.h>

/* One event of a run: a segment (sched.h) of one task, and the decision that
 * chose it, or -1 when it ran because nothing else could (no alternative). */
typedef struct sim_dpor_event {
    int task;
    long frame;
    sim_footprint fp;
} sim_dpor_event;

typedef struct sim_dpor {
    uint32_t *clock;          /* per event, the vector clock of its predecessors */
    size_t cap_clock;
    long *preds;              /* one event's direct predecessors */
    size_t cap_preds;
    uint64_t races, reversals, widened;   /* widened: reversals that took every task */
} sim_dpor;

/* Two events are dependent when their footprints meet (sched.h), and the
 * events of one task are ordered. For each race (two dependent events i < j
 * of different tasks, ordered by nothing but their dependence) with frame f of
 * i >= 0: the initials of the reversal (the tasks that can run first in the
 * events after i that do not depend on i, followed by j) are computed, and if
 * none is in backtrack[f] one is added, or, if none is runnable there
 * (enabled[f], ids below 64), every runnable task. free_at (per frame: a
 * switch there costs nothing), when the search bounds preemptions: the
 * latest such decision of i's task's run is asked too (dpor.c). NULL:
 * unbounded. Returns false, changing nothing, when an event's task id is not
 * below 64. */
bool sim_dpor_races(sim_dpor *d, const sim_dpor_event *ev, size_t n, const bool *free_at,
                    const uint64_t *enabled, uint64_t *backtrack);
void sim_dpor_free(sim_dpor *d);

#endif
