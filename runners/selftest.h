/* selftest.h: the one result-line dialect of asyncrace's C self-test programs
 * (build/tools/conformance, simtest and casetest). pytest asks each program
 * for its list and makes one test id per C test from it
 * (harness/asyncrace/selftests.py reads these lines, nothing else):
 *
 *   PROGRAM --list            the test names, one per line
 *   PROGRAM --test NAME       that test alone
 *
 *   RUN <name>                                   before a test: a crash names it
 *     <note>                                     two spaces: what the test saw
 *   PASS <name> <ms>ms
 *   FAIL <name>: <file>:<line>: <what failed>
 *   SKIP <name>: <why>
 *   <program> <subject>: <P> passed, <F> failed[, <S> skipped]      last
 *
 * Each line is flushed as it is written, so a program that dies leaves every
 * result before it.
 */
#ifndef ASYNCRACE_SELFTEST_H
#define ASYNCRACE_SELFTEST_H

#include <stdio.h>

typedef struct ar_selftest {
    const char *program;      /* "conformance", "simtest", "casetest" */
    const char *subject;      /* what it tests: a runner's name */
    int passed, failed, skipped;
} ar_selftest;

static inline void ar_selftest_run(ar_selftest *t, const char *name)
{
    (void)t;
    printf("RUN %s\n", name);
    fflush(stdout);
}

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

static inline void ar_selftest_summary(const ar_selftest *t)
{
    printf("%s %s: %d passed, %d failed", t->program, t->subject, t->passed, t->failed);
    if (t->skipped)
        printf(", %d skipped", t->skipped);
    printf("\n");
    fflush(stdout);
}

#endif
