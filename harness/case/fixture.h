/* fixture.h: what every scenario needs around its tasks, kept here once: a
 * monitor for the main thread's waits on what the loops report, bounded by
 * the iteration deadline. (The leak check runs around every iteration in
 * case_main.c; the block_on waits are in runtime.h.) */
#ifndef ASYNCRACE_FIXTURE_H
#define ASYNCRACE_FIXTURE_H

#include "race.h"

/* A mutex and a condition variable of the runner, for a scenario's shared
 * counts: callbacks change them under the lock and notify; the main thread
 * waits for a predicate. */
typedef struct ar_monitor {
    const ar_runner *r;
    ar_mutex *lock;
    ar_cond *cond;
} ar_monitor;

void ar_monitor_init(ar_monitor *m);     /* on the iteration's runner; aborts on failure */
void ar_monitor_destroy(ar_monitor *m);
void ar_monitor_lock(ar_monitor *m);
void ar_monitor_unlock(ar_monitor *m);
void ar_monitor_notify(ar_monitor *m);   /* with the lock held */
/* Locks, waits until pred(arg) holds or the iteration deadline passed,
 * unlocks; pred's last answer. */
bool ar_monitor_wait(ar_monitor *m, bool (*pred)(const void *arg), const void *arg);

#endif
