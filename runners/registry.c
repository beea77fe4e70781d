/* registry.c: the list of built runners, lookup by name, and the clock. */
#include "runner.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const ar_runner *const ar_runners[] = {
    &ar_runner_libuv,
    &ar_runner_libevent,
    &ar_runner_epoll,
    NULL,
};

const ar_runner *ar_runner_find(const char *name)
{
    for (const ar_runner *const *r = ar_runners; *r; r++)
        if (strcmp((*r)->name, name) == 0)
            return *r;
    return NULL;
}

const char *ar_runner_names(void)
{
    return "libuv, libevent, epoll";
}

uint64_t ar_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime(CLOCK_MONOTONIC)");
        abort();
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
