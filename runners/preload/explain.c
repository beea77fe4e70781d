/* explain.c: ASYNCRACE_EXPLAIN=PREFIX with ASYNCRACE_REPLAY=FILE. The failing
 * schedule of a user's program is cut down to the decisions its failure turns
 * on (sim_shrink: delta debugging over its deviations from the default
 * schedule), as a case's --explain does. A program runs once per process, so
 * each try is a child forked before main: it runs the program under the
 * shrink's guide, its output discarded, and sends back how it ended and what
 * its run taught the shrink. A try fails as recorded when it ends as the
 * schedule's own replay did: the same outcome, exit status and signal. A
 * failure told by output (the driver's rules read it) needs a judge:
 *   ASYNCRACE_EXPLAIN_JUDGE=CMD      run as sh -c 'CMD "$@"' judge OUTCOME CODE
 *                                    SIG STDOUT STDERR after each try (OUTCOME
 *                                    as below, the output as files); the first
 *                                    line it prints is the try's outcome, the
 *                                    second (if any) what told it
 *   ASYNCRACE_EXPLAIN_OUTCOME=NAME   the failure's outcome as the judge names it
 * then each try's output is kept for it, and the outcome compared is its. Writes
 *   PREFIX.minimal.json   a schedule that replays (ASYNCRACE_REPLAY)
 *   PREFIX.explain.json   its decisions, their stacks as module and offset
 */
#include "controlled/interpose.h"
#include "preload.h"
#include "sim/log.h"
#include "sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TRY_S 120                 /* a try that has not ended by then is killed: no failure */
#define TRY_STEPS_TIMES 4         /* a try ends at 4 times the failure's steps: no failure */
#define TRY_STEPS_LEAST 10000

typedef struct {
    const char *try_path;         /* each try's schedule; the last try's is the minimal one */
    const char *recorded;         /* the schedule's outcome (the judge's name for it) */
    const char *judge;            /* NULL: the scheduler's outcome is the outcome */
    char out_path[4200], err_path[4200];  /* a try's output, for the judge */
    bool have_end;                /* the first try (the schedule followed) failed: */
    int code, sig;                /* its exit status and signal, what every failing try has */
    char detail[320];
    char error[200];
} explaining;

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = REAL(write)(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        p += k, n -= (size_t)k;
    }
}

/* In the child (from record(): a task's signal handler, or the host's end). */
void preload_report(int fd, const verdict *v)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return;
    fprintf(f, "%s%c%s%c%d %d%c", v->outcome, 0, v->detail ? v->detail : "", 0, v->code, v->sig, 0);
    sim_shrink_send(f);
    fputc('E', f);                /* the end: all of it was read back */
    if (fclose(f) == 0)
        write_all(fd, buf, n);
    free(buf);
}

static char *read_all(int fd, size_t *n)
{
    size_t cap = 4096;
    char *buf = malloc(cap);
    *n = 0;
    for (;;) {
        if (!buf)
            abort();
        ssize_t k = REAL(read)(fd, buf + *n, cap - *n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return buf;
        if ((*n += (size_t)k) == cap)
            buf = realloc(buf, cap *= 2);
    }
}

static void redirect(const char *path, int to)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        dup2(fd, to);
        close(fd);
    }
}

/* The program's descriptors are numbered as in a process of its own (they
 * are in its schedule's points): the report's pipe goes high, nothing else
 * stays open. */
static _Noreturn void child(int fd, const explaining *x)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
    close(fd);
    /* a try's output is not the failure's: only a judge reads it */
    redirect(x->judge ? x->out_path : "/dev/null", STDOUT_FILENO);
    redirect(x->judge ? x->err_path : "/dev/null", STDERR_FILENO);
    alarm(TRY_S);
    preload_try(high, x->try_path);
}

/* In the judge's child: the judge runs outside the scheduler (no LD_PRELOAD, no
 * ASYNCRACE_ variable: it would schedule and replay the shell). */
static _Noreturn void judge_exec(const char *script, const char *outcome, const char *code,
                                 const char *sig, const explaining *x)
{
    extern char **environ;
    size_t n = 0, kept = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    for (size_t i = 0; env && i < n; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "ASYNCRACE_", 10))
            env[kept++] = environ[i];
    char *argv[] = { "sh", "-c", (char *)script, "judge", (char *)outcome, (char *)code,
                     (char *)sig, (char *)x->out_path, (char *)x->err_path, NULL };
    if (env)
        execve("/bin/sh", argv, env);
    _exit(127);
}

typedef struct {
    explaining *x;
    const char *script, *outcome, *code, *sig;
} judging;

static _Noreturn void try_child(int fd, void *ctx) { child(fd, ctx); }

static _Noreturn void judge_child(int fd, void *ctx)
{
    judging *j = ctx;
    dup2(fd, STDOUT_FILENO);
    close(fd);
    judge_exec(j->script, j->outcome, j->code, j->sig, j->x);
}

/* Forks body(write end, ctx); returns all it wrote there (not NUL-ended: *n
 * bytes) once the child has ended, with its wait status; NULL with x->error
 * when it could not be started. */
static char *from_child(explaining *x, void (*body)(int, void *), void *ctx, size_t *n,
                        int *status)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(x->error, sizeof x->error, "pipe: %s", strerror(errno));
        return NULL;
    }
    fflush(NULL);
    pid_t pid = REAL(fork)();
    if (pid == 0) {
        close(fds[0]);
        body(fds[1], ctx);      /* does not return */
        _exit(127);
    }
    close(fds[1]);
    *n = 0;
    char *buf = pid < 0 ? NULL : read_all(fds[0], n);
    close(fds[0]);
    if (pid < 0) {
        snprintf(x->error, sizeof x->error, "fork: %s", strerror(errno));
        return NULL;
    }
    while (REAL(waitpid)(pid, status, 0) < 0 && errno == EINTR)
        ;
    return buf;
}

/* The judge's outcome for a try that ended so (into told), and what told it
 * (into why); false with x->error. */
static bool judged(explaining *x, const char *outcome, int code, int sig, char *told, size_t n,
                   char *why, size_t why_n)
{
    char script[4200], code_s[16], sig_s[16];
    snprintf(script, sizeof script, "%s \"$@\"", x->judge);
    snprintf(code_s, sizeof code_s, "%d", code);
    snprintf(sig_s, sizeof sig_s, "%d", sig);
    judging j = { x, script, outcome, code_s, sig_s };
    size_t len;
    int status = 0;
    char *out = from_child(x, judge_child, &j, &len, &status);
    if (!out)
        return false;
    const char *nl = memchr(out, '\n', len);
    size_t line = nl ? (size_t)(nl - out) : len;
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && line > 0 && line < n;
    if (ok) {
        snprintf(told, n, "%.*s", (int)line, out);
        const char *second = nl ? nl + 1 : out + len;
        const char *end = memchr(second, '\n', (size_t)(out + len - second));
        snprintf(why, why_n, "%.*s", (int)((end ? end : out + len) - second), second);
    } else
        snprintf(x->error, sizeof x->error, "the judge (%.120s) did not name an outcome "
                 "(exit %d)", x->judge, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    free(out);
    return ok;
}

/* One try: does the run, guided as the shrink says, end as the failure did? */
static bool fails_as_recorded(void *arg)
{
    explaining *x = arg;
    size_t n;
    int status;
    char *buf = from_child(x, try_child, x, &n, &status);
    if (!buf)
        return false;
    /* outcome NUL detail NUL "code sig" NUL, then the shrink's part */
    const char *field[3], *rest = buf;
    bool ended = true;
    for (int i = 0; i < 3 && ended; i++) {
        const char *nul = rest < buf + n ? memchr(rest, 0, (size_t)(buf + n - rest)) : NULL;
        ended = nul != NULL;
        field[i] = rest;
        rest = ended ? nul + 1 : rest;
    }
    const char *outcome = field[0], *detail = field[1];
    int code, sig;
    char told[64], why[sizeof x->detail];
    ended = ended && sscanf(field[2], "%d %d", &code, &sig) == 2;
    if (ended && x->judge) {
        ended = judged(x, outcome, code, sig, told, sizeof told, why, sizeof why);
        outcome = told;
        detail = why[0] ? why : detail;
    }
    bool fails = false;
    if (ended) {
        FILE *f = rest < buf + n ? fmemopen((void *)rest, (size_t)(buf + n - rest), "r") : NULL;
        if (!f || !sim_shrink_receive(f) || fgetc(f) != 'E')
            snprintf(x->error, sizeof x->error, "a try's report was cut short");
        if (f)
            fclose(f);
        if (!x->have_end) {       /* the schedule followed: the failure's own end */
            fails = !strcmp(outcome, x->recorded) && strcmp(outcome, "ok") != 0;
            if (fails) {
                x->have_end = true;
                x->code = code, x->sig = sig;
                snprintf(x->detail, sizeof x->detail, "%s", detail);
            }
        } else {
            fails = !strcmp(outcome, x->recorded) && code == x->code && sig == x->sig;
        }
    }
    free(buf);
    return fails;
}

int preload_explain(const char *prefix, const sim_schedule *failing, const char *failing_path,
                    const char *program)
{
    char try_path[4096], minimal[4096], told[4096], told_tmp[4200], err[256] = "";
    snprintf(try_path, sizeof try_path, "%s.try.json", prefix);
    snprintf(minimal, sizeof minimal, "%s.minimal.json", prefix);
    snprintf(told, sizeof told, "%s.explain.json", prefix);
    snprintf(told_tmp, sizeof told_tmp, "%s.tmp", told);
    explaining x = { .try_path = try_path, .recorded = sim_schedule_outcome(failing),
                     .judge = getenv("ASYNCRACE_EXPLAIN_JUDGE") };
    if (x.judge) {
        x.recorded = getenv("ASYNCRACE_EXPLAIN_OUTCOME");
        if (!x.recorded || !*x.recorded) {
            fprintf(stderr, "asyncrace_sched: explain: ASYNCRACE_EXPLAIN_JUDGE needs "
                    "ASYNCRACE_EXPLAIN_OUTCOME, the failure's outcome\n");
            return 2;
        }
        snprintf(x.out_path, sizeof x.out_path, "%s.try.stdout", prefix);
        snprintf(x.err_path, sizeof x.err_path, "%s.try.stderr", prefix);
    }
    sim_shrunk shrunk = { 0 };
    uint64_t steps = TRY_STEPS_TIMES * sim_schedule_steps(failing);
    sim_guide_step_bound(steps > TRY_STEPS_LEAST ? steps : TRY_STEPS_LEAST);
    int rc = sim_shrink(failing, fails_as_recorded, &x, NULL, &shrunk, err, sizeof err);
    if (x.error[0])              /* a try that could not be run or told: the cause */
        snprintf(err, sizeof err, "%s", x.error), rc = -1;
    if (rc == 0 && rename(try_path, minimal) != 0)
        snprintf(err, sizeof err, "cannot write %.160s: %s", minimal, strerror(errno)), rc = -1;
    FILE *f = rc == 0 ? fopen(told_tmp, "w") : NULL;
    if (rc == 0 && !f)
        snprintf(err, sizeof err, "cannot write %.160s: %s", told, strerror(errno)), rc = -1;
    if (f) {
        fprintf(f, "{\n  \"format\": \"asyncrace-explanation/1\",\n  \"runner\": \"preload\","
                "\n  \"case\": ");
        sim_json_string(f, program);
        fprintf(f, ",\n  \"variant\": \"\",\n  \"mode\": \"preload\",\n  \"schedule\": ");
        sim_json_string(f, failing_path);
        fprintf(f, ",\n  \"outcome\": ");
        sim_json_string(f, x.recorded);
        fprintf(f, ",\n  \"detail\": ");
        sim_json_string(f, x.detail);
        fprintf(f, ",\n  \"exit_code\": %d,\n  \"signal\": %d,\n  \"minimal_schedule\": ",
                x.code, x.sig);
        sim_json_string(f, minimal);
        fprintf(f, ",\n  \"minimal_race_log\": null,\n");
        sim_shrunk_json(f, &shrunk);
        fprintf(f, "\n}\n");
        if (fclose(f) != 0 || rename(told_tmp, told) != 0)
            snprintf(err, sizeof err, "cannot write %.160s: %s", told, strerror(errno)), rc = -1;
        unlink(told_tmp);         /* left only when the rename failed */
    }
    unlink(try_path);
    if (x.judge) {
        unlink(x.out_path);
        unlink(x.err_path);
    }
    sim_shrunk_free(&shrunk);
    if (rc != 0) {
        fprintf(stderr, "asyncrace_sched: explain: %s\n", err);
        return 1;
    }
    return 0;
}
