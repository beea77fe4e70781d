/* race.h: the iteration that is running, as the runtime and the cases see it:
 * its outcome, its race points, its gates, its clock and its randomness.
 *
 * This is the layer just above the runners. The task runtime (harness/runtime)
 * reports here, the cases report here, and the case plumbing (harness/case)
 * begins and ends each iteration here (iteration.h). It knows nothing of tasks
 * or cases, so nothing below the plumbing can reach up into it.
 *
 * One iteration runs at a time in a process; everything it starts may report
 * from any thread.
 */
#ifndef ASYNCRACE_RACE_H
#define ASYNCRACE_RACE_H

#include "runner.h"

#include <stdbool.h>
#include <stdint.h>

/* ---- outcomes and modes: the order is part of the contract (--list prints it) ---- */

typedef enum {
    AR_OK,
    AR_PANIC,        /* unwrap of a closed channel, failed assertion */
    AR_DEADLOCK,     /* a lock re-entered on the waker's stack; nothing runnable */
    AR_FATAL,        /* a writer destroyed without finish */
    AR_LOST,         /* output accepted but never delivered */
    AR_WRONG_THREAD, /* a task polled off its home thread */
    AR_LEAK,         /* a handle, lock or descriptor never freed */
    AR_CRASH,        /* killed by a signal (counted by the driver) */
    AR_HANG,         /* past the deadline */
    AR_UNCONTROLLED, /* under the scheduler, something it does not order ran (which, where) */
    AR_OUTCOME_COUNT
} ar_outcome;

extern const char *const ar_outcome_names[AR_OUTCOME_COUNT];

/* exhaustive runs every schedule within a bound, so it exists only on a
 * runner that owns the schedule (sim). */
typedef enum { AR_NATURAL, AR_CHAOS, AR_FORCED, AR_EXHAUSTIVE, AR_MODE_COUNT } ar_mode;

typedef struct {
    const char *name;
    const char *what;        /* one line, printed by --list */
} ar_mode_info;

/* forced and exhaustive run the documented scenario (the one the case's
 * timeline draws): forced imposes its interleaving with gates, exhaustive
 * searches every schedule of it within the bound. */
static inline bool ar_documented(ar_mode m) { return m == AR_FORCED || m == AR_EXHAUSTIVE; }

extern const ar_mode_info ar_modes[AR_MODE_COUNT];

/* ---- failing ---- */

/* Records the iteration's failure; the first one wins. With --trap it dumps
 * the race-point log and aborts here, for rr, gdb and cores. */
void ar_fail(ar_outcome o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ar_failed(void);
bool ar_trap_enabled(void);
/* Names the kind of iteration this one is ("shape 2", "burst 64"): the report
 * counts outcomes per tag, so a rate can be read per kind. At most 31 bytes;
 * the last call wins. */
void ar_iteration_tag(const char *tag);
ar_mode ar_mode_now(void);

/* ---- race points ---- */

/* A named place where threads race. Each is declared once, as a const object
 * whose address is its identity (a forced hook compares addresses):
 *
 *   static const ar_point at_producer_parked =
 *       AR_POINT("producer.parked", "the producer awaits the reply to i (arg: i)");
 *
 * what says what has just happened there, and what arg carries. */
typedef struct ar_point {
    const char *name;
    const char *what;
} ar_point;

#define AR_POINT(name, what) { (name), (what) }

/* natural: logged only. chaos: a seeded yield or short delay. forced: the
 * case's hook runs here. On a runner that owns the schedule (sim), also a
 * scheduling point. */
void ar_race_point(const ar_point *p, long arg);

/* ---- gates: forced mode's way to impose an order ---- */

/* A named object of the scenario (zeroed with it), opened any number of
 * times. A wait is bounded by the iteration deadline: a gate that never opens
 * makes the iteration a hang, named in the detail, and the wait returns false. */
typedef struct ar_gate {
    const char *name;
    unsigned opened;         /* guarded by the gates' lock */
} ar_gate;

void ar_gate_init(ar_gate *g, const char *name);
void ar_gate_open(ar_gate *g);
bool ar_gate_wait(ar_gate *g);                  /* until opened at least once */
bool ar_gate_wait_count(ar_gate *g, unsigned n);  /* until opened at least n times */

/* ---- the iteration's clock, randomness and threads ---- */

/* The runner's clock: CLOCK_MONOTONIC, or sim's virtual time. ns. */
uint64_t ar_now_ns(void);
/* The iteration deadline, on that clock. */
uint64_t ar_deadline_ns(void);
/* Sleeps on the calling thread, through the runner. */
void ar_sleep_us(uint64_t us);
/* The runner this process runs on (set once, before the first iteration). */
const ar_runner *ar_runner_now(void);

/* Seeded from the iteration seed and the order in which threads first ask. */
uint64_t ar_rand(void);

/* A number naming the calling thread within the iteration (1, 2, ...): for
 * code that must tell "this very thread" from another one. */
uint64_t ar_thread_id(void);
/* The worker a thread is (the runtime labels its threads), for the race log. */
void ar_thread_label(int worker);

/* Per-thread state of the layers above, in the runner's thread-local block
 * (under sim a thread is a fiber, so _Thread_local would be shared). */
enum { AR_SLOT_RACE, AR_SLOT_RUNTIME, AR_SLOT_CASE, AR_SLOT_SPARE, AR_SLOTS };
#define AR_SLOT_BYTES (AR_THREAD_LOCALS_BYTES / AR_SLOTS)   /* 64 */
void *ar_thread_slot(int slot);

#endif
