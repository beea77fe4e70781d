/* registry.c: the list of built runners, and lookup by name. */
#include "runner.h"

#include <string.h>

const ar_runner *const ar_runners[] = {
    &ar_runner_libuv,
    &ar_runner_libevent,
    &ar_runner_epoll,
    &ar_runner_sim,
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
    return "libuv, libevent, epoll, sim";
}
