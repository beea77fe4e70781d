/* case_main.c: the program contract of docs/contract.md, shared by every case:
 * the command line, N seeded iterations in one process, the per-iteration
 * deadline watchdog, the status file and the JSON report.
 */
#include "iteration.h"
#include "report.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    const ar_case *c;
    const ar_runner *runner;
    const ar_variant *variant;
    ar_mode mode;
    uint64_t iterations, start, seed, deadline_ms, run_us;
    int workers;                  /* 0: the variant's */
    bool trap;
    const char *status_path;
    const char *argv0;
} options;

/* ---- bad input: one line, exit 2 ---- */

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "asyncrace: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static uint64_t parse_number(const char *flag, const char *s)
{
    char *end = NULL;
    if (!s || !*s || *s == '-')
        usage_error("%s needs a non-negative number, got '%s'", flag, s ? s : "");
    unsigned long long v = strtoull(s, &end, 0);
    if (*end)
        usage_error("%s needs a non-negative number, got '%s'", flag, s);
    return v;
}

static const char *variant_names(const ar_case *c)
{
    static char buf[256];
    buf[0] = '\0';
    for (size_t i = 0; i < c->n_variants; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "",
                 c->variants[i].name);
    return buf;
}

static void usage(const ar_case *c, const char *argv0)
{
    printf("%s: %s\nupstream: %s\n\n"
           "usage: %s --runner NAME --variant NAME --mode NAME [--iterations N] [--start I]\n"
           "       [--seed S] [--workers W] [--deadline-ms T] [--run-us U] [--trap]\n"
           "       [--status FILE] [--list]\n\n"
           "  runners:  %s\n  variants: %s\n  modes:    natural, chaos, forced\n\n"
           "Prints one JSON report; see docs/contract.md.\n",
           c->name, c->summary, c->upstream, argv0, ar_runner_names(), variant_names(c));
}

static options parse(const ar_case *c, int argc, char **argv)
{
    options o = { .c = c, .iterations = 1000, .seed = 1, .deadline_ms = 2000,
                  .run_us = c->default_run_us,
                  .mode = AR_MODE_COUNT, .argv0 = argv[0] };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(c, argv[0]);
            exit(0);
        } else if (!strcmp(a, "--list")) {
            ar_print_list(c);
            exit(0);
        } else if (!strcmp(a, "--trap")) {
            o.trap = true;
            takes_value = false;
        } else if (!v) {
            usage_error("%s needs a value", a);
        } else if (!strcmp(a, "--runner")) {
            if (!(o.runner = ar_runner_find(v)))
                usage_error("unknown runner '%s'; accepted: %s", v, ar_runner_names());
        } else if (!strcmp(a, "--variant")) {
            for (size_t k = 0; k < c->n_variants; k++)
                if (!strcmp(c->variants[k].name, v))
                    o.variant = &c->variants[k];
            if (!o.variant)
                usage_error("unknown variant '%s'; accepted: %s", v, variant_names(c));
        } else if (!strcmp(a, "--mode")) {
            for (int k = 0; k < AR_MODE_COUNT; k++)
                if (!strcmp(ar_mode_names[k], v))
                    o.mode = (ar_mode)k;
            if (o.mode == AR_MODE_COUNT)
                usage_error("unknown mode '%s'; accepted: natural, chaos, forced", v);
        } else if (!strcmp(a, "--iterations")) {
            o.iterations = parse_number(a, v);
        } else if (!strcmp(a, "--start")) {
            o.start = parse_number(a, v);
        } else if (!strcmp(a, "--seed")) {
            o.seed = parse_number(a, v);
        } else if (!strcmp(a, "--workers")) {
            uint64_t w = parse_number(a, v);
            if (w < 1 || w > 64)
                usage_error("--workers must be 1..64, got '%s'", v);
            o.workers = (int)w;
        } else if (!strcmp(a, "--deadline-ms")) {
            o.deadline_ms = parse_number(a, v);
            if (o.deadline_ms == 0)
                usage_error("--deadline-ms must be at least 1, got '%s'", v);
        } else if (!strcmp(a, "--run-us")) {
            o.run_us = parse_number(a, v);
        } else if (!strcmp(a, "--status")) {
            o.status_path = v;
        } else {
            usage_error("unknown flag '%s'; accepted: %s", a,
                        "--runner --variant --mode --iterations --start --seed --workers "
                        "--deadline-ms --run-us --trap --status --list --help");
        }
        if (takes_value)
            i++;
    }
    if (!o.runner)
        usage_error("--runner is required; accepted: %s", ar_runner_names());
    if (!o.variant)
        usage_error("--variant is required; accepted: %s", variant_names(c));
    if (o.mode == AR_MODE_COUNT)
        usage_error("--mode is required; accepted: natural, chaos, forced");
    return o;
}

/* ---- the status file: progress a crash cannot take away ---- */

typedef struct {
    char magic[8];
    uint64_t current, done;
    uint64_t counts[AR_OUTCOME_COUNT];
    uint64_t first_failure_iteration, first_failure_outcome;
    char first_failure_detail[256];
} status_record;
_Static_assert(sizeof(status_record) == 368, "status record layout is part of the contract");

static status_record *status_open(const char *path)
{
    static status_record scratch;   /* when no --status: same code path, no file */
    status_record *s = &scratch;
    if (path) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || ftruncate(fd, sizeof *s) != 0)
            usage_error("cannot write the status file '%s'", path);
        s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (s == MAP_FAILED)
            usage_error("cannot map the status file '%s'", path);
    }
    memset(s, 0, sizeof *s);
    memcpy(s->magic, "ARSTAT1", 8);
    s->first_failure_iteration = UINT64_MAX;
    return s;
}

/* ---- the run ---- */

static options opt;
static status_record *status;
static ar_report report;
static _Atomic uint64_t watched_deadline_ns;   /* 0 between iterations */
static _Atomic bool watchdog_stop;

static uint64_t iteration_seed(uint64_t run_seed, uint64_t index)
{
    uint64_t x = run_seed ^ (index * 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 31)) * 0x7fb5d329728ea185ull;
    x = (x ^ (x >> 27)) * 0x81dadef4bc2dd44dull;
    return x ^ (x >> 33);
}

static void record(uint64_t index, ar_outcome o, const char *detail)
{
    report.counts[o]++;
    status->counts[o]++;
    if (o != AR_OK && !report.has_failure) {
        report.has_failure = true;
        report.failure_iteration = index;
        report.failure_seed = iteration_seed(opt.seed, index);
        report.failure_outcome = o;
        report.failure_after_s = (double)(ar_now_ns() - report.started_ns) / 1e9;
        snprintf(report.failure_detail, sizeof report.failure_detail, "%s", detail);
        status->first_failure_iteration = index;
        status->first_failure_outcome = (uint64_t)o;
        snprintf(status->first_failure_detail, sizeof status->first_failure_detail, "%s", detail);
    }
}

/* An iteration past its deadline plus a grace period could not unwind: its
 * threads are stuck, so count it, report, and leave (exit 3: resume later). */
static void watchdog(void *arg)
{
    while (!atomic_load(&watchdog_stop)) {
        ar_sleep_us(20000);
        uint64_t d = atomic_load(&watched_deadline_ns);
        if (!d || ar_now_ns() < d)
            continue;
        if (opt.trap) {
            ar_race_log_dump(stderr);
            fprintf(stderr, "asyncrace: trap: hang: iteration %llu stuck past its deadline\n",
                    (unsigned long long)status->current);
            abort();
        }
        uint64_t index = status->current;
        record(index, AR_HANG, "stuck past the deadline; the watchdog ended the run");
        report.done = status->done + 1;
        report.next_iteration = index + 1;
        report.complete = false;
        ar_print_report(&report);
        fflush(stdout);
        _exit(3);
    }
}

static double deadline_multiplier(void)
{
    const char *m = getenv("ASYNCRACE_TIMEOUT_MULTIPLIER");
    double v = m ? atof(m) : 1.0;
    return v > 0 ? v : 1.0;
}

int ar_case_main(const ar_case *c, int argc, char **argv)
{
    opt = parse(c, argc, argv);
    status = status_open(opt.status_path);
    uint64_t deadline_ns = (uint64_t)((double)opt.deadline_ms * 1e6 * deadline_multiplier());

    report = (ar_report){ .c = c, .runner = opt.runner, .variant = opt.variant, .mode = opt.mode,
                          .seed = opt.seed, .start = opt.start,
                          .workers = opt.workers ? opt.workers : opt.variant->workers,
                          .deadline_ms = opt.deadline_ms, .run_us = opt.run_us,
                          .argv0 = opt.argv0,
                          .started_ns = ar_now_ns(), .complete = true };
    ar_thread *wd = opt.runner->thread_start(watchdog, NULL);
    if (!wd)
        usage_error("cannot start the watchdog thread");

    for (uint64_t i = opt.start; i < opt.start + opt.iterations; i++) {
        status->current = i;
        ar_iter it = { opt.runner, opt.variant, opt.mode, report.workers, i,
                       iteration_seed(opt.seed, i), opt.run_us };
        ar_iteration_setup s = { c, opt.runner, opt.mode, opt.trap, it.seed,
                                 ar_now_ns() + deadline_ns };
        ar_iteration_begin(&s);
        atomic_store(&watched_deadline_ns, s.deadline_ns + deadline_ns / 2 + 100000000);
        c->iteration(&it);
        atomic_store(&watched_deadline_ns, 0);

        char detail[256];
        ar_outcome o = ar_iteration_end(detail, sizeof detail);
        record(i, o, detail);
        status->done++;
        __atomic_store_n(&status->current, i + 1, __ATOMIC_RELEASE);
    }
    atomic_store(&watchdog_stop, true);
    opt.runner->thread_join(wd);
    report.done = opt.iterations;
    report.next_iteration = opt.start + opt.iterations;
    ar_print_report(&report);
    return 0;
}
