/* preload.c: libasyncrace_sched.so, the scheduler for an unmodified,
 * dynamically linked program (LD_PRELOAD). The interposer (runners/controlled/)
 * and the core (runners/sim/) are the case programs' own; this file only
 * makes the program's main the first task of one run:
 *
 *   - __libc_start_main is taken, so the program's main runs as task 1 of a
 *     run on threads; the process's first thread is the run's host;
 *   - one run per process: when main returns, or a task calls exit, the run
 *     ends there (other threads are dropped where they wait, as a process's
 *     are), the schedule and the result are written, and the process exits
 *     with main's status. A task that dies on a signal writes them from the
 *     handler first, then dies of it;
 *   - the environment configures it (docs/preload.md): ASYNCRACE_STRATEGY,
 *     _SEED, _BOUND, _PCT_DEPTH, _PCT_STEPS, _STEP_BOUND, _STUCK_MS,
 *     _SCHEDULE (write this run's schedule), _REPLAY (follow that one),
 *     _SEARCH_STATE (a dfs or delay search carried from process to process),
 *     _RESULT (one JSON object: how the run ended), _EXPLAIN (with _REPLAY:
 *     the failing schedule cut down and told, explain.c).
 */
#include "controlled/interpose.h"
#include "preload.h"
#include "sim/contexts.h"
#include "sim/log.h"
#include "sim/sim.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/personality.h>
#include <unistd.h>

typedef int (*main_fn)(int, char **, char **);

static struct {
    main_fn main;
    int argc;
    char **argv, **envp;
    int code;                     /* main's return or exit's status */
    char how[160];                /* "main returned 0", "exit(3) from task 2" */
    const char *schedule, *result, *state;
    bool searching;
    sim_schedule *replay;
    int report_fd;                /* an explaining try (explain.c): how it ended goes here */
} prog = { .report_fd = -1 };

_Noreturn void preload_bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "asyncrace_sched: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    REAL(_exit)(2);
    __builtin_unreachable();
}

static const char *env(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *v = env(name, NULL);
    if (!v)
        return dflt;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || *v == '-')
        preload_bad("%s=%s: not a number", name, v);
    return x;
}

static const char *program_name(void)
{
    const char *slash = strrchr(prog.argv[0], '/');
    return slash ? slash + 1 : prog.argv[0];
}

/* ---- how the run ended, written atomically ---- */

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGABRT: return "SIGABRT";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    default: return "signal";
    }
}

static void write_atomically(const char *path, void (*body)(FILE *, void *), void *arg)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "asyncrace_sched: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    body(f, arg);
    bool ok = fflush(f) == 0 && !ferror(f);
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "asyncrace_sched: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
}

static void result_body(FILE *f, void *arg)
{
    const verdict *v = arg;
    const sim_result *r = sim_last_result();
    fputs("{\"outcome\": ", f);
    sim_json_string(f, v->outcome);
    fputs(", \"detail\": ", f);
    sim_json_string(f, v->detail);
    fprintf(f, ", \"exit_code\": %d, \"signal\": %d, \"status\": ", v->code, v->sig);
    sim_json_string(f, r ? sim_status_names[r->status] : "none");
    fputs(", \"strategy\": ", f);
    sim_json_string(f, sim_describe());
    fprintf(f, ", \"seed\": %" PRIu64 ", \"steps\": %" PRIu64 ", \"decisions\": %" PRIu64
            ", \"tasks\": %" PRIu64 ", \"virtual_ns\": %" PRIu64 ", \"hash\": \"%016" PRIx64
            "\", \"exhausted\": %s, \"replayed\": %s, \"diverged\": %s, \"divergence\": ",
            sim_run_seed(), r ? r->steps : 0, r ? r->decisions : 0, r ? r->tasks : 0,
            r ? r->virtual_ns : 0, r ? r->hash : 0, sim_exhausted() ? "true" : "false",
            prog.replay ? "true" : "false", r && r->diverged ? "true" : "false");
    sim_json_string(f, r ? r->divergence : "");
    unsigned long traps, steps;
    preload_point_counts(&traps, &steps);
    fprintf(f, ", \"point_traps\": %lu, \"point_steps\": %lu}\n", traps, steps);
}

static void state_body(FILE *f, void *arg)
{
    (void)arg;
    sim_search_save(f);
}

static void record(const verdict *v)
{
    if (prog.schedule && sim_last_result()) {
        char err[256];
        sim_schedule_id id = { .case_name = program_name(), .variant = "", .mode = "preload",
                               .runner = "preload" };
        if (sim_schedule_write(prog.schedule, &id, 0, sim_run_seed(), v->outcome, v->detail,
                               err, sizeof err) != 0)
            fprintf(stderr, "asyncrace_sched: %s\n", err);
    }
    if (prog.report_fd >= 0)
        preload_report(prog.report_fd, v);
    if (prog.state && prog.searching)
        write_atomically(prog.state, state_body, NULL);
    if (prog.result)
        write_atomically(prog.result, result_body, (void *)v);
}

/* A task dies of a signal (abort, a fault): the decisions so far are the
 * schedule (replayed, they bring it to the same point), then it dies of it. */
static void on_fatal(int sig)
{
    if (sim_caller_is_task()) {
        char detail[200];
        snprintf(detail, sizeof detail, "%s in task %d", signal_name(sig), sim_task_id(sim_self()));
        sim_result_so_far();
        record(&(verdict){ "signal", detail, 128 + sig, sig });
    }
    raise(sig);                   /* SA_RESETHAND: the default action now */
}

static void catch_fatal(void)
{
    static const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
        struct sigaction sa = { .sa_handler = on_fatal, .sa_flags = SA_NODEFER | SA_RESETHAND };
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* ---- the run ---- */

/* A task's exit ends the run as the process's exit would end its threads. */
static void exit_from_task(const char *call, int code)
{
    if (!sim_caller_is_task())
        return;
    prog.code = code;
    snprintf(prog.how, sizeof prog.how, "%s(%d) from task %d", call, code, sim_task_id(sim_self()));
    sim_end_run("%s", prog.how);
}

_Noreturn void exit(int code)
{
    exit_from_task("exit", code);
    REAL(exit)(code);
    __builtin_unreachable();
}

_Noreturn void _exit(int code)
{
    exit_from_task("_exit", code);
    REAL(_exit)(code);
    __builtin_unreachable();
}

static void task_main(void *unused)
{
    (void)unused;
    prog.code = prog.main(prog.argc, prog.argv, prog.envp);
    snprintf(prog.how, sizeof prog.how, "main returned %d", prog.code);
    sim_end_run("%s", prog.how);
}

static void configure(void)
{
    sim_options o = SIM_OPTIONS_DEFAULT;
    o.threads = true;
    o.step_jitter = true;
    o.strategy = env("ASYNCRACE_STRATEGY", "pct");
    o.pct_depth = (int)env_u64("ASYNCRACE_PCT_DEPTH", 3);
    o.pct_steps = env_u64("ASYNCRACE_PCT_STEPS", 0);
    const char *bound = env("ASYNCRACE_BOUND", "2");
    o.dfs_bound = !strcmp(bound, "none") ? -1 : (int)env_u64("ASYNCRACE_BOUND", 2);
    o.step_bound = env_u64("ASYNCRACE_STEP_BOUND", o.step_bound);
    sim_threads_set_stuck_ms((unsigned)env_u64("ASYNCRACE_STUCK_MS", 2000));
    char err[256];
    /* An explainer runs the program only in its tries (each traps its own escapes), and
     * runs the judge: a filter here would follow it into the judge's exec. */
    bool explainer = env("ASYNCRACE_EXPLAIN", NULL) != NULL;
    if ((!explainer && ar_trap_escapes(err, sizeof err) != 0) ||
        sim_configure(&o, err, sizeof err) != 0)
        preload_bad("%s", err);
    sim_set_seed(env_u64("ASYNCRACE_SEED", 1));
    prog.schedule = env("ASYNCRACE_SCHEDULE", NULL);
    prog.result = env("ASYNCRACE_RESULT", NULL);
    prog.state = env("ASYNCRACE_SEARCH_STATE", NULL);
    prog.searching = sim_searching();
    if (prog.state && prog.searching) {
        FILE *f = fopen(prog.state, "r");
        if (f) {                  /* none yet: the search's first schedule */
            bool ok = sim_search_restore(f, err, sizeof err);
            fclose(f);
            if (!ok)
                preload_bad("ASYNCRACE_SEARCH_STATE=%s: %s", prog.state, err);
        }
    }
    const char *replay = env("ASYNCRACE_REPLAY", NULL);
    if (replay) {
        sim_schedule_id expect = { .case_name = program_name(), .runner = "preload" };
        prog.replay = sim_schedule_load(replay, &expect, err, sizeof err);
        if (!prog.replay)
            preload_bad("ASYNCRACE_REPLAY=%s: %s", replay, err);
        sim_replay(prog.replay);
    }
    sim_threads_keep_abandoned();
    catch_fatal();
    preload_points(env("ASYNCRACE_POINTS", NULL));
}

/* One run of the program, its schedule and result written; exits as it ended. */
static _Noreturn void run_once(void)
{
    sim_run(task_main, NULL);
    const sim_result *r = sim_last_result();
    verdict v = { "ok", r->status == SIM_OK ? prog.how : r->detail, prog.code, 0 };
    if (r->status != SIM_OK) {
        v.outcome = sim_status_names[r->status];
        v.code = 1;
        fprintf(stderr, "asyncrace_sched: %s: %s\n", v.outcome, r->detail);
    } else if (prog.code != 0) {
        v.outcome = "exit";
    }
    record(&v);
    fflush(NULL);
    REAL(_exit)(v.code);
}

_Noreturn void preload_try(int report_fd, const char *schedule)
{
    char err[256];
    if (ar_trap_escapes(err, sizeof err) != 0)
        preload_bad("%s", err);
    prog.report_fd = report_fd;
    prog.schedule = schedule;
    prog.result = prog.state = NULL;
    run_once();
}

static int controlled_main(int argc, char **argv, char **envp)
{
    prog.argc = argc, prog.argv = argv, prog.envp = envp;
    configure();
    const char *explain = env("ASYNCRACE_EXPLAIN", NULL);
    if (explain) {
        if (!prog.replay)
            preload_bad("ASYNCRACE_EXPLAIN=%s: the failing schedule to explain comes in "
                        "ASYNCRACE_REPLAY", explain);
        REAL(_exit)(preload_explain(explain, prog.replay, env("ASYNCRACE_REPLAY", ""),
                                    program_name()));
    }
    run_once();
}

typedef int (*start_fn)(main_fn, int, char **, void (*)(void), void (*)(void), void (*)(void),
                        void *);

/* Addresses the same in every process (a program may hash or order by
 * them): without address randomization, the process starts again once. */
static void same_addresses(char **argv)
{
    int was = personality(0xffffffff);
    if (was == -1 || (was & ADDR_NO_RANDOMIZE))
        return;
    if (personality((unsigned long)was | ADDR_NO_RANDOMIZE) == -1)
        return;
    execv("/proc/self/exe", argv);
    fprintf(stderr, "asyncrace_sched: cannot start again without address randomization: %s\n",
            strerror(errno));
}

int __libc_start_main(main_fn main, int argc, char **argv, void (*init)(void),
                      void (*fini)(void), void (*rtld_fini)(void), void *stack_end)
{
    same_addresses(argv);
    prog.main = main;
    start_fn real = (start_fn)ar_real("__libc_start_main");
    return real(controlled_main, argc, argv, init, fini, rtld_fini, stack_end);
}
