/* case.h: what a case declares, and what the case plumbing gives it.
 *
 * A case is one C file, read top to bottom as the original bug: a comment
 * with the race as a timeline, the tasks, the scenario (one iteration, and
 * its forced-mode hook), then a const table of variants. ar_case_main() gives
 * it the program contract of docs/contract.md: command line, seeded
 * iterations, deadline, leak check, status file, JSON report, --list.
 */
#ifndef ASYNCRACE_CASE_H
#define ASYNCRACE_CASE_H

#include "race.h"
#include "runtime.h"

#include <stddef.h>

/* What a cell must show. AR_UNDECLARED is the zero value, so an expectation
 * a variant forgot is caught when the program starts, never read as "never".
 * AR_RARELY is not declared per mode: a variant's `rarely` list turns its
 * sometimes cells of one runner and mode into it (see ar_rarely). */
typedef enum { AR_UNDECLARED, AR_NEVER, AR_SOMETIMES, AR_ALWAYS, AR_RARELY } ar_expect_kind;
typedef struct { ar_expect_kind kind; ar_outcome outcome; } ar_expect;

/* Where a bug is real but shows too rarely for any budget to require it: a
 * sometimes cell of this runner and mode is "rarely" instead. It runs and
 * reports its rate, must show no other failure, and claims nothing more; why
 * says so in a line, with the rate measured. Lists end with { NULL }. */
typedef struct ar_rarely {
    const char *runner;
    ar_mode mode;
    const char *why;
} ar_rarely;

#define AR_NEVER_FAILS { AR_NEVER, AR_OK }
#define AR_FAILS_SOMETIMES(o) { AR_SOMETIMES, (o) }
#define AR_FAILS_ALWAYS(o) { AR_ALWAYS, (o) }

/* The two common rows: a bug that natural and chaos show sometimes, the
 * forced interleaving every time and the bounded search at least once; and a
 * fix that none of them shows (the search: over every schedule in its bound). */
#define AR_REPRODUCES(o) { [AR_NATURAL] = AR_FAILS_SOMETIMES(o), \
                           [AR_CHAOS] = AR_FAILS_SOMETIMES(o), \
                           [AR_FORCED] = AR_FAILS_ALWAYS(o), \
                           [AR_EXHAUSTIVE] = AR_FAILS_SOMETIMES(o) }
#define AR_NEVER_IN_ANY_MODE { [AR_NATURAL] = AR_NEVER_FAILS, [AR_CHAOS] = AR_NEVER_FAILS, \
                               [AR_FORCED] = AR_NEVER_FAILS, [AR_EXHAUSTIVE] = AR_NEVER_FAILS }

typedef struct ar_variant {
    const char *name;        /* buggy, fixed, partial, control, ... */
    const char *what;        /* one line: the design this variant stands for */
    int workers;
    ar_wake_policy wake;
    ar_shutdown_policy shutdown;
    /* For a variant that must never fail: the variant whose failure it fixes
     * (its power is measured against that one's rate). */
    const char *twin;
    /* The case's own description of the variant, of the case's own type:
     *   .design = &(const struct design){ .ready = AFTER_SINK, .end = CLOSE } */
    const void *design;
    ar_expect expect[AR_MODE_COUNT];   /* indexed by ar_mode */
    const ar_rarely *rarely;           /* may be NULL */
} ar_variant;

/* The expectation of one cell: the variant's for the mode, or rarely where
 * its list says so. why (may be NULL) gets the reason of a rarely cell. */
ar_expect ar_cell_expect(const ar_variant *v, const ar_runner *r, ar_mode m, const char **why);

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
    const ar_point *const *points;  /* the case's own race points, NULL-terminated */
    /* The scenario: the harness allocates scenario_size zeroed bytes for each
     * iteration, hands them to iteration() and to the forced hook, and frees
     * them after the iteration (and its leak check) ended. */
    size_t scenario_size;
    /* One iteration: build a runtime, run the scenario, shut it down. Failures
     * are reported with ar_fail(); returning without one means ok. */
    void (*iteration)(const ar_iter *it, void *scenario);
    /* Forced mode: called at every race point (after it is logged) to impose
     * the documented interleaving with gates. May be NULL. */
    void (*forced)(void *scenario, const ar_point *p, long arg);
    uint64_t default_run_us; /* --run-us when not given */
} ar_case;

int ar_case_main(const ar_case *c, int argc, char **argv);

#endif
