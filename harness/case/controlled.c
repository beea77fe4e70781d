/* controlled.c: a runner that owns the schedule (sim), driven from the case
 * plumbing (see controlled.h). */
#include "controlled.h"
#include "iteration.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What each mode means on a runner that owns the schedule: the sampler that
 * measured best for it (docs/sim.md's table: POS found every buggy and partial
 * variant at all 20 seeds, uniform random not dropped_writer.partial at any;
 * PCT fastest where chaos is asked for), delay bounding for the search. */
static const char *strategy_of(ar_mode mode)
{
    switch (mode) {
    case AR_NATURAL: return "pos";
    case AR_CHAOS: return "pct";
    case AR_EXHAUSTIVE: return "delay";
    case AR_FORCED:
    case AR_MODE_COUNT: break;
    }
    return "random";              /* forced: the gates order what matters */
}

void ar_controlled_setup(ar_controlled *c, const ar_case *cs, const ar_runner *r,
                         const ar_variant *v, ar_mode mode, uint64_t run_seed)
{
    c->sched = r->scheduler;
    c->runner_name = r->name;
    if (!c->sched) {
        if (c->strategy || c->bound != AR_BOUND_UNSET || c->pct_depth >= 0 || c->step_bound >= 0 ||
            c->schedule_path || c->explain_prefix || c->shards)
            ar_usage_error("--strategy, --bound, --pct-depth, --step-bound, --schedule, "
                           "--explain and --shard need a "
                        "runner that owns the schedule (sim); %s runs on real threads", r->name);
        return;
    }
    sim_options o = SIM_OPTIONS_DEFAULT;
    o.strategy = c->strategy ? c->strategy : strategy_of(mode);
    if (c->bound == AR_BOUND_NONE)
        o.dfs_bound = -1;
    else if (c->bound != AR_BOUND_UNSET)
        o.dfs_bound = (int)c->bound;
    if (c->pct_depth >= 0)
        o.pct_depth = (int)c->pct_depth;
    if (c->step_bound >= 0)
        o.step_bound = (uint64_t)c->step_bound;
    o.shard = (int)c->shard;
    o.shards = (int)c->shards;
    char err[256];
    if (c->sched->configure(&o, err, sizeof err) != 0)
        ar_usage_error("%s", err);
    c->options = o;
    c->searching = c->sched->searching();
    c->run_seed = run_seed;
    snprintf(c->identity, sizeof c->identity, "%s %s %s %s %s %d %llu shard %d/%d", cs->name,
             v->name, ar_modes[mode].name, c->sched->build_id(), o.strategy, o.dfs_bound,
             (unsigned long long)run_seed, o.shard, o.shards);
    if (!c->schedules_dir) {
        const char *tmp = getenv("TMPDIR");
        static char dir[512];
        snprintf(dir, sizeof dir, "%s/asyncrace-schedules", tmp && *tmp ? tmp : "/tmp");
        c->schedules_dir = dir;
    }
    if (c->explain_prefix && !c->schedule_path)
        ar_usage_error("--explain PREFIX needs --schedule FILE: it explains a failing schedule");
    if (c->schedule_path) {
        sim_schedule_id expect = { cs->name, v->name, ar_modes[mode].name, NULL, NULL, 0,
                                   c->runner_name };
        c->replaying = c->sched->schedule_load(c->schedule_path, &expect, err, sizeof err);
        if (!c->replaying)
            ar_usage_error("%s", err);
        snprintf(c->recorded_outcome, sizeof c->recorded_outcome, "%s",
                 c->sched->schedule_outcome(c->replaying));
        c->sched->replay(c->replaying);
        c->searching = false;
    }
}

void ar_controlled_params(ar_controlled *c, const sim_param *params, size_t n)
{
    c->n_params = n < SIM_PARAMS_MAX ? n : SIM_PARAMS_MAX;
    for (size_t i = 0; i < c->n_params; i++)
        c->params[i] = params[i];
}

bool ar_controlled_recorded(const ar_controlled *c, const char *name, uint64_t *value)
{
    return c->replaying && c->sched->schedule_param(c->replaying, name, value);
}

uint64_t ar_controlled_replay_iteration(const ar_controlled *c)
{
    return c->sched->schedule_iteration(c->replaying);
}

uint64_t ar_controlled_replay_seed(const ar_controlled *c)
{
    return c->sched->schedule_seed(c->replaying);
}

static uint64_t mix(uint64_t h, uint64_t x)
{
    h ^= x + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h * 0xff51afd7ed558ccdull;
}

/* A search explores one program at a time: every schedule of it gets the
 * same seed. Once the bound is exhausted, the next program (seed) begins. */
uint64_t ar_controlled_seed(ar_controlled *c, uint64_t i, uint64_t (*seed_of)(uint64_t, uint64_t))
{
    if (!c->searching)
        return seed_of(c->run_seed, i);
    ar_program_searched *p = c->n_programs ? &c->programs[(c->n_programs - 1) % AR_PROGRAMS_KEPT] : NULL;
    if (p && c->sched->exhausted()) {
        p->exhausted = true;
        c->programs_exhausted++;
        char err[256];
        if (c->sched->configure(&c->options, err, sizeof err) != 0)
            ar_usage_error("%s", err);
        p = NULL;
    }
    if (!p) {
        p = &c->programs[c->n_programs % AR_PROGRAMS_KEPT];
        *p = (ar_program_searched){ .seed = seed_of(c->run_seed, c->n_programs),
                                    .first_iteration = i };
        c->n_programs++;
        c->program_seed = p->seed;
    }
    return c->program_seed;
}

void ar_controlled_before(ar_controlled *c, uint64_t seed)
{
    if (c->sched)
        c->sched->set_seed(seed);
}

void ar_controlled_after(ar_controlled *c, ar_outcome *outcome, char *detail, size_t n)
{
    if (!c->sched)
        return;
    const sim_result *r = c->sched->last_result();
    if (!c->uncounted) {
        c->schedules++;
        c->run_hash = mix(c->run_hash, r->hash);
    }
    if (c->searching) {
        ar_program_searched *p = &c->programs[(c->n_programs - 1) % AR_PROGRAMS_KEPT];
        p->schedules++;
        p->foreign += r->foreign;
        p->failures += *outcome != AR_OK || r->status != SIM_OK;
        p->exhausted = c->sched->exhausted();
        c->exhausted = p->exhausted;
    }
    if (r->status == SIM_DEADLOCK) {
        *outcome = AR_DEADLOCK;
        snprintf(detail, n, "%s", r->detail);
    } else if (r->status == SIM_STEP_BOUND) {
        *outcome = AR_HANG;
        snprintf(detail, n, "%s", r->detail);
    } else if (r->status == SIM_UNCONTROLLED) {
        *outcome = AR_UNCONTROLLED;
        snprintf(detail, n, "%s", r->detail);
    }
    if (c->replaying && !c->uncounted) {
        c->replayed = true;
        c->diverged = r->diverged;
        snprintf(c->where, sizeof c->where, "%s", r->diverged ? r->divergence : "");
        c->reproduced = !r->diverged && !strcmp(ar_outcome_names[*outcome], c->recorded_outcome);
    }
    if (*outcome != AR_OK && !c->uncounted && c->n_failing < AR_FAILING_KEPT)
        c->failing[c->n_failing++] = (ar_failing_schedule){ 0, r->hash, *outcome };
}


/* mkdir -p */
static int make_dirs(const char *path)
{
    char p[512];
    snprintf(p, sizeof p, "%s", path);
    for (char *slash = strchr(p + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash)
            *slash = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        if (!slash)
            return 0;
        *slash = '/';
    }
}

/* A file of text, whole or not at all: a temp file beside it, then rename. */
int ar_write_atomically(const char *path, void (*fill)(FILE *, const void *), const void *arg)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fill(f, arg);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void fill_race_log(FILE *f, const void *arg)
{
    (void)arg;
    ar_race_log_dump(f);
}

int ar_write_race_log(const char *path)
{
    return ar_write_atomically(path, fill_race_log, NULL);
}

/* ---- a search between batches ---- */

#define STATE_FORMAT "asyncrace-search-state/2"

typedef struct { const ar_controlled *c; uint64_t next; } state_out;

static void fill_state(FILE *f, const void *arg)
{
    const state_out *o = arg;
    const ar_controlled *c = o->c;
    fprintf(f, "%s\nidentity %s\nnext %llu\nprograms %zu %zu %llu %d\n", STATE_FORMAT,
            c->identity, (unsigned long long)o->next, c->n_programs, c->programs_exhausted,
            (unsigned long long)c->program_seed, c->exhausted);
    for (size_t i = 0; i < AR_PROGRAMS_KEPT; i++) {
        const ar_program_searched *p = &c->programs[i];
        fprintf(f, "program %llu %llu %llu %llu %d %llu\n", (unsigned long long)p->seed,
                (unsigned long long)p->first_iteration, (unsigned long long)p->schedules,
                (unsigned long long)p->failures, p->exhausted, (unsigned long long)p->foreign);
    }
    c->sched->search_save(f);
}

void ar_controlled_save_search(const ar_controlled *c, uint64_t next)
{
    if (!c->sched || !c->searching || !c->search_state_path)
        return;
    state_out o = { c, next };
    char dir[512];
    snprintf(dir, sizeof dir, "%s", c->search_state_path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        make_dirs(dir);
    }
    if (ar_write_atomically(c->search_state_path, fill_state, &o) != 0)
        fprintf(stderr, "asyncrace: cannot write the search state '%s': %s\n",
                c->search_state_path, strerror(errno));
}

uint64_t ar_controlled_resume(ar_controlled *c, uint64_t start)
{
    if (!c->sched || !c->searching || !c->search_state_path || start == 0)
        return 0;
    FILE *f = fopen(c->search_state_path, "r");
    if (!f)
        return 0;
    char format[64] = "", identity[sizeof c->identity] = "";
    unsigned long long next = 0, seed = 0;
    size_t n_programs = 0, exhausted_programs = 0;
    int exhausted = 0;
    ar_program_searched programs[AR_PROGRAMS_KEPT];
    bool ok = fgets(format, sizeof format, f) && !strcmp(format, STATE_FORMAT "\n") &&
              fscanf(f, "identity %511[^\n] next %llu programs %zu %zu %llu %d", identity, &next,
                     &n_programs, &exhausted_programs, &seed, &exhausted) == 6 &&
              !strcmp(identity, c->identity) && next <= start;
    for (size_t i = 0; ok && i < AR_PROGRAMS_KEPT; i++) {
        unsigned long long s, first, n, fails, foreign;
        int ex;
        ok = fscanf(f, " program %llu %llu %llu %llu %d %llu", &s, &first, &n, &fails, &ex,
                    &foreign) == 6;
        programs[i] = (ar_program_searched){ s, first, n, fails, ex != 0, foreign };
    }
    char err[256];
    ok = ok && c->sched->search_restore(f, err, sizeof err);
    fclose(f);
    if (!ok)
        return 0;                 /* not this search's: it runs from the start again */
    c->n_programs = n_programs;
    c->programs_exhausted = exhausted_programs;
    c->program_seed = seed;
    c->exhausted = exhausted != 0;
    memcpy(c->programs, programs, sizeof programs);
    return next;
}

void ar_controlled_write_race_log(const ar_controlled *c)
{
    if (c->race_log_path && ar_write_race_log(c->race_log_path) != 0)
        fprintf(stderr, "asyncrace: cannot write the race log '%s': %s\n", c->race_log_path,
                strerror(errno));
}

void ar_controlled_failed(ar_controlled *c, const ar_case *cs, const ar_variant *v,
                          ar_mode mode, uint64_t iteration, uint64_t seed, ar_outcome o,
                          const char *detail)
{
    if (!c->sched)
        return;
    if (c->n_failing)
        c->failing[c->n_failing - 1].iteration = iteration;
    if (c->files[o][0] || c->replaying)
        return;                   /* the first schedule of each outcome is kept */
    if (make_dirs(c->schedules_dir) != 0) {
        fprintf(stderr, "asyncrace: cannot make '%s': %s\n", c->schedules_dir, strerror(errno));
        return;
    }
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/%s.%s.%s.%s.%llu.json", c->schedules_dir, cs->name,
             c->runner_name, v->name, ar_modes[mode].name, (unsigned long long)iteration);
    sim_schedule_id id = { cs->name, v->name, ar_modes[mode].name, NULL, c->params, c->n_params,
                           c->runner_name };
    if (c->sched->schedule_write(path, &id, iteration, seed, ar_outcome_names[o], detail,
                                 err, sizeof err) != 0) {
        fprintf(stderr, "asyncrace: %s\n", err);
        return;
    }
    snprintf(c->files[o], sizeof c->files[o], "%s", path);
    char log[560];
    snprintf(log, sizeof log, "%.500s.race-log.txt", path);
    if (ar_write_race_log(log) != 0)
        fprintf(stderr, "asyncrace: cannot write '%s': %s\n", log, strerror(errno));
}
