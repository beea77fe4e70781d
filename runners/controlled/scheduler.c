/* scheduler.c: what every controlled runner (runner_under_control.h) shares:
 * sim's scheduler table with the threads front end forced on, the run, and
 * the race point. */
#include "interpose.h"
#include "runner.h"
#include "scheduler.h"
#include "sim/sched.h"
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>

static bool configured;

static int configure(const sim_options *o, char *err, size_t n)
{
    if (ar_trap_escapes(err, n) != 0)
        return -1;
    sim_options threads = *o;
    threads.threads = true;
    int rc = sim_configure(&threads, err, n);
    configured = configured || rc == 0;
    return rc;
}

void ar_controlled_run(void (*fn)(void *), void *arg)
{
    if (!configured) {            /* a caller that never configured: the defaults, on threads */
        sim_options d = SIM_OPTIONS_DEFAULT;
        char err[256];
        if (configure(&d, err, sizeof err) != 0) {
            fprintf(stderr, "controlled runner: %s\n", err);
            abort();
        }
    }
    sim_run(fn, arg);
}

/* As on sim: an access that may race with anything, on both sides of it. */
void ar_controlled_race_point(const char *name, long arg)
{
    sim_touch_all();
    sim_point(name, arg, SIM_POINT_PLAIN);
    sim_touch_all();
}

const ar_scheduler ar_scheduler_threads = AR_SCHEDULER_OF_SIM(configure);
