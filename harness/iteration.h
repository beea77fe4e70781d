/* iteration.h: between case_main.c (which runs iterations) and race.c (which
 * holds the state of the one running now). Not for cases. */
#ifndef ASYNCRACE_ITERATION_H
#define ASYNCRACE_ITERATION_H

#include "case.h"
#include <stdio.h>

extern const char *const ar_outcome_names[AR_OUTCOME_COUNT];
extern const char *const ar_mode_names[AR_MODE_COUNT];

typedef struct {
    const ar_case *c;
    const ar_runner *runner;
    ar_mode mode;
    bool trap;
    uint64_t seed;                /* this iteration's */
    uint64_t deadline_ns;
} ar_iteration_setup;

void ar_iteration_begin(const ar_iteration_setup *s);
/* The iteration's outcome; its detail is copied into detail[0..n). */
ar_outcome ar_iteration_end(char *detail, size_t n);
/* The last race-point events, oldest first, one per line. */
void ar_race_log_dump(FILE *out);

#endif
