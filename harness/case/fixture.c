/* fixture.c: the monitor of fixture.h. */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>

void ar_monitor_init(ar_monitor *m)
{
    m->r = ar_runner_now();
    m->lock = m->r->mutex_new();
    m->cond = m->r->cond_new();
    if (!m->lock || !m->cond) {
        fprintf(stderr, "asyncrace: %s: cannot make a monitor\n", m->r->name);
        abort();
    }
}

void ar_monitor_destroy(ar_monitor *m)
{
    m->r->cond_free(m->cond);
    m->r->mutex_free(m->lock);
    m->cond = NULL;
    m->lock = NULL;
}

void ar_monitor_lock(ar_monitor *m) { m->r->mutex_lock(m->lock); }
void ar_monitor_unlock(ar_monitor *m) { m->r->mutex_unlock(m->lock); }
void ar_monitor_notify(ar_monitor *m) { m->r->cond_broadcast(m->cond); }

bool ar_monitor_wait(ar_monitor *m, bool (*pred)(const void *), const void *arg)
{
    m->r->mutex_lock(m->lock);
    bool ok;
    while (!(ok = pred(arg)) && m->r->cond_wait_until(m->cond, m->lock, ar_deadline_ns()))
        ;
    ok = pred(arg);
    m->r->mutex_unlock(m->lock);
    return ok;
}
