/* iteration.h: how the case plumbing begins and ends the iteration that race.h
 * describes. Not for cases or the runtime. */
#ifndef ASYNCRACE_ITERATION_H
#define ASYNCRACE_ITERATION_H

#include "race.h"

#include <stdio.h>

/* Called at every race point in forced mode, with the scenario of the running
 * iteration. */
typedef void (*ar_forced_hook)(void *scenario, const ar_point *p, long arg);

typedef struct {
    ar_mode mode;
    bool trap;
    uint64_t seed;                /* this iteration's */
    uint64_t deadline_ns;         /* on the runner's clock */
    ar_forced_hook forced;        /* may be NULL */
    void *scenario;
} ar_iteration_setup;

/* Once per process, before the first iteration. */
void ar_race_use_runner(const ar_runner *r);

/* On the thread that runs the iteration (inside runner->run). */
void ar_iteration_begin(const ar_iteration_setup *s);
/* The iteration's outcome; its detail is copied into detail[0..n), its tag
 * (ar_iteration_tag, "" for none) into tag[0..AR_TAG_BYTES). */
#define AR_TAG_BYTES 32
ar_outcome ar_iteration_end(char *detail, size_t n, char *tag);

/* Race-point events of this iteration so far (the log keeps the last ones). */
uint64_t ar_race_log_count(void);
/* The last race-point events, oldest first, one per line. */
void ar_race_log_dump(FILE *out);

#endif
