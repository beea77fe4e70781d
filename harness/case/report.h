/* report.h: the JSON a case program prints (docs/contract.md): the report of
 * a run, and the description --list prints. */
#ifndef ASYNCRACE_REPORT_H
#define ASYNCRACE_REPORT_H

#include "case.h"
#include "controlled.h"

#include <stdio.h>

typedef struct {
    const ar_case *c;
    const ar_runner *runner;
    const ar_variant *variant;
    ar_mode mode;
    uint64_t seed, start, done, next_iteration, deadline_ms, run_us;
    int workers;
    const char *argv0;
    uint64_t started_ns;          /* host clock */
    bool complete;
    uint64_t counts[AR_OUTCOME_COUNT];
    bool has_failure;
    uint64_t failure_iteration, failure_seed;
    ar_outcome failure_outcome;
    double failure_after_s;
    char failure_detail[256];
    /* Outcomes per iteration tag (ar_iteration_tag), in order of first use. */
    size_t n_tags;
    struct { char name[32]; uint64_t counts[AR_OUTCOME_COUNT]; } tags[16];
    const ar_controlled *sim;     /* its scheduler is NULL on a real loop */
} ar_report;

void ar_print_report(const ar_report *r);
/* s as a JSON string, quoted and escaped (NULL as ""). */
void ar_json_string(FILE *f, const char *s);
void ar_print_list(const ar_case *c);

/* Does a cell of this runner and mode exist (is the mode meaningful there)? */
bool ar_cell_exists(const ar_runner *r, ar_mode m);

#endif
