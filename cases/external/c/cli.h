/* cli.h: what the programs of this folder share, included by each (nothing to
 * link): the command line, --variant buggy|fixed [--iterations N]
 * [--timeout-ms T], the wait that --timeout-ms makes timed, and starting a
 * thread. Bad input is one line on stderr and exit 2. */
#ifndef EXTERNAL_C_CLI_H
#define EXTERNAL_C_CLI_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool buggy;
static long iterations = 1;             /* scenarios in this process */
static long timeout_ms;                 /* 0: plain pthread_cond_wait */

/* pthread_cond_wait; with --timeout-ms, timed on CLOCK_REALTIME (the clock
 * pthread_cond_timedwait uses): false when it expired. */
static bool wait_in_time(pthread_cond_t *c, pthread_mutex_t *m)
{
    if (timeout_ms == 0) {
        pthread_cond_wait(c, m);
        return true;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + timeout_ms % 1000 * 1000000LL;
    ts.tv_sec += timeout_ms / 1000 + ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    return pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT;
}

/* --flag N: an integer >= min */
static long number(const char *prog, const char *flag, const char *s, long min)
{
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s && !errno && end != s && !*end && v >= min)
        return v;
    fprintf(stderr, "%s: %s needs an integer >= %ld, got '%s'\n", prog, flag, min, s ? s : "");
    exit(2);
}

/* A thread, or one line and exit 1 when the system refuses it. */
static pthread_t start_thread(const char *prog, void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int err = pthread_create(&t, NULL, fn, arg);
    if (err) {
        fprintf(stderr, "%s: pthread_create: %s\n", prog, strerror(err));
        exit(1);
    }
    return t;
}

static void parse_command_line(const char *prog, int argc, char **argv)
{
    const char *variant = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            printf("usage: %s --variant buggy|fixed [--iterations N] [--timeout-ms T]\n", prog);
            exit(0);
        } else if (!strcmp(a, "--variant") && argv[i + 1]) {
            variant = argv[++i];
        } else if (!strcmp(a, "--iterations")) {
            iterations = number(prog, a, argv[++i], 1);
        } else if (!strcmp(a, "--timeout-ms")) {
            timeout_ms = number(prog, a, argv[++i], 0);
        } else {
            fprintf(stderr, "%s: unknown or incomplete argument '%s' (try --help)\n", prog, a);
            exit(2);
        }
    }
    if (strcmp(variant, "buggy") && strcmp(variant, "fixed")) {
        fprintf(stderr, "%s: --variant buggy or fixed is required (got '%s')\n", prog, variant);
        exit(2);
    }
    buggy = !strcmp(variant, "buggy");
}

#endif
