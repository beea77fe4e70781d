/* report.c: JSON out, by hand: the shapes are small and fixed. */
#include "report.h"
#include "points.h"
#include "status.h"

#include <stdio.h>
#include <string.h>

void ar_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void json_string(const char *s) { ar_json_string(stdout, s); }

static void json_key_string(const char *key, const char *value, const char *sep)
{
    printf("\"%s\": ", key);
    json_string(value);
    fputs(sep, stdout);
}

/* The one command that re-runs the failing iteration alone and traps: on sim,
 * its schedule exactly. */
static void print_replay(const ar_report *r)
{
    char cmd[1024];
    const ar_controlled *sim = r->sim;
    if (sim && sim->sched && sim->files[r->failure_outcome][0]) {
        snprintf(cmd, sizeof cmd, "%s --runner %s --variant %s --mode %s --schedule %s --trap",
                 r->argv0, r->runner->name, r->variant->name, ar_modes[r->mode].name,
                 sim->files[r->failure_outcome]);
        json_key_string("schedule", sim->files[r->failure_outcome], ", ");
        json_key_string("replay", cmd, "");
        return;
    }
    snprintf(cmd, sizeof cmd,
                     "%s --runner %s --variant %s --mode %s --seed %llu --start %llu "
                     "--iterations 1 --workers %d --deadline-ms %llu --run-us %llu --trap",
                     r->argv0, r->runner->name, r->variant->name, ar_modes[r->mode].name,
                     (unsigned long long)r->seed, (unsigned long long)r->failure_iteration,
                     r->workers, (unsigned long long)r->deadline_ms,
                     (unsigned long long)r->run_us);
    json_key_string("replay", cmd, "");
}

/* What sim adds: the strategy, the schedules, the hashes, the files. */
static void print_sim(const ar_controlled *c)
{
    printf("\"sim\": {");
    json_key_string("strategy", c->sched->describe(), ", ");
    printf("\"schedules\": %llu, \"rerun\": %llu, \"searching\": %s, \"exhausted\": %s, "
           "\"run_hash\": \"%016llx\", \"failing\": [",
           (unsigned long long)c->schedules, (unsigned long long)c->rerun,
           c->searching ? "true" : "false", c->exhausted ? "true" : "false",
           (unsigned long long)c->run_hash);
    for (size_t i = 0; i < c->n_failing; i++)
        printf("%s{\"iteration\": %llu, \"outcome\": \"%s\", \"hash\": \"%016llx\"}",
               i ? ", " : "", (unsigned long long)c->failing[i].iteration,
               ar_outcome_names[c->failing[i].outcome], (unsigned long long)c->failing[i].hash);
    printf("], \"programs\": [");
    size_t n = c->n_programs < AR_PROGRAMS_KEPT ? c->n_programs : AR_PROGRAMS_KEPT;
    for (size_t i = 0; i < n; i++) {
        const ar_program_searched *p = &c->programs[(c->n_programs - n + i) % AR_PROGRAMS_KEPT];
        printf("%s{\"seed\": %llu, \"first_iteration\": %llu, \"schedules\": %llu, "
               "\"failures\": %llu, \"exhausted\": %s", i ? ", " : "",
               (unsigned long long)p->seed, (unsigned long long)p->first_iteration,
               (unsigned long long)p->schedules, (unsigned long long)p->failures,
               p->exhausted ? "true" : "false");
        if (c->shards > 1)        /* of its schedules, the ones another shard owns */
            printf(", \"foreign\": %llu", (unsigned long long)p->foreign);
        printf("}");
    }
    /* the last program's search may have ended with the run, not yet counted */
    size_t exhausted = c->programs_exhausted + (c->exhausted && c->n_programs ? 1 : 0);
    printf("], \"programs_searched\": %zu, \"programs_exhausted\": %zu, \"schedule_files\": {",
           c->n_programs, exhausted);
    bool first = true;
    for (int o = 0; o < AR_OUTCOME_COUNT; o++)
        if (c->files[o][0]) {
            printf("%s\"%s\": ", first ? "" : ", ", ar_outcome_names[o]);
            json_string(c->files[o]);
            first = false;
        }
    printf("}, \"replay\": ");
    if (c->replayed) {
        printf("{");
        json_key_string("schedule", c->schedule_path, ", ");
        json_key_string("recorded_outcome", c->recorded_outcome, ", ");
        printf("\"diverged\": %s, ", c->diverged ? "true" : "false");
        json_key_string("where", c->where, ", ");
        printf("\"reproduced\": %s}", c->reproduced ? "true" : "false");
    } else {
        printf("null");
    }
    printf(", \"explained\": ");
    if (c->explain_prefix) {
        printf("{\"ok\": %s, \"deviations\": %zu, \"critical\": %zu, \"runs\": %zu, ",
               c->explained ? "true" : "false", c->deviations_before, c->deviations_after,
               c->shrink_runs);
        json_key_string("minimal_schedule", c->explained ? c->minimal_path : "", ", ");
        json_key_string("minimal_race_log", c->explained ? c->minimal_race_log : "", ", ");
        json_key_string("explanation", c->explained ? c->explanation_path : "", ", ");
        json_key_string("error", c->explain_error, "");
        printf("}");
    } else {
        printf("null");
    }
    printf("}, ");
}

void ar_print_report(const ar_report *r)
{
    double elapsed = (double)(ar_host_now_ns() - r->started_ns) / 1e9;
    printf("{\"cell\": \"%s.%s.%s.%s\", ", r->c->name, r->runner->name, r->variant->name,
           ar_modes[r->mode].name);
    json_key_string("case", r->c->name, ", ");
    json_key_string("runner", r->runner->name, ", ");
    json_key_string("runner_version", r->runner->version(), ", ");
    json_key_string("variant", r->variant->name, ", ");
    json_key_string("mode", ar_modes[r->mode].name, ", ");
    printf("\"seed\": %llu, \"start\": %llu, \"iterations\": %llu, \"workers\": %d, "
           "\"run_us\": %llu, ",
           (unsigned long long)r->seed, (unsigned long long)r->start,
           (unsigned long long)r->done, r->workers, (unsigned long long)r->run_us);
    printf("\"outcomes\": {");
    for (int o = 0; o < AR_OUTCOME_COUNT; o++)
        printf("%s\"%s\": %llu", o ? ", " : "", ar_outcome_names[o],
               (unsigned long long)r->counts[o]);
    printf("}, \"elapsed_s\": %.6f, \"iterations_per_s\": %.1f, ", elapsed,
           elapsed > 0 ? (double)r->done / elapsed : 0.0);
    if (r->sim && r->sim->sched)
        print_sim(r->sim);
    if (r->n_tags) {
        printf("\"by_tag\": {");
        for (size_t t = 0; t < r->n_tags; t++) {
            printf("%s", t ? ", " : "");
            json_string(r->tags[t].name);
            printf(": {");
            bool first = true;
            for (int o = 0; o < AR_OUTCOME_COUNT; o++)
                if (r->tags[t].counts[o]) {
                    printf("%s\"%s\": %llu", first ? "" : ", ", ar_outcome_names[o],
                           (unsigned long long)r->tags[t].counts[o]);
                    first = false;
                }
            printf("}");
        }
        printf("}, ");
    }
    if (r->has_failure) {
        printf("\"first_failure\": {\"iteration\": %llu, \"seed\": %llu, ",
               (unsigned long long)r->failure_iteration, (unsigned long long)r->failure_seed);
        json_key_string("outcome", ar_outcome_names[r->failure_outcome], ", ");
        json_key_string("detail", r->failure_detail, ", ");
        printf("\"after_s\": %.6f, ", r->failure_after_s);
        print_replay(r);
        printf("}, ");
    } else {
        printf("\"first_failure\": null, ");
    }
    printf("\"complete\": %s, \"next_iteration\": %llu}\n", r->complete ? "true" : "false",
           (unsigned long long)r->next_iteration);
}

/* ---- --list: contract 2 (docs/contract.md) ---- */

static const char *expect_kind_name(ar_expect_kind k)
{
    switch (k) {
    case AR_NEVER: return "never";
    case AR_SOMETIMES: return "sometimes";
    case AR_ALWAYS: return "always";
    case AR_RARELY: return "rarely";
    case AR_UNDECLARED: break;
    }
    return "undeclared";
}

static const char *wake_name(ar_wake_policy w)
{
    return w == AR_WAKE_INLINE ? "inline" : w == AR_WAKE_DEFERRED ? "deferred" : "defer_nested";
}

ar_expect ar_cell_expect(const ar_variant *v, const ar_runner *r, ar_mode m, const char **why)
{
    ar_expect e = v->expect[m];
    for (const ar_rarely *x = v->rarely; x && x->runner && e.kind == AR_SOMETIMES; x++)
        if (x->mode == m && !strcmp(x->runner, r->name)) {
            if (why)
                *why = x->why;
            return (ar_expect){ AR_RARELY, e.outcome };
        }
    if (why)
        *why = NULL;
    return e;
}

bool ar_cell_exists(const ar_runner *r, ar_mode m)
{
    return m != AR_EXHAUSTIVE || r->scheduler;  /* a search needs a runner that owns the schedule */
}

static void print_points(const ar_point *const *points, const char *owner, bool *first)
{
    for (size_t i = 0; points && points[i]; i++) {
        printf("%s{", *first ? "" : ", ");
        *first = false;
        json_key_string("name", points[i]->name, ", ");
        json_key_string("what", points[i]->what, ", ");
        json_key_string("owner", owner, "}");
    }
}

static void print_status_layout(void)
{
    printf("\"status\": {\"magic\": \"%s\", \"size\": %zu, \"fields\": [", AR_STATUS_MAGIC,
           sizeof(ar_status_record));
    size_t n = sizeof ar_status_fields / sizeof ar_status_fields[0];
    for (size_t i = 0; i < n; i++) {
        const ar_status_field *f = &ar_status_fields[i];
        printf("%s{\"name\": \"%s\", \"offset\": %zu, \"type\": \"%s\", \"count\": %zu}",
               i ? ", " : "", f->name, f->offset, f->type, f->count);
    }
    printf("]}");
}

static void print_variant(const ar_variant *v)
{
    printf("{");
    json_key_string("name", v->name, ", ");
    json_key_string("what", v->what, ", ");
    printf("\"workers\": %d, ", v->workers);
    json_key_string("wake", wake_name(v->wake), ", ");
    json_key_string("shutdown", v->shutdown == AR_SHUTDOWN_STOP_THEN_DROP
                                    ? "stop_then_drop" : "drop_as_stopped", ", ");
    if (v->twin)
        json_key_string("twin", v->twin, "}");
    else
        printf("\"twin\": null}");
}

static void print_cells(const ar_case *c)
{
    bool first = true;
    for (size_t i = 0; i < c->n_variants; i++)
        for (int k = 0; ar_runners[k]; k++)
            for (int m = 0; m < AR_MODE_COUNT; m++) {
                const ar_variant *v = &c->variants[i];
                const ar_runner *r = ar_runners[k];
                if (!ar_cell_exists(r, (ar_mode)m))
                    continue;
                printf("%s{\"id\": \"%s.%s.%s.%s\", ", first ? "" : ", ", c->name, r->name,
                       v->name, ar_modes[m].name);
                first = false;
                json_key_string("runner", r->name, ", ");
                json_key_string("variant", v->name, ", ");
                json_key_string("mode", ar_modes[m].name, ", ");
                const char *why;
                ar_expect e = ar_cell_expect(v, r, (ar_mode)m, &why);
                printf("\"expect\": {\"kind\": \"%s\", \"outcome\": \"%s\"",
                       expect_kind_name(e.kind), ar_outcome_names[e.outcome]);
                if (why) {
                    printf(", ");
                    json_key_string("why", why, "");
                }
                printf("}}");
            }
}

void ar_print_list(const ar_case *c)
{
    printf("{\"contract\": 2, ");
    json_key_string("case", c->name, ", ");
    json_key_string("upstream", c->upstream, ", ");
    json_key_string("summary", c->summary, ", ");
    printf("\"outcomes\": [");
    for (int o = 0; o < AR_OUTCOME_COUNT; o++)
        printf("%s\"%s\"", o ? ", " : "", ar_outcome_names[o]);
    printf("], \"modes\": [");
    for (int m = 0; m < AR_MODE_COUNT; m++) {
        printf("%s{", m ? ", " : "");
        json_key_string("name", ar_modes[m].name, ", ");
        json_key_string("what", ar_modes[m].what, ", ");
        /* a search's budget is the search, not a sample size */
        printf("\"search\": %s}", m == AR_EXHAUSTIVE ? "true" : "false");
    }
    printf("], \"runners\": [");
    for (int i = 0; ar_runners[i]; i++) {
        printf("%s{", i ? ", " : "");
        json_key_string("name", ar_runners[i]->name, ", ");
        json_key_string("version", ar_runners[i]->version(), ", ");
        printf("\"deterministic\": %s}", ar_runners[i]->race_point ? "true" : "false");
    }
    printf("], ");
    print_status_layout();
    printf(", \"points\": [");
    bool first = true;
    print_points(ar_runtime_points, "runtime", &first);
    print_points(c->points, "case", &first);
    printf("], \"variants\": [");
    for (size_t i = 0; i < c->n_variants; i++) {
        printf("%s", i ? ", " : "");
        print_variant(&c->variants[i]);
    }
    printf("], \"cells\": [");
    print_cells(c);
    printf("]}\n");
}
