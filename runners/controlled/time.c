/* time.c: clocks and sleeps on the core's virtual clock (see interpose.h).
 *
 * Every monotonic clock (MONOTONIC, its RAW and COARSE forms, BOOTTIME) reads
 * sim_now(); the wall clocks (REALTIME, its COARSE form, TAI, gettimeofday,
 * time) read it plus AR_REALTIME_BASE_NS. Each step of a run advances it, and
 * it jumps to the next deadline when every task waits, so a 10 s sleep costs
 * no wall time. CPU-time clocks go to libc.
 */
#include "interpose.h"

#include <errno.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

static bool virtual_clock(clockid_t id, uint64_t *base)
{
    switch (id) {
    case CLOCK_MONOTONIC: case CLOCK_MONOTONIC_RAW: case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
        *base = 0;
        return true;
    case CLOCK_REALTIME: case CLOCK_REALTIME_COARSE: case CLOCK_TAI:
        *base = AR_REALTIME_BASE_NS;
        return true;
    default:
        return false;
    }
}

static struct timespec to_timespec(uint64_t ns)
{
    return (struct timespec){ (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
}

static uint64_t to_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    uint64_t base;
    if (!ar_controlled() || !virtual_clock(id, &base))
        return REAL(clock_gettime)(id, ts);
    *ts = to_timespec(base + sim_now());
    return 0;
}

/* The virtual clocks tick in nanoseconds (a coarse clock's answer would tell
 * libuv to prefer it: the virtual clock has no coarse variant). */
int clock_getres(clockid_t id, struct timespec *res)
{
    uint64_t base;
    if (!ar_controlled() || !virtual_clock(id, &base))
        return REAL(clock_getres)(id, res);
    if (res)
        *res = (struct timespec){ 0, 1 };
    return 0;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
    if (!ar_controlled())
        return REAL(gettimeofday)(tv, tz);
    uint64_t ns = AR_REALTIME_BASE_NS + sim_now();
    *tv = (struct timeval){ (time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000) };
    return 0;
}

time_t time(time_t *out)
{
    if (!ar_controlled())
        return REAL(time)(out);
    time_t t = (time_t)((AR_REALTIME_BASE_NS + sim_now()) / 1000000000u);
    if (out)
        *out = t;
    return t;
}

static void sleep_ns(uint64_t ns)
{
    sim_sleep(ns);
}

int nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!ar_controlled())
        return REAL(nanosleep)(req, rem);
    sleep_ns(to_ns(req));
    if (rem)
        *rem = (struct timespec){ 0, 0 };
    return 0;
}

int clock_nanosleep(clockid_t id, int flags, const struct timespec *req, struct timespec *rem)
{
    uint64_t base;
    if (!ar_controlled() || !virtual_clock(id, &base))
        return REAL(clock_nanosleep)(id, flags, req, rem);
    uint64_t ns = to_ns(req), now = base + sim_now();
    sleep_ns(flags & TIMER_ABSTIME ? (ns > now ? ns - now : 0) : ns);
    if (rem && !(flags & TIMER_ABSTIME))
        *rem = (struct timespec){ 0, 0 };
    return 0;
}

int usleep(useconds_t us)
{
    if (!ar_controlled())
        return REAL(usleep)(us);
    sleep_ns((uint64_t)us * 1000u);
    return 0;
}

unsigned int sleep(unsigned int s)
{
    if (!ar_controlled())
        return REAL(sleep)(s);
    sleep_ns((uint64_t)s * 1000000000u);
    return 0;
}
