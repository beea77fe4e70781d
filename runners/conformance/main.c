/* main.c: the conformance program: the contract of runner.h, run on one runner.
 *
 *   build/tools/conformance --runner NAME [--test NAME] [--list] [--list-runners]
 *
 * Prints the self-test lines of runners/selftest.h ("RUN <test>", then "PASS
 * <test> <ms>ms", "FAIL <test>: file:line: `expr` (values)" or "SKIP <test>:
 * <why>"; last "conformance <runner>: N passed, M failed[, K skipped]"); exits
 * 0 only when none failed, 2 on bad arguments. Every wait is bounded (cond_wait_until
 * with a deadline), so a broken runner fails a test instead of hanging; a
 * loop_run that never returns ends the program with a FAIL line, as its thread
 * cannot be joined. Deadlines stretch by ASYNCRACE_TIMEOUT_MULTIPLIER
 * (valgrind). Nothing is faked: real loops, real threads, real loopback sockets.
 */
#include "conformance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The areas, in the order they run. */
static const conf_test *const areas[] = {
    conf_post_tests, conf_timer_tests, conf_tcp_tests, conf_tcp_entry_tests,
    conf_free_tests, conf_thread_tests, conf_entry_tests,
};
enum { N_AREAS = sizeof areas / sizeof *areas };

#define FOR_EACH_TEST(t) \
    for (int area_ = 0; area_ < N_AREAS; area_++) \
        for (const conf_test *t = areas[area_]; t->name; t++)

static const conf_test *find_test(const char *name)
{
    FOR_EACH_TEST(t)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static const char *test_names(void)
{
    static char names[2048];
    size_t n = 0;
    FOR_EACH_TEST(t)
        if (n < sizeof names)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", t->name);
    return names;
}

static _Noreturn void usage_error(const char *fmt, const char *value, const char *accepted)
{
    fprintf(stderr, "conformance: ");
    fprintf(stderr, fmt, value);
    fprintf(stderr, " (accepted: %s)\n", accepted);
    exit(2);
}

/* Process-wide one-time descriptors (libuv keeps a signal pipe) must exist
 * before the first test takes its resource snapshot. */
static void warm_up(void *arg)
{
    ar_loop *loop = R->loop_new();
    *(bool *)arg = loop != NULL;
    if (loop)
        R->loop_free(loop);
}

int main(int argc, char **argv)
{
    const char *runner = NULL, *only = NULL;
    static const char options[] = "--runner NAME, --test NAME, --list, --list-runners";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--list") == 0) {
            FOR_EACH_TEST(t)
                printf("%s\n", t->name);
            return 0;
        }
        if (strcmp(a, "--list-runners") == 0) {
            for (const ar_runner *const *r = ar_runners; *r; r++)
                printf("%s\n", (*r)->name);
            return 0;
        }
        if (strcmp(a, "--runner") != 0 && strcmp(a, "--test") != 0)
            usage_error("unknown option '%s'", a, options);
        if (i + 1 >= argc)
            usage_error("option %s needs a value", a, options);
        *(strcmp(a, "--runner") == 0 ? &runner : &only) = argv[++i];
    }
    if (!runner)
        usage_error("%s is required", "--runner", ar_runner_names());
    if (!(R = ar_runner_find(runner)))
        usage_error("unknown runner '%s'", runner, ar_runner_names());
    const conf_test *single = only ? find_test(only) : NULL;
    if (only && !single)
        usage_error("unknown test '%s'", only, test_names());
    const char *scale = getenv("ASYNCRACE_TIMEOUT_MULTIPLIER");
    if (scale && strtod(scale, NULL) > 1.0)
        time_scale = strtod(scale, NULL);

    bool made = false;
    R->run(warm_up, &made);
    if (!made) {
        fprintf(stderr, "conformance: runner %s cannot create a loop\n", R->name);
        return 1;
    }
    FOR_EACH_TEST(t)
        if (!single || single == t)
            conf_run(t);
    conf_print_summary();
    return conf_failures() ? 1 : 0;
}
