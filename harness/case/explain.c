/* explain.c: --explain PREFIX with --schedule FILE. The replayed schedule is
 * cut down to the decisions its failure turns on (sim_shrink: delta debugging
 * over its deviations from the default), and each of those is told: where it
 * was made, what the default would have run, what ran instead and what that
 * task did next, and the stack there. Written as
 *   PREFIX.minimal.json            a schedule that replays (--schedule)
 *   PREFIX.minimal.race-log.txt    its race log
 *   PREFIX.explain.json            the decisions (asyncrace explain prints them)
 * Stacks are saved as module and offset (sim_shrunk_json); the driver
 * symbolizes them. */
#include "controlled.h"
#include "iteration.h"
#include "report.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    ar_controlled *c;
    ar_outcome (*run_again)(void *ctx, char *detail, size_t n);
    void *ctx;
    char detail[256];
} shrink_ctx;

/* Does the run fail as the schedule recorded? Any other outcome (a pass, or
 * another failure) is not this failure. */
static bool fails_as_recorded(void *arg)
{
    shrink_ctx *s = arg;
    ar_outcome o = s->run_again(s->ctx, s->detail, sizeof s->detail);
    return !strcmp(ar_outcome_names[o], s->c->recorded_outcome);
}

typedef struct {
    const ar_controlled *c;
    const ar_case *cs;
    const ar_variant *v;
    ar_mode mode;
    const sim_shrunk *shrunk;
    const char *detail;
} explanation;

static void fill_explanation(FILE *f, const void *arg)
{
    const explanation *e = arg;
    const ar_controlled *c = e->c;
    fprintf(f, "{\n  \"format\": \"asyncrace-explanation/1\",\n  \"case\": ");
    ar_json_string(f, e->cs->name);
    fprintf(f, ",\n  \"variant\": ");
    ar_json_string(f, e->v->name);
    fprintf(f, ",\n  \"mode\": ");
    ar_json_string(f, ar_modes[e->mode].name);
    fprintf(f, ",\n  \"schedule\": ");
    ar_json_string(f, c->schedule_path);
    fprintf(f, ",\n  \"outcome\": ");
    ar_json_string(f, c->recorded_outcome);
    fprintf(f, ",\n  \"detail\": ");
    ar_json_string(f, e->detail);
    fprintf(f, ",\n  \"minimal_schedule\": ");
    ar_json_string(f, c->minimal_path);
    fprintf(f, ",\n  \"minimal_race_log\": ");
    ar_json_string(f, c->minimal_race_log);
    fprintf(f, ",\n");
    c->sched->shrunk_json(f, e->shrunk);
    fprintf(f, "\n}\n");
}

void ar_controlled_explain(ar_controlled *c, const ar_case *cs, const ar_variant *v, ar_mode mode,
                           ar_outcome (*run_again)(void *ctx, char *detail, size_t n), void *ctx)
{
    if (!c->explain_prefix || !c->replaying)
        return;
    shrink_ctx s = { c, run_again, ctx, "" };
    sim_shrunk shrunk = { 0 };
    bool was = c->uncounted;
    c->uncounted = true;          /* the shrinking runs are no iterations of this run */
    int rc = c->sched->shrink(c->replaying, fails_as_recorded, &s, ar_race_log_count, &shrunk,
                              c->explain_error, sizeof c->explain_error);
    c->uncounted = was;
    c->deviations_before = shrunk.before;
    c->shrink_runs = shrunk.tests;
    if (rc != 0) {
        c->sched->shrunk_free(&shrunk);
        return;
    }
    c->deviations_after = shrunk.after;
    snprintf(c->minimal_path, sizeof c->minimal_path, "%.480s.minimal.json", c->explain_prefix);
    snprintf(c->explanation_path, sizeof c->explanation_path, "%.480s.explain.json",
             c->explain_prefix);
    char err[256];
    snprintf(c->minimal_race_log, sizeof c->minimal_race_log, "%.480s.minimal.race-log.txt",
             c->explain_prefix);
    sim_schedule_id id = { cs->name, v->name, ar_modes[mode].name, NULL, c->params, c->n_params,
                           c->runner_name };
    explanation e = { c, cs, v, mode, &shrunk, s.detail };
    if (c->sched->schedule_write(c->minimal_path, &id, c->sched->schedule_iteration(c->replaying),
                                 c->sched->schedule_seed(c->replaying), c->recorded_outcome,
                                 s.detail, err, sizeof err) != 0)
        snprintf(c->explain_error, sizeof c->explain_error, "%s", err);
    else if (ar_write_race_log(c->minimal_race_log) != 0)
        snprintf(c->explain_error, sizeof c->explain_error, "cannot write '%.200s': %m",
                 c->minimal_race_log);
    else if (ar_write_atomically(c->explanation_path, fill_explanation, &e) != 0)
        snprintf(c->explain_error, sizeof c->explain_error, "cannot write '%.200s': %m",
                 c->explanation_path);
    else
        c->explained = true;
    c->sched->shrunk_free(&shrunk);
}
