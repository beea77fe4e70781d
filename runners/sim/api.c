/* api.c: sim.h's strategy choice, schedules and results, on the core. */
#include "sim.h"
#include "sim_private.h"
#include "log.h"
#include "sched.h"
#include "contexts.h"
#include "strategy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct sim_api_state {
    bool configured;
    sim_options opt;
    char strategy_name[16];
    sim_strategy *strategy;
    sim_strategy *replay;        /* set while replaying */
    const sim_schedule *replaying;
    sim_strategy *guide;         /* set while shrinking a replayed schedule */
    uint64_t guide_step_bound;   /* its tries' step bound; 0: the schedule's */
    sim_strategy *running;       /* the one deciding the current run */
    const char *last_strategy;
    uint64_t last_step_ns, last_step_bound;
    uint64_t seed, index, run_hash;
    uint64_t run_seed;            /* the current (or last) run's: a replay's is its file's */
    bool have_result;
    sim_run_result rr;
    sim_result res;
    char divergence[320];
    char describe[256];
};

/* sim.h's state is an instance too (sim_core_new); A is the current one. */
static struct sim_api_state first_api;
static struct sim_api_state *A = &first_api;

/* ---- instances ---- */

struct sim_core {
    sim_sched_state *sched;      /* the first core's is filled in when another is used */
    struct sim_api_state *api;
};

static sim_core first_core = { NULL, &first_api };
static sim_core *current_core = &first_core;

sim_core *sim_core_new(void)
{
    sim_core *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->sched = sim_sched_state_new();
    c->api = calloc(1, sizeof *c->api);
    if (!c->sched || !c->api) {
        free(c->api);
        free(c->sched);
        free(c);
        return NULL;
    }
    return c;
}

sim_core *sim_core_use(sim_core *c)
{
    sim_core *was = current_core;
    was->sched = sim_sched_state_use(c->sched);
    A = c->api;
    current_core = c;
    return was;
}

void sim_core_free(sim_core *c)
{
    if (!c || c == current_core || c == &first_core)
        return;
    if (c->api->strategy)
        c->api->strategy->destroy(c->api->strategy);
    if (c->api->replay)
        c->api->replay->destroy(c->api->replay);
    sim_sched_state_free(c->sched);
    free(c->api);
    free(c);
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void drop_replay(void)
{
    if (A->replay)
        A->replay->destroy(A->replay);
    A->replay = NULL;
    A->replaying = NULL;
}

/* The strategies, by name: the one table that knows them. A maker checks the
 * options it reads (one line in err) and builds the strategy. */
typedef sim_strategy *make_fn(const sim_options *o, char *err, size_t n);

static sim_strategy *make_random(const sim_options *o, char *err, size_t n) { return sim_random_new(); }
static sim_strategy *make_pos(const sim_options *o, char *err, size_t n) { return sim_pos_new(); }
static sim_strategy *make_surw(const sim_options *o, char *err, size_t n) { return sim_surw_new(); }

static sim_strategy *make_pct(const sim_options *o, char *err, size_t n)
{
    if (o->pct_depth < 1 || o->pct_depth > 16) {
        snprintf(err, n, "pct depth must be 1..16, got %d", o->pct_depth);
        return NULL;
    }
    return sim_pct_new(o->pct_depth, o->pct_steps);
}

static sim_strategy *make_search(const sim_options *o, bool delays, bool sleep, char *err, size_t n)
{
    if (o->dfs_bound < -1 || o->dfs_bound > 64) {
        snprintf(err, n, "%s bound must be 0..64 or -1 (none), got %d", o->strategy, o->dfs_bound);
        return NULL;
    }
    sim_strategy *s = strcmp(o->strategy, "dpor") ? sim_dfs_new(o->dfs_bound, delays, sleep)
                                                  : sim_dpor_new(o->dfs_bound);
    if (s && o->shards > 1 && !sim_dfs_shard(s, o->shard, o->shards)) {
        snprintf(err, n, "dpor cannot be sharded (its frames above the cut learn from every "
                 "shard's races): use dfs-sleep");
        s->destroy(s);
        return NULL;
    }
    return s;
}

static sim_strategy *make_dfs(const sim_options *o, char *err, size_t n)
{
    return make_search(o, false, false, err, n);
}

static sim_strategy *make_dfs_sleep(const sim_options *o, char *err, size_t n)
{
    return make_search(o, false, true, err, n);
}

static sim_strategy *make_delay(const sim_options *o, char *err, size_t n)
{
    return make_search(o, true, false, err, n);
}

static sim_strategy *make_dpor(const sim_options *o, char *err, size_t n)
{
    return make_search(o, false, true, err, n);
}

static const struct {
    const char *name;
    make_fn *make;
} strategies[] = {
    { "random", make_random }, { "pos", make_pos }, { "surw", make_surw }, { "pct", make_pct },
    { "dfs", make_dfs }, { "dfs-sleep", make_dfs_sleep }, { "dpor", make_dpor },
    { "delay", make_delay },
};

const char *sim_strategy_names(void)
{
    static char names[128];
    if (!names[0])
        for (size_t k = 0; k < sizeof strategies / sizeof *strategies; k++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "",
                     strategies[k].name);
    return names;
}

int sim_configure(const sim_options *o, char *err, size_t n)
{
    const char *name = o->strategy ? o->strategy : "random";
    size_t k = 0;
    while (k < sizeof strategies / sizeof *strategies && strcmp(strategies[k].name, name))
        k++;
    if (k == sizeof strategies / sizeof *strategies) {
        snprintf(err, n, "unknown sim strategy '%s' (accepted: %s)", name, sim_strategy_names());
        return -1;
    }
    sim_options named = *o;
    named.strategy = name;
    err[0] = '\0';
    sim_strategy *s = strategies[k].make(&named, err, n);
    if (!s) {
        if (!err[0])
            snprintf(err, n, "out of memory");
        return -1;
    }
    if (o->shards > 1 && !s->exhausted) {
        snprintf(err, n, "a shard is part of a search: %s is not one (dfs, dfs-sleep, delay)", name);
        s->destroy(s);
        return -1;
    }
    if (A->strategy)
        A->strategy->destroy(A->strategy);
    drop_replay();
    A->guide = NULL;
    A->strategy = s;
    A->opt = *o;
    snprintf(A->strategy_name, sizeof A->strategy_name, "%s", name);
    A->opt.strategy = A->strategy_name;
    A->index = 0;
    A->run_hash = 0;
    A->have_result = false;
    A->configured = true;
    sim_sched_configure(&(sim_sched_config){ A->strategy, o->step_bound, o->step_ns, true,
                                             o->threads ? &sim_threads : NULL, 0 });
    return 0;
}

void sim_api_ready(void)
{
    if (A->configured)
        return;
    sim_options d = SIM_OPTIONS_DEFAULT;
    char err[128];
    if (sim_configure(&d, err, sizeof err) != 0) {
        fprintf(stderr, "sim: %s\n", err);
        abort();
    }
}

const sim_options *sim_api_options(void) { return &A->opt; }
uint64_t sim_api_seed(void) { return A->seed; }
uint64_t sim_run_seed(void) { return A->run_seed; }

void sim_set_seed(uint64_t seed) { A->seed = seed; }

bool sim_searching(void) { return A->strategy && A->strategy->exhausted; }

bool sim_exhausted(void)
{
    return sim_searching() && !A->replaying && A->strategy->exhausted(A->strategy);
}

int sim_profile_runs(void)
{
    return A->strategy && !A->replaying ? A->strategy->profile_runs : 0;
}

void sim_search_save(FILE *f)
{
    if (sim_searching())
        A->strategy->save(A->strategy, f);
}

bool sim_search_restore(FILE *f, char *err, size_t n)
{
    if (!sim_searching() || A->replaying) {
        snprintf(err, n, "no search is configured");
        return false;
    }
    if (!A->strategy->restore(A->strategy, f)) {
        snprintf(err, n, "not a state of a %s search at bound %d", A->opt.strategy, A->opt.dfs_bound);
        return false;
    }
    return true;
}

const char *sim_describe(void)
{
    sim_api_ready();
    const sim_options *o = &A->opt;
    char params[160] = "";
    if (A->replaying) {
        snprintf(params, sizeof params, "of a %s schedule, ", sim_schedule_strategy(A->replaying));
    } else if (A->strategy->describe) {
        A->strategy->describe(A->strategy, params, sizeof params - 2);
        strcat(params, ", ");
    }
    snprintf(A->describe, sizeof A->describe, "%s(%sstep_ns=%llu, step_bound=%llu)",
             A->replaying ? "replay" : o->strategy, params,
             (unsigned long long)(A->replaying ? sim_schedule_step_ns(A->replaying) : o->step_ns),
             (unsigned long long)(A->replaying ? sim_schedule_step_bound(A->replaying) : o->step_bound));
    return A->describe;
}

void sim_replay(const sim_schedule *s)
{
    sim_api_ready();
    drop_replay();
    A->guide = NULL;
    if (s) {
        A->replay = sim_replay_new(sim_schedule_log(s));
        A->replaying = s;
    }
}

void sim_guide_step_bound(uint64_t n) { A->guide_step_bound = n; }

void sim_guide(sim_strategy *s)
{
    A->guide = A->replaying ? s : NULL;
}

const char *sim_api_last_strategy(void) { return A->last_strategy ? A->last_strategy : A->opt.strategy; }
uint64_t sim_api_last_step_ns(void) { return A->last_step_ns; }
uint64_t sim_api_last_step_bound(void) { return A->last_step_bound; }

void sim_run(void (*fn)(void *), void *arg)
{
    sim_api_ready();
    sim_strategy *s = A->guide ? A->guide : A->replaying ? A->replay : A->strategy;
    uint64_t step_bound = A->replaying ? sim_schedule_step_bound(A->replaying) : A->opt.step_bound;
    if (A->guide && A->guide_step_bound && (!step_bound || A->guide_step_bound < step_bound))
        step_bound = A->guide_step_bound;
    uint64_t step_ns = A->replaying ? sim_schedule_step_ns(A->replaying) : A->opt.step_ns;
    uint64_t seed = A->replaying ? sim_schedule_seed(A->replaying) : A->seed;
    A->run_seed = seed;
    A->last_strategy = A->guide ? "minimal" : A->replaying ? sim_schedule_strategy(A->replaying)
                                                        : A->opt.strategy;
    A->last_step_ns = step_ns;
    A->last_step_bound = step_bound;
    sim_sched_configure(&(sim_sched_config){ s, step_bound, step_ns, true,
                                             A->opt.threads ? &sim_threads : NULL,
                                             A->opt.step_jitter ? mix64(seed ^ 0x717e5ull) | 1 : 0 });
    s->begin(s, mix64(seed ^ 0x51ed5c4edull));
    A->running = s;
    sim_sched_run(fn, arg, &A->rr);
    s->end(s, &A->rr);

    const char *div = s->divergence ? s->divergence(s) : "";
    snprintf(A->divergence, sizeof A->divergence, "%s", div);
    uint64_t hash = sim_log_hash(sim_sched_log());
    A->run_hash = mix64(A->run_hash ^ hash);
    A->res = (sim_result){
        .status = A->rr.status, .detail = A->rr.detail, .index = A->index++,
        .steps = A->rr.steps, .decisions = A->rr.decisions, .tasks = A->rr.tasks,
        .virtual_ns = A->rr.virtual_ns, .hash = hash, .run_hash = A->run_hash,
        .diverged = A->divergence[0] != '\0', .divergence = A->divergence,
        .foreign = s->foreign && s->foreign(s),
    };
    A->have_result = true;
}

void sim_result_so_far(void)
{
    sim_sched_result_so_far(&A->rr);
    A->running->end(A->running, &A->rr);   /* a search learns the schedule and moves on */
    uint64_t hash = sim_log_hash(sim_sched_log());
    const char *div = A->running->divergence ? A->running->divergence(A->running) : "";
    snprintf(A->divergence, sizeof A->divergence, "%s", div);
    A->res = (sim_result){
        .status = SIM_OK, .detail = "", .index = A->index++, .steps = A->rr.steps,
        .decisions = A->rr.decisions, .tasks = A->rr.tasks, .virtual_ns = A->rr.virtual_ns,
        .hash = hash, .run_hash = mix64(A->run_hash ^ hash),
        .diverged = A->divergence[0] != '\0', .divergence = A->divergence,
        .foreign = A->running->foreign && A->running->foreign(A->running),
    };
    A->have_result = true;
}

const sim_result *sim_last_result(void) { return A->have_result ? &A->res : NULL; }
char *sim_last_compact(void) { return sim_log_compact(sim_sched_log()); }
