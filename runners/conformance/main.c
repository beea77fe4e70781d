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
#include "selftest.h"

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

static void list(void)
{
    FOR_EACH_TEST(t)
        printf("%s\n", t->name);
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
    ar_selftest_args args = ar_selftest_parse("conformance", argc, argv, list);
    R = args.runner;
    const conf_test *single = args.only ? find_test(args.only) : NULL;
    if (args.only && !single)
        ar_selftest_usage("conformance", "unknown test", args.only);
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
