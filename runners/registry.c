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

const char *ar_resources_grown(const ar_resources *b, const ar_resources *a, char *buf, size_t n)
{
    const struct { const char *what; long before, after; } kinds[] = {
        { "loops", b->loops, a->loops }, { "TCP handles", b->tcp, a->tcp },
        { "timers", b->timers, a->timers }, { "threads", b->threads, a->threads },
        { "mutexes", b->mutexes, a->mutexes }, { "conds", b->conds, a->conds },
        { "descriptors", b->descriptors, a->descriptors },
    };
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].before >= 0 && kinds[i].after > kinds[i].before)
            snprintf(buf + strlen(buf), n - strlen(buf), "%s%ld %s", buf[0] ? ", " : "",
                     kinds[i].after - kinds[i].before, kinds[i].what);
    return buf;
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
