/* registry.c: the runners this build has, in runners/backends.list's order
 * (scripts/configure.sh writes that list as AR_BACKENDS), and lookup by name. */
#include "backends.h"
#include "runner.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define AR_BACKEND(name) extern const ar_runner ar_runner_##name;
AR_BACKENDS
#undef AR_BACKEND

const ar_runner *const ar_runners[] = {
#define AR_BACKEND(name) &ar_runner_##name,
    AR_BACKENDS
#undef AR_BACKEND
    NULL,
};

const ar_runner *ar_runner_find(const char *name)
{
    for (const ar_runner *const *r = ar_runners; *r; r++)
        if (strcmp((*r)->name, name) == 0)
            return *r;
    return NULL;
}

static pthread_once_t names_once = PTHREAD_ONCE_INIT;
static char names[256];

static void names_fill(void)
{
    for (const ar_runner *const *r = ar_runners; *r; r++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                 r == ar_runners ? "" : ", ", (*r)->name);
}

const char *ar_runner_names(void)
{
    pthread_once(&names_once, names_fill);
    return names;
}
