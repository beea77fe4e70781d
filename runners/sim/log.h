/* log.h: the decision log of one run: every choice the strategy made, with
 * what it chose from, so a replay can follow it and say where it leaves it.
 *
 * The hash covers, per decision, its kind, the task at the point, the point's
 * name (its text, so it is stable across processes), the candidates and the
 * choice, then the run's step count and status. Same schedule, same hash.
 */
#ifndef SIM_LOG_H
#define SIM_LOG_H

#include "sched.h"

#include <stdio.h>

typedef enum { SIM_DECISION_TASK, SIM_DECISION_VALUE } sim_decision_kind;

typedef struct sim_decision {
    uint64_t step;
    const char *point;        /* a string constant, or an interned copy (loaded logs) */
    long arg;
    int32_t task;             /* the task at the point */
    uint8_t kind;             /* sim_decision_kind */
    uint8_t point_kind;       /* sim_point_kind */
    uint32_t n;               /* candidates (task) or the value range */
    uint32_t off;             /* task decisions: candidates at ids[off .. off+n) */
    uint64_t chose;           /* a task id, or a value */
} sim_decision;

struct sim_log {
    sim_decision *d;
    size_t n, cap;
    int32_t *ids;
    size_t n_ids, cap_ids;
    uint64_t steps;           /* set when the run ended */
    int status;               /* sim_status */
};

void sim_log_reset(sim_log *log);
void sim_log_free(sim_log *log);
void sim_log_add_task(sim_log *log, uint64_t step, const char *point, long arg, int task,
                      int point_kind, const int *enabled, int n, int chose);
void sim_log_add_value(sim_log *log, uint64_t step, const char *point, int task,
                       uint64_t range, uint64_t chose);
void sim_log_copy(sim_log *dst, const sim_log *src);

uint64_t sim_log_hash(const sim_log *log);
/* The chosen tasks and values as one line: "1*3.2.=17.1": '.' separates
 * decisions, "=v" is a value, "*k" repeats the one before k times in all.
 * Returns a malloc'd string. */
char *sim_log_compact(const sim_log *log);
/* The decisions as a JSON array, one per line, each indented by indent. */
void sim_log_write_json(FILE *out, const sim_log *log, const char *indent);

/* s as a JSON string, quoted and escaped. */
void sim_json_string(FILE *out, const char *s);

/* A stable copy of a name read from a file (never freed, so its address
 * names it for the process's lifetime). */
const char *sim_intern(const char *name, size_t len);

#endif
