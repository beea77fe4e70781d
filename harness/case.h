/* case.h: what a case declares, and what it may call during an iteration.
 *
 * A case is one C file: a comment with the race as a timeline, an iteration
 * function written against runtime.h, a forced-mode hook, and a const table of
 * variants at the bottom. ar_case_main() gives it the program contract of
 * docs/contract.md: command line, seeded iterations, deadline, JSON report.
 */
#ifndef ASYNCRACE_CASE_H
#define ASYNCRACE_CASE_H

#include "runtime.h"

/* One enum for C and Python; the order is part of the contract (--list prints it). */
typedef enum {
    AR_OK,
    AR_PANIC,        /* unwrap of a closed channel, failed assertion */
    AR_DEADLOCK,     /* a lock re-entered on the waker's stack */
    AR_FATAL,        /* a writer destroyed without finish */
    AR_LOST,         /* output accepted but never delivered */
    AR_WRONG_THREAD, /* a task polled off its home thread */
    AR_LEAK,         /* a descriptor or connection never closed */
    AR_CRASH,        /* killed by a signal (counted by the driver) */
    AR_HANG,         /* past the deadline */
    AR_OUTCOME_COUNT
} ar_outcome;

typedef enum { AR_NATURAL, AR_CHAOS, AR_FORCED, AR_MODE_COUNT } ar_mode;

/* What a cell must show: every iteration fails, at least one does, none does. */
typedef enum { AR_NEVER, AR_SOMETIMES, AR_ALWAYS } ar_expect_kind;
typedef struct { ar_expect_kind kind; ar_outcome outcome; } ar_expect;

#define AR_EXPECT_NEVER {AR_NEVER, AR_OK}
#define AR_EXPECT_SOMETIMES(o) {AR_SOMETIMES, (o)}
#define AR_EXPECT_ALWAYS(o) {AR_ALWAYS, (o)}

typedef struct ar_variant {
    const char *name;        /* buggy, fixed, partial, control, ... */
    const char *what;        /* one line: the design this variant stands for */
    int workers;
    ar_wake_policy wake;
    ar_shutdown_policy shutdown;
    int knob;                /* a case-specific switch, read by the case */
    ar_expect expect[AR_MODE_COUNT]; /* indexed by ar_mode */
} ar_variant;

typedef struct ar_iter {
    const ar_runner *runner;
    const ar_variant *variant;
    ar_mode mode;
    int workers;             /* variant's, unless --workers overrode it */
    uint64_t index;          /* iteration number */
    uint64_t seed;           /* derived from (--seed, index) */
    uint64_t run_us;         /* how long the scenario runs before it is torn down */
} ar_iter;

typedef struct ar_case {
    const char *name;
    const char *upstream;    /* "nginx/ngx-rust #294 / PR #295" */
    const char *summary;     /* one line */
    const ar_variant *variants;
    size_t n_variants;
    /* One iteration: build a runtime, run the scenario, shut it down. Failures
     * are reported with ar_fail(); returning without one means ok. */
    void (*iteration)(const ar_iter *it);
    /* Forced mode: called at every race point (after it is logged) to impose
     * the documented interleaving with gates. May be NULL. */
    void (*forced)(const char *point, long arg);
    uint64_t default_run_us; /* --run-us when not given */
} ar_case;

int ar_case_main(const ar_case *c, int argc, char **argv);

/* ---- During an iteration ---- */

/* Records the iteration's failure; the first one wins. With --trap it dumps
 * the race-point log and aborts here, for rr, gdb and cores. */
void ar_fail(ar_outcome o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool ar_failed(void);
bool ar_trap_enabled(void);
ar_mode ar_mode_now(void);

/* A named place where threads race. natural: logged only. chaos: a seeded
 * yield or short delay. forced: the case's hook runs here. */
void ar_race_point(const char *name, long arg);

/* Gates impose an order in forced mode: 16 per iteration, closed at its start.
 * A wait is bounded by the iteration deadline; a gate that never opens makes
 * the iteration a hang (named in the detail) and the wait returns false. */
#define AR_GATES 16
void ar_gate_open(int gate);
bool ar_gate_wait(int gate);

/* Seeded from the iteration seed and the calling thread's first use. */
uint64_t ar_rand(void);
/* The iteration deadline, ns on the runner's clock. */
uint64_t ar_deadline_ns(void);
/* The runner's clock (CLOCK_MONOTONIC, or sim's virtual time), ns. */
uint64_t ar_now_ns(void);
/* Open file descriptors of this process (for leak checks). */
int ar_count_fds(void);
/* Sleeps on the calling thread, in microseconds. */
void ar_sleep_us(uint64_t us);

#endif
