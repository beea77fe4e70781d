/* host.h: what every real runner takes from the host as it is: the monotonic
 * clock, nanosleep, sched_yield, _Thread_local storage, and the counts behind
 * resources() (sim has its own of each). */
#ifndef ASYNCRACE_HOST_H
#define ASYNCRACE_HOST_H

#include "runner.h"

typedef enum { AR_RES_LOOP, AR_RES_TCP, AR_RES_TIMER, AR_RES_THREAD, AR_RES_MUTEX,
               AR_RES_COND, AR_RES_KINDS } ar_res_kind;

/* A runner counts what it makes (+1) and frees (-1). */
void ar_host_count(ar_res_kind kind, int delta);

void ar_host_sleep_ns(uint64_t ns);
void ar_host_yield(void);
void *ar_host_thread_locals(void);
/* The counts, and the descriptors open in this process (/proc/self/fd). */
void ar_host_resources(ar_resources *out);
void ar_host_run(void (*fn)(void *), void *arg);

/* Formats a runner's version text into buf on the first call (thread-safe)
 * and returns buf: the body of every version() entry. */
const char *ar_host_version(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "who: what: strerror(err)" on stderr, then abort(): for failures that mean
 * a corrupted object or a broken host, which no caller could handle. */
_Noreturn void ar_host_die(const char *who, const char *what, int err);
/* close(fd) when fd >= 0; a failure other than EINTR is ar_host_die. */
void ar_host_close_fd(const char *who, int fd);

/* The part of an ar_runner that every real runner fills the same way. */
#define AR_HOST_ENTRIES \
    .now_ns = ar_host_now_ns, \
    .sleep_ns = ar_host_sleep_ns, \
    .yield = ar_host_yield, \
    .thread_locals = ar_host_thread_locals, \
    .resources = ar_host_resources, \
    .race_point = NULL, \
    .run = ar_host_run, \
    .scheduler = NULL

#endif
