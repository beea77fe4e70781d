/* selftest.h: the one dialect of asyncrace's C self-test programs
 * (build/tools/conformance, simtest and casetest). pytest asks each program
 * for its list and makes one test id per C test from it
 * (harness/asyncrace/selftests.py reads these lines, nothing else):
 *
 *   PROGRAM [--runner NAME] --list     the test names, one per line
 *   PROGRAM --list-runners             the runners (a program that takes --runner)
 *   PROGRAM [--runner NAME] --test NAME   that test alone
 *
 *   RUN <name>                                   before a test: a crash names it
 *     <note>                                     two spaces: what the test saw
 *   PASS <name> <ms>ms
 *   FAIL <name>: <file>:<line>: <what failed>
 *   SKIP <name>: <why>
 *   <program> <subject>: <P> passed, <F> failed[, <S> skipped]      last
 *
 * Each line is flushed as it is written, so a program that dies leaves every
 * result before it. A test body checks with AR_SELFTEST_CHECK: the first
 * check that fails is the test's FAIL line.
 */
#ifndef ASYNCRACE_SELFTEST_H
#define ASYNCRACE_SELFTEST_H

#include "runner.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ar_selftest {
    const char *program;      /* "conformance", "simtest", "casetest" */
    const char *subject;      /* what it tests: a runner's name */
    int passed, failed, skipped;
    bool failing;             /* the running test failed a check */
    char failure[1024];       /* "file:line: what", the first failed check */
} ar_selftest;

static inline void ar_selftest_run(ar_selftest *t, const char *name)
{
    t->failing = false;
    t->failure[0] = '\0';
    printf("RUN %s\n", name);
    fflush(stdout);
}

static inline bool ar_selftest_check(ar_selftest *t, bool ok, const char *file, int line,
                                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static inline bool ar_selftest_check(ar_selftest *t, bool ok, const char *file, int line,
                                     const char *fmt, ...)
{
    if (!ok && !t->failing) {
        t->failing = true;
        int n = snprintf(t->failure, sizeof t->failure, "%s:%d: ", file, line);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->failure + n, sizeof t->failure - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return ok;
}
/* In a void test body: on failure, keep the first message and return. */
#define AR_SELFTEST_CHECK(t, c, ...) \
    do { if (!ar_selftest_check((t), (c), __FILE__, __LINE__, __VA_ARGS__)) return; } while (0)

static inline void ar_selftest_pass(ar_selftest *t, const char *name, long long ms)
{
    t->passed++;
    printf("PASS %s %lldms\n", name, ms);
    fflush(stdout);
}

/* what: "file:line: what failed" */
static inline void ar_selftest_fail(ar_selftest *t, const char *name, const char *what)
{
    t->failed++;
    printf("FAIL %s: %s\n", name, what);
    fflush(stdout);
}

static inline void ar_selftest_skip(ar_selftest *t, const char *name, const char *why)
{
    t->skipped++;
    printf("SKIP %s: %s\n", name, why);
    fflush(stdout);
}

/* After a test body that used AR_SELFTEST_CHECK: its PASS or FAIL line. */
static inline void ar_selftest_end(ar_selftest *t, const char *name, long long ms)
{
    fflush(stdout);
    if (t->failing)
        ar_selftest_fail(t, name, t->failure);
    else
        ar_selftest_pass(t, name, ms);
}

/* A program's checks, by name. */
typedef struct ar_selftest_case {
    const char *name;
    void (*fn)(void);
} ar_selftest_case;

/* Runs each check (only the one named only, when not NULL), each between its
 * RUN and its PASS or FAIL line, timed by now() (ns). False when only names none. */
static inline bool ar_selftest_run_cases(ar_selftest *t, const ar_selftest_case *cases, int n,
                                         const char *only, uint64_t (*now)(void))
{
    bool found = false;
    for (int i = 0; i < n; i++) {
        if (only && strcmp(only, cases[i].name))
            continue;
        found = true;
        uint64_t t0 = now();
        ar_selftest_run(t, cases[i].name);
        cases[i].fn();
        ar_selftest_end(t, cases[i].name, (long long)((now() - t0) / 1000000));
    }
    return found;
}

static inline void ar_selftest_summary(const ar_selftest *t)
{
    printf("%s %s: %d passed, %d failed", t->program, t->subject, t->passed, t->failed);
    if (t->skipped)
        printf(", %d skipped", t->skipped);
    printf("\n");
    fflush(stdout);
}

/* The command line of a program that tests one runner: --runner NAME (required),
 * --test NAME, --list (calls list() and exits 0), --list-runners. Bad input is
 * one line on stderr and exit 2. */
typedef struct { const ar_runner *runner; const char *only; } ar_selftest_args;

static inline _Noreturn void ar_selftest_usage(const char *program, const char *what,
                                               const char *value)
{
    fprintf(stderr, "%s: %s '%s' (accepted: --runner %s, --test NAME, --list, --list-runners)\n",
            program, what, value, ar_runner_names());
    exit(2);
}

static inline ar_selftest_args ar_selftest_parse(const char *program, int argc, char **argv,
                                                 void (*list)(void))
{
    ar_selftest_args a = { NULL, NULL };
    const char *runner = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--list")) {
            list();
            exit(0);
        }
        if (!strcmp(argv[i], "--list-runners")) {
            for (const ar_runner *const *r = ar_runners; *r; r++)
                printf("%s\n", (*r)->name);
            exit(0);
        }
        if (strcmp(argv[i], "--runner") && strcmp(argv[i], "--test"))
            ar_selftest_usage(program, "unknown option", argv[i]);
        if (i + 1 >= argc)
            ar_selftest_usage(program, "a value is missing after", argv[i]);
        *(!strcmp(argv[i], "--runner") ? &runner : &a.only) = argv[i + 1];
        i++;
    }
    if (!runner)
        ar_selftest_usage(program, "--runner is required; got", "");
    if (!(a.runner = ar_runner_find(runner)))
        ar_selftest_usage(program, "unknown runner", runner);
    return a;
}

#endif
