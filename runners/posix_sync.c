/* posix_sync.c: ar_thread, ar_mutex and ar_cond on pthreads.
 *
 * Mutexes are the default (non-recursive) kind, so trylock fails while held,
 * also by the calling thread. Condition variables run on CLOCK_MONOTONIC so a
 * deadline from ar_host_now_ns() is an absolute time for pthread_cond_timedwait.
 * A failing lock or wait means a corrupted object: abort, as libuv does.
 */
#include "posix_sync.h"
#include "host.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ar_thread {
    pthread_t tid;
    ar_thread_fn fn;
    void *arg;
};

struct ar_mutex {
    pthread_mutex_t m;
};

struct ar_cond {
    pthread_cond_t c;
};

static void die(const char *what, int err)
{
    fprintf(stderr, "posix_sync: %s: %s\n", what, strerror(err));
    abort();
}

static void *thread_main(void *p)
{
    ar_thread *t = p;
    t->fn(t->arg);
    return NULL;
}

ar_thread *ar_posix_thread_start(ar_thread_fn fn, void *arg)
{
    ar_thread *t = malloc(sizeof *t);
    if (!t)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    ar_host_count(AR_RES_THREAD, 1); /* before it runs: it may look at the counts itself */
    if (pthread_create(&t->tid, NULL, thread_main, t) != 0) {
        ar_host_count(AR_RES_THREAD, -1);
        free(t);
        return NULL;
    }
    return t;
}

void ar_posix_thread_join(ar_thread *t)
{
    int err = pthread_join(t->tid, NULL);
    if (err)
        die("pthread_join", err);
    free(t);
    ar_host_count(AR_RES_THREAD, -1);
}

ar_mutex *ar_posix_mutex_new(void)
{
    ar_mutex *m = malloc(sizeof *m);
    if (m && pthread_mutex_init(&m->m, NULL) != 0) {
        free(m);
        return NULL;
    }
    if (m)
        ar_host_count(AR_RES_MUTEX, 1);
    return m;
}

void ar_posix_mutex_lock(ar_mutex *m)
{
    int err = pthread_mutex_lock(&m->m);
    if (err)
        die("pthread_mutex_lock", err);
}

bool ar_posix_mutex_trylock(ar_mutex *m)
{
    int err = pthread_mutex_trylock(&m->m);
    if (err && err != EBUSY)
        die("pthread_mutex_trylock", err);
    return err == 0;
}

void ar_posix_mutex_unlock(ar_mutex *m)
{
    int err = pthread_mutex_unlock(&m->m);
    if (err)
        die("pthread_mutex_unlock", err);
}

void ar_posix_mutex_free(ar_mutex *m)
{
    if (!m)
        return;
    int err = pthread_mutex_destroy(&m->m);
    if (err)
        die("pthread_mutex_destroy", err);
    free(m);
    ar_host_count(AR_RES_MUTEX, -1);
}

ar_cond *ar_posix_cond_new(void)
{
    ar_cond *c = malloc(sizeof *c);
    if (!c)
        return NULL;
    pthread_condattr_t attr;
    bool ok = pthread_condattr_init(&attr) == 0;
    if (ok) {
        ok = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&c->c, &attr) == 0;
        pthread_condattr_destroy(&attr);
    }
    if (!ok) {
        free(c);
        return NULL;
    }
    ar_host_count(AR_RES_COND, 1);
    return c;
}

void ar_posix_cond_broadcast(ar_cond *c)
{
    int err = pthread_cond_broadcast(&c->c);
    if (err)
        die("pthread_cond_broadcast", err);
}

bool ar_posix_cond_wait_until(ar_cond *c, ar_mutex *m, uint64_t deadline_ns)
{
    struct timespec ts = {
        .tv_sec = (time_t)(deadline_ns / 1000000000u),
        .tv_nsec = (long)(deadline_ns % 1000000000u),
    };
    int err = pthread_cond_timedwait(&c->c, &m->m, &ts);
    if (err && err != ETIMEDOUT)
        die("pthread_cond_timedwait", err);
    return err == 0;
}

void ar_posix_cond_free(ar_cond *c)
{
    if (!c)
        return;
    int err = pthread_cond_destroy(&c->c);
    if (err)
        die("pthread_cond_destroy", err);
    free(c);
    ar_host_count(AR_RES_COND, -1);
}
