/* case_main.c: the program contract of docs/contract.md, shared by every case:
 * the command line, N seeded iterations in one process, the leak check around
 * each, the per-iteration deadline watchdog, the status file and the report.
 */
#include "controlled.h"
#include "iteration.h"
#include "report.h"
#include "status.h"
#include "sim/contexts.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const ar_case *c;
    const ar_runner *runner;
    const ar_variant *variant;
    ar_mode mode;
    uint64_t iterations, start, seed, deadline_ms, run_us;
    uint64_t programs;            /* a search stops once this many are searched to the end */
    uint64_t deadline_ns;         /* deadline_ms, stretched by ASYNCRACE_TIMEOUT_MULTIPLIER */
    int workers;                  /* 0 until parsed: the variant's */
    unsigned given;               /* bit (1 << flag_id) for each flag on the command line */
    bool trap;
    const char *status_path;
    const char *argv0;
    ar_controlled sim;            /* the flags for a runner that owns the schedule */
} options;

/* ---- bad input: one line, exit 2 ---- */

void ar_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "asyncrace: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* Decimal or 0x hex, within [min, max]. */
static uint64_t parse_number(const char *flag, const char *s, uint64_t min, uint64_t max)
{
    char *end = NULL;
    if (!*s || *s == '-' || *s == '+' || *s == ' ')
        ar_usage_error("%s needs a number from %llu to %llu, got '%s'", flag,
                    (unsigned long long)min, (unsigned long long)max, s);
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || errno == ERANGE || v < min || v > max)
        ar_usage_error("%s needs a number from %llu to %llu, got '%s'", flag,
                    (unsigned long long)min, (unsigned long long)max, s);
    return v;
}

static const char *variant_names(const ar_case *c)
{
    static char buf[512];
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_variants; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "",
                 c->variants[i].name);
    return buf;
}

static const char *mode_names(void)
{
    static char buf[128];
    buf[0] = '\0';
    for (int m = 0; m < AR_MODE_COUNT; m++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", m ? ", " : "",
                 ar_modes[m].name);
    return buf;
}

#define MAX_ITERATIONS 1000000000000ull     /* 10^12: far past any soak */
#define MAX_DEADLINE_MS 3600000ull          /* an hour */
#define MAX_RUN_US 60000000ull              /* a minute */

enum flag_id { F_RUNNER, F_VARIANT, F_MODE, F_ITERATIONS, F_START, F_SEED, F_WORKERS,
               F_DEADLINE, F_RUN_US, F_STATUS, F_TRAP, F_LIST, F_HELP,
               F_STRATEGY, F_BOUND, F_PCT_DEPTH, F_STEP_BOUND, F_SCHEDULE, F_SCHEDULES,
               F_RACE_LOG, F_SEARCH_STATE, F_EXPLAIN, F_SHARD, F_PROGRAMS };
static const struct { const char *name; enum flag_id id; bool value; } flags[] = {
    { "--runner", F_RUNNER, true }, { "--variant", F_VARIANT, true }, { "--mode", F_MODE, true },
    { "--iterations", F_ITERATIONS, true }, { "--start", F_START, true },
    { "--seed", F_SEED, true }, { "--workers", F_WORKERS, true },
    { "--deadline-ms", F_DEADLINE, true }, { "--run-us", F_RUN_US, true },
    { "--status", F_STATUS, true }, { "--trap", F_TRAP, false }, { "--list", F_LIST, false },
    { "--help", F_HELP, false }, { "-h", F_HELP, false },
    { "--strategy", F_STRATEGY, true }, { "--bound", F_BOUND, true },
    { "--pct-depth", F_PCT_DEPTH, true }, { "--step-bound", F_STEP_BOUND, true },
    { "--schedule", F_SCHEDULE, true }, { "--schedules", F_SCHEDULES, true },
    { "--race-log", F_RACE_LOG, true }, { "--search-state", F_SEARCH_STATE, true },
    { "--shard", F_SHARD, true }, { "--programs", F_PROGRAMS, true },
    { "--explain", F_EXPLAIN, true },
};
#define FLAG_NAMES "--runner --variant --mode --iterations --start --seed --workers " \
    "--deadline-ms --run-us --status --trap --list --help --strategy --bound --pct-depth " \
    "--step-bound --schedule --schedules --race-log --search-state --explain --shard " \
    "--programs"

static void usage(const ar_case *c, const char *argv0)
{
    printf("%s: %s\nupstream: %s\n\n"
           "usage: %s --runner NAME --variant NAME --mode NAME [--iterations N] [--start I]\n"
           "       [--seed S] [--workers W] [--deadline-ms T] [--run-us U] [--trap]\n"
           "       [--status FILE] [--race-log FILE] [--list]\n"
           "  sim, *_ctl (a runner that owns the schedule):\n"
           "        [--strategy random|pos|surw|pct|dfs|dfs-sleep|dpor|delay] [--bound P|none] [--pct-depth D]\n"
           "        [--step-bound N] [--schedule FILE [--explain PREFIX]] [--schedules DIR]\n"
           "        [--search-state FILE] [--shard K/N] [--programs N]\n\n"
           "  runners:  %s\n  variants: %s\n  modes:    %s\n\n"
           "Prints one JSON report; see docs/contract.md.\n",
           c->name, c->summary, c->upstream, argv0, ar_runner_names(), variant_names(c),
           mode_names());
}

static void apply(options *o, enum flag_id id, const char *flag, const char *v)
{
    const ar_case *c = o->c;
    switch (id) {
    case F_RUNNER:
        if (!(o->runner = ar_runner_find(v)))
            ar_usage_error("unknown runner '%s'; accepted: %s", v, ar_runner_names());
        break;
    case F_VARIANT:
        o->variant = NULL;        /* the last one given counts, and must be known */
        for (size_t k = 0; k < c->n_variants && !o->variant; k++)
            if (!strcmp(c->variants[k].name, v))
                o->variant = &c->variants[k];
        if (!o->variant)
            ar_usage_error("unknown variant '%s'; accepted: %s", v, variant_names(c));
        break;
    case F_MODE:
        o->mode = AR_MODE_COUNT;
        for (int k = 0; k < AR_MODE_COUNT; k++)
            if (!strcmp(ar_modes[k].name, v))
                o->mode = (ar_mode)k;
        if (o->mode == AR_MODE_COUNT)
            ar_usage_error("unknown mode '%s'; accepted: %s", v, mode_names());
        break;
    case F_ITERATIONS: o->iterations = parse_number(flag, v, 0, MAX_ITERATIONS); break;
    case F_START: o->start = parse_number(flag, v, 0, MAX_ITERATIONS); break;
    case F_SEED: o->seed = parse_number(flag, v, 0, UINT64_MAX); break;
    case F_WORKERS: o->workers = (int)parse_number(flag, v, 1, 64); break;
    case F_DEADLINE: o->deadline_ms = parse_number(flag, v, 1, MAX_DEADLINE_MS); break;
    case F_RUN_US: o->run_us = parse_number(flag, v, 0, MAX_RUN_US); break;
    case F_STATUS: o->status_path = v; break;
    case F_TRAP: o->trap = true; break;
    case F_LIST: ar_print_list(c); exit(0);
    case F_HELP: usage(c, o->argv0); exit(0);
    case F_STRATEGY: o->sim.strategy = v; break;
    case F_BOUND: {
        char *end = NULL;
        unsigned long long n = strtoull(v, &end, 10);
        if (strcmp(v, "none") && (!isdigit((unsigned char)*v) || *end || n > 16))
            ar_usage_error("--bound needs a number from 0 to 16, or none, got '%s'", v);
        o->sim.bound = strcmp(v, "none") ? (long)n : AR_BOUND_NONE;
        break;
    }
    case F_PCT_DEPTH: o->sim.pct_depth = (long)parse_number(flag, v, 1, 16); break;
    case F_STEP_BOUND: o->sim.step_bound = (long)parse_number(flag, v, 1000, 1000000000); break;
    case F_SCHEDULE: o->sim.schedule_path = v; break;
    case F_SCHEDULES: o->sim.schedules_dir = v; break;
    case F_RACE_LOG: o->sim.race_log_path = v; break;
    case F_SEARCH_STATE: o->sim.search_state_path = v; break;
    case F_EXPLAIN: o->sim.explain_prefix = v; break;
    case F_PROGRAMS: o->programs = parse_number(flag, v, 1, MAX_ITERATIONS); break;
    case F_SHARD: {               /* K/N as the driver's --shard: part K (1..N) of a search */
        unsigned k, n;
        char tail;
        if (sscanf(v, "%u/%u%c", &k, &n, &tail) != 2 || k < 1 || k > n || n > 1000000)
            ar_usage_error("--shard needs K/N with 1 <= K <= N <= 1000000, got '%s'", v);
        o->sim.shard = k - 1;
        o->sim.shards = n;
        break;
    }
    }
}

static options parse(const ar_case *c, int argc, char **argv)
{
    options o = { .c = c, .iterations = 1000, .seed = 1, .deadline_ms = 2000,
                  .run_us = c->default_run_us, .mode = AR_MODE_COUNT, .argv0 = argv[0],
                  .sim = { .bound = AR_BOUND_UNSET, .pct_depth = -1, .step_bound = -1 } };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        size_t k = 0, n = sizeof flags / sizeof flags[0];
        while (k < n && strcmp(flags[k].name, a) != 0)
            k++;
        if (k == n)
            ar_usage_error("unknown flag '%s'; accepted: " FLAG_NAMES, a);
        const char *v = NULL;
        if (flags[k].value) {
            if (i + 1 >= argc)
                ar_usage_error("%s needs a value", a);
            v = argv[++i];
        }
        apply(&o, flags[k].id, a, v);
        o.given |= 1u << flags[k].id;
    }
    if (!o.runner)
        ar_usage_error("--runner is required; accepted: %s", ar_runner_names());
    if (!o.variant)
        ar_usage_error("--variant is required; accepted: %s", variant_names(c));
    if (o.mode == AR_MODE_COUNT)
        ar_usage_error("--mode is required; accepted: %s", mode_names());
    if (o.start > MAX_ITERATIONS - o.iterations)
        ar_usage_error("--start plus --iterations must stay within %llu",
                    (unsigned long long)MAX_ITERATIONS);
    if (!ar_cell_exists(o.runner, o.mode))
        ar_usage_error("mode %s needs a runner that owns the schedule (sim); %s does not",
                    ar_modes[o.mode].name, o.runner->name);
    if (!o.workers)
        o.workers = o.variant->workers;
    return o;
}

static double deadline_multiplier(void);

/* The parameters that change what an iteration does, as a schedule file
 * records them. deadline_ns is the deadline in effect (the multiplier
 * applied): on sim it is virtual time, part of the program like the rest. */
static size_t program_params(const options *o, sim_param *p)
{
    p[0] = (sim_param){ "workers", (uint64_t)o->workers };
    p[1] = (sim_param){ "run_us", o->run_us };
    p[2] = (sim_param){ "deadline_ms", o->deadline_ms };
    p[3] = (sim_param){ "deadline_ns", o->deadline_ns };
    /* the flag's value: the schedule's own step bound is what a replay runs with */
    p[4] = (sim_param){ "step_bound", o->sim.step_bound >= 0 ? (uint64_t)o->sim.step_bound
                                                            : o->sim.options.step_bound };
    return 5;
}

/* A replay runs the program its schedule recorded: each parameter comes from
 * the file, and a flag that asks for another value is refused (a replay of
 * another program is no evidence of anything). */
static void take_recorded(options *o)
{
    static const struct { const char *name, *flag; enum flag_id id; } params[] = {
        { "workers", "--workers", F_WORKERS }, { "run_us", "--run-us", F_RUN_US },
        { "deadline_ms", "--deadline-ms", F_DEADLINE }, { "deadline_ns", NULL, F_DEADLINE },
        { "step_bound", "--step-bound", F_STEP_BOUND },
    };
    sim_param now[SIM_PARAMS_MAX];
    program_params(o, now);
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        uint64_t recorded;
        if (!ar_controlled_recorded(&o->sim, params[i].name, &recorded))
            ar_usage_error("schedule '%s' does not record %s: it cannot be replayed as it ran",
                           o->sim.schedule_path, params[i].name);
        if (params[i].flag && (o->given & (1u << params[i].id)) && now[i].value != recorded)
            ar_usage_error("schedule '%s' was recorded with %s %llu, not %llu: a replay runs the "
                           "program it recorded (leave the flag out)", o->sim.schedule_path,
                           params[i].flag, (unsigned long long)recorded,
                           (unsigned long long)now[i].value);
    }
    uint64_t v;
    ar_controlled_recorded(&o->sim, "workers", &v);
    o->workers = (int)v;
    ar_controlled_recorded(&o->sim, "run_us", &o->run_us);
    ar_controlled_recorded(&o->sim, "deadline_ms", &o->deadline_ms);
    ar_controlled_recorded(&o->sim, "deadline_ns", &o->deadline_ns);
}

/* ---- the case's own table, checked before anything runs ---- */

static void table_error(const ar_case *c, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void table_error(const ar_case *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "asyncrace: %s: case table: ", c->name);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static const ar_variant *find_variant(const ar_case *c, const char *name)
{
    for (size_t i = 0; i < c->n_variants; i++)
        if (!strcmp(c->variants[i].name, name))
            return &c->variants[i];
    return NULL;
}

static void check_table(const ar_case *c)
{
    if (!c->n_variants || !c->iteration || !c->scenario_size)
        table_error(c, "needs variants, an iteration and a scenario size");
    for (size_t i = 0; i < c->n_variants; i++) {
        const ar_variant *v = &c->variants[i];
        bool never = false;
        if (find_variant(c, v->name) != v)
            table_error(c, "two variants are named '%s'", v->name);
        if (v->workers < 1)
            table_error(c, "variant '%s' has no workers", v->name);
        for (int m = 0; m < AR_MODE_COUNT; m++) {
            ar_expect e = v->expect[m];
            if (e.kind == AR_UNDECLARED)
                table_error(c, "variant '%s' declares no expectation for mode %s", v->name,
                            ar_modes[m].name);
            if ((e.kind == AR_NEVER) != (e.outcome == AR_OK))
                table_error(c, "variant '%s', mode %s: a failing expectation needs its "
                            "outcome, and never needs none", v->name, ar_modes[m].name);
            never |= e.kind == AR_NEVER;
        }
        for (const ar_rarely *x = v->rarely; x && x->runner; x++)
            if (v->expect[x->mode].kind != AR_SOMETIMES || !x->why)
                table_error(c, "variant '%s': a rarely entry (runner '%s', mode %s) needs a mode "
                            "the variant shows sometimes, and the reason", v->name, x->runner,
                            ar_modes[x->mode].name);
        if (never && (!v->twin || !find_variant(c, v->twin) || !strcmp(v->twin, v->name)))
            table_error(c, "variant '%s' must never fail somewhere, so it names its twin "
                        "(the variant whose failure it fixes): got '%s'", v->name,
                        v->twin ? v->twin : "none");
    }
}

/* ---- the status file: progress a crash cannot take away ---- */

static ar_status_record *status_open(const char *path)
{
    static ar_status_record scratch;   /* when no --status: same code path, no file */
    ar_status_record *s = &scratch;
    if (path) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || ftruncate(fd, sizeof *s) != 0)
            ar_usage_error("cannot write the status file '%s'", path);
        s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (s == MAP_FAILED)
            ar_usage_error("cannot map the status file '%s'", path);
    }
    memset(s, 0, sizeof *s);
    memcpy(s->magic, AR_STATUS_MAGIC, sizeof AR_STATUS_MAGIC);
    s->first_failure_iteration = AR_STATUS_NO_FAILURE;
    return s;
}

/* ---- the run ---- */

static options opt;
static ar_status_record *status;
static ar_report report;
static _Atomic uint64_t watched_deadline_ns;   /* host clock; 0 between iterations */
static _Atomic bool watchdog_stop;
static pid_t driver_pid;          /* with --status: the driver that reads it */

static uint64_t iteration_seed(uint64_t run_seed, uint64_t index)
{
    uint64_t x = run_seed ^ (index * 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 31)) * 0x7fb5d329728ea185ull;
    x = (x ^ (x >> 27)) * 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

static void count_tag(const char *tag, ar_outcome o)
{
    if (!*tag)
        return;
    size_t t = 0;
    while (t < report.n_tags && strcmp(report.tags[t].name, tag) != 0)
        t++;
    if (t == report.n_tags) {
        if (t == sizeof report.tags / sizeof report.tags[0])
            return;               /* more kinds than a report shows: counted overall only */
        snprintf(report.tags[t].name, sizeof report.tags[t].name, "%s", tag);
        report.n_tags++;
    }
    report.tags[t].counts[o]++;
}

static void record(uint64_t index, uint64_t seed, ar_outcome o, const char *detail)
{
    report.counts[o]++;
    status->counts[o]++;
    if (o != AR_OK && !report.has_failure) {
        report.has_failure = true;
        report.failure_iteration = index;
        report.failure_seed = seed;
        report.failure_outcome = o;
        report.failure_after_s = (double)(ar_host_now_ns() - report.started_ns) / 1e9;
        snprintf(report.failure_detail, sizeof report.failure_detail, "%s", detail);
        status->first_failure_iteration = index;
        status->first_failure_outcome = (uint64_t)o;
        snprintf(status->first_failure_detail, sizeof status->first_failure_detail, "%s", detail);
    }
}

/* An iteration past its deadline plus a grace period could not unwind: its
 * threads are stuck, so count it, report, and leave (exit 3: resume later).
 * A host thread on the host clock: it watches whatever the runner does,
 * sim's virtual time included. */
static void *watchdog(void *arg)
{
    (void)arg;
    sim_threads_stay_outside();   /* real time, on purpose: not a task of any run */
    while (!atomic_load(&watchdog_stop)) {
        nanosleep(&(struct timespec){ 0, 20000000 }, NULL);
        /* A driver that died leaves nobody to read the status or the report:
         * don't go on running its batch (which may be long) as an orphan. */
        if (driver_pid && getppid() != driver_pid)
            _exit(1);
        uint64_t d = atomic_load(&watched_deadline_ns);
        if (!d || ar_host_now_ns() < d)
            continue;
        if (opt.trap) {
            ar_race_log_dump(stderr);
            fprintf(stderr, "asyncrace: trap: hang: iteration %llu stuck past its deadline\n",
                    (unsigned long long)status->current);
            abort();
        }
        uint64_t index = status->current;
        record(index, iteration_seed(opt.seed, index), AR_HANG,
               "stuck past the deadline; the watchdog ended the run");
        report.done = status->done + 1;
        report.next_iteration = index + 1;
        report.complete = false;
        ar_print_report(&report);
        fflush(stdout);
        _exit(3);
    }
    return NULL;
}

static double deadline_multiplier(void)
{
    const char *m = getenv("ASYNCRACE_TIMEOUT_MULTIPLIER");
    double v = m ? atof(m) : 1.0;
    return v > 0 ? v : 1.0;
}

/* ---- the leak check: what the runner holds open, before and after ---- */

/* A backend may open process-wide things on first use (libuv's signal pipe,
 * a lazily made worker pool): make that happen before the first count, so
 * every iteration is checked, the first one of a one-iteration replay too. */
static void warm_up(void *arg)
{
    const ar_runner *r = arg;
    ar_loop *loop = r->loop_new();
    if (loop)
        r->loop_free(loop);
    ar_mutex *m = r->mutex_new();
    ar_cond *cv = r->cond_new();
    r->cond_free(cv);
    r->mutex_free(m);
}

/* ---- one iteration, on the thread (or under the scheduler) runner->run gives it ---- */

typedef struct {
    ar_iter it;
    ar_iteration_setup setup;
    ar_outcome outcome;
    char detail[256];
    char tag[AR_TAG_BYTES];
} iteration_run;

static void run_iteration(void *arg)
{
    iteration_run *run = arg;
    run->setup.deadline_ns = ar_now_ns() + run->setup.deadline_ns;  /* relative until here */
    ar_iteration_begin(&run->setup);
    opt.c->iteration(&run->it, run->setup.scenario);
    run->outcome = ar_iteration_end(run->detail, sizeof run->detail, run->tag);
}

/* One iteration, with its leak check: scenario, resources before, the run
 * (under the scheduler on sim), resources after. */
static iteration_run run_one(uint64_t index, uint64_t seed)
{
    const ar_case *c = opt.c;
    void *scenario = calloc(1, c->scenario_size);
    if (!scenario) {
        fprintf(stderr, "asyncrace: out of memory\n");
        abort();
    }
    uint64_t deadline_ns = opt.deadline_ns;
    iteration_run run = {
        .it = { opt.runner, opt.variant, opt.mode, report.workers, index, seed, opt.run_us },
        .setup = { opt.mode, opt.trap, seed, deadline_ns, c->forced, scenario },
        /* What a run that never returns (sim ended it) is, unless sim says more. */
        .outcome = AR_HANG,
        .detail = "the iteration never returned",
    };
    ar_resources before, after;
    opt.runner->resources(&before);
    ar_controlled_before(&opt.sim, seed);
    atomic_store(&watched_deadline_ns, ar_host_now_ns() + deadline_ns * 3 / 2 + 100000000);
    opt.runner->run(run_iteration, &run);
    atomic_store(&watched_deadline_ns, 0);
    ar_controlled_after(&opt.sim, &run.outcome, run.detail, sizeof run.detail);
    free(scenario);
    opt.runner->resources(&after);

    char what[160];
    if (run.outcome == AR_OK && *ar_resources_grown(&before, &after, what, sizeof what)) {
        run.outcome = AR_LEAK;
        snprintf(run.detail, sizeof run.detail, "still open after the iteration: %s", what);
    }
    return run;
}

/* --explain: the replayed iteration once more, under the shrinker's schedule. */
typedef struct { uint64_t index, seed; } replayed_iteration;

static ar_outcome run_again(void *arg, char *detail, size_t n)
{
    const replayed_iteration *r = arg;
    iteration_run run = run_one(r->index, r->seed);
    snprintf(detail, n, "%s", run.detail);
    return run.outcome;
}

int ar_case_main(const ar_case *c, int argc, char **argv)
{
    check_table(c);
    opt = parse(c, argc, argv);
    opt.deadline_ns = (uint64_t)((double)opt.deadline_ms * 1e6 * deadline_multiplier());
    status = status_open(opt.status_path);
    if (opt.status_path)
        driver_pid = getppid();
    ar_race_use_runner(opt.runner);

    report = (ar_report){ .c = c, .runner = opt.runner, .variant = opt.variant, .mode = opt.mode,
                          .seed = opt.seed, .start = opt.start,
                          .argv0 = opt.argv0,
                          .started_ns = ar_host_now_ns(), .complete = true };
    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, NULL) != 0)
        ar_usage_error("cannot start the watchdog thread");
    opt.runner->run(warm_up, (void *)opt.runner);
    ar_controlled *sim = &opt.sim;      /* after the warm-up, which is no schedule */
    ar_controlled_setup(sim, c, opt.runner, opt.variant, opt.mode, iteration_seed(opt.seed, 0));
    if (opt.programs && !sim->searching)
        ar_usage_error("--programs counts the programs a search (dfs, dfs-sleep, dpor, delay: "
                       "--mode exhaustive) searched to the end; this run is no search");
    if (sim->replaying)
        take_recorded(&opt);
    sim_param params[SIM_PARAMS_MAX];
    ar_controlled_params(sim, params, program_params(&opt, params));
    report.workers = opt.workers;
    report.deadline_ms = opt.deadline_ms;
    report.run_us = opt.run_us;
    report.sim = sim;

    uint64_t first = opt.start, count = opt.iterations, done = 0;
    if (sim->replaying) {
        first = ar_controlled_replay_iteration(sim);
        count = 1;
        report.start = first;
    }
    /* A search's iteration i is its i-th schedule: resuming one at --start
     * goes on from the state an earlier batch saved (--search-state), and
     * makes only the schedules after that again, uncounted. */
    sim->uncounted = true;
    for (uint64_t i = ar_controlled_resume(sim, first); sim->searching && i < first; i++) {
        run_one(i, ar_controlled_seed(sim, i, iteration_seed));
        sim->rerun++;
    }
    /* A strategy that profiles (pct, surw) does it on the run's first iterations'
     * seeds in every process: iteration i's schedule is the same whatever the
     * batches. */
    int profile = sim->sched && !sim->replaying ? sim->sched->profile_runs() : 0;
    for (int k = 0; k < profile; k++)
        run_one((uint64_t)k, iteration_seed(opt.seed, (uint64_t)k));
    sim->uncounted = false;
    for (uint64_t i = first; i < first + count; i++) {
        status->current = i;
        uint64_t seed = sim->replaying ? ar_controlled_replay_seed(sim)
                                       : ar_controlled_seed(sim, i, iteration_seed);
        iteration_run run = run_one(i, seed);
        bool first_failure = run.outcome != AR_OK && !report.has_failure;
        record(i, seed, run.outcome, run.detail);
        count_tag(run.tag, run.outcome);
        if (run.outcome != AR_OK)
            ar_controlled_failed(sim, c, opt.variant, opt.mode, i, seed, run.outcome, run.detail);
        if (first_failure || sim->replaying)
            ar_controlled_write_race_log(sim);
        done++;
        status->done++;
        __atomic_store_n(&status->current, i + 1, __ATOMIC_RELEASE);
        if (opt.programs && sim->exhausted && sim->programs_exhausted + 1 >= opt.programs)
            break;                /* --programs: the last one asked for is searched */
    }
    if (sim->replaying) {
        replayed_iteration r = { first, ar_controlled_replay_seed(sim) };
        ar_controlled_explain(sim, c, opt.variant, opt.mode, run_again, &r);
    }
    ar_controlled_save_search(sim, first + done);
    atomic_store(&watchdog_stop, true);
    pthread_join(wd, NULL);
    report.done = done;
    report.next_iteration = first + done;
    ar_print_report(&report);
    return 0;
}
