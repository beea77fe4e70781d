/* host.c: the host's clock, sleep, yield, thread-locals and resource counts,
 * shared by the real runners (see host.h). */
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static _Atomic long counts[AR_RES_KINDS];

void ar_host_count(ar_res_kind kind, int delta)
{
    atomic_fetch_add_explicit(&counts[kind], delta, memory_order_relaxed);
}

uint64_t ar_host_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("clock_gettime(CLOCK_MONOTONIC)");
        abort();
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ar_host_sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

void ar_host_yield(void) { sched_yield(); }

void *ar_host_thread_locals(void)
{
    static _Thread_local _Alignas(16) unsigned char block[AR_THREAD_LOCALS_BYTES];
    return block;
}

static long open_descriptors(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3;                 /* ".", ".." and the directory's own descriptor */
}

void ar_host_resources(ar_resources *out)
{
    out->loops = atomic_load(&counts[AR_RES_LOOP]);
    out->tcp = atomic_load(&counts[AR_RES_TCP]);
    out->timers = atomic_load(&counts[AR_RES_TIMER]);
    out->threads = atomic_load(&counts[AR_RES_THREAD]);
    out->mutexes = atomic_load(&counts[AR_RES_MUTEX]);
    out->conds = atomic_load(&counts[AR_RES_COND]);
    out->descriptors = open_descriptors();
}

void ar_host_run(void (*fn)(void *), void *arg) { fn(arg); }

void ar_host_die(const char *who, const char *what, int err)
{
    fprintf(stderr, "%s: %s: %s\n", who, what, strerror(err));
    abort();
}

void ar_host_close_fd(const char *who, int fd)
{
    if (fd >= 0 && close(fd) != 0 && errno != EINTR)
        ar_host_die(who, "close", errno);
}

static pthread_mutex_t version_lock = PTHREAD_MUTEX_INITIALIZER;

const char *ar_host_version(char *buf, size_t size, const char *fmt, ...)
{
    pthread_mutex_lock(&version_lock);
    if (!buf[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, size, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&version_lock);
    return buf;
}
