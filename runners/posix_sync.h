/* posix_sync.h: threads, mutexes and condition variables on plain pthreads,
 * shared by the runners that have no threading library of their own
 * (libevent.c, epoll.c). Same semantics as the ar_runner entries. */
#ifndef ASYNCRACE_POSIX_SYNC_H
#define ASYNCRACE_POSIX_SYNC_H

#include "runner.h"

ar_thread *ar_posix_thread_start(ar_thread_fn fn, void *arg);
void ar_posix_thread_join(ar_thread *t);

ar_mutex *ar_posix_mutex_new(void);
void ar_posix_mutex_lock(ar_mutex *m);
bool ar_posix_mutex_trylock(ar_mutex *m);
void ar_posix_mutex_unlock(ar_mutex *m);
void ar_posix_mutex_free(ar_mutex *m);

ar_cond *ar_posix_cond_new(void);
void ar_posix_cond_broadcast(ar_cond *c);
bool ar_posix_cond_wait_until(ar_cond *c, ar_mutex *m, uint64_t deadline_ns);
void ar_posix_cond_free(ar_cond *c);

/* The threads-and-locks part of an ar_runner, for a runner on pthreads. */
#define AR_POSIX_SYNC_ENTRIES \
    .thread_start = ar_posix_thread_start, \
    .thread_join = ar_posix_thread_join, \
    .mutex_new = ar_posix_mutex_new, \
    .mutex_lock = ar_posix_mutex_lock, \
    .mutex_trylock = ar_posix_mutex_trylock, \
    .mutex_unlock = ar_posix_mutex_unlock, \
    .mutex_free = ar_posix_mutex_free, \
    .cond_new = ar_posix_cond_new, \
    .cond_broadcast = ar_posix_cond_broadcast, \
    .cond_wait_until = ar_posix_cond_wait_until, \
    .cond_free = ar_posix_cond_free

#endif
