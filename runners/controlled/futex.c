/* futex.c: a task's futex calls through syscall(), the way Rust's std (its
 * Mutex, Condvar, Once and thread parking) and parking_lot reach the kernel,
 * modelled in the core instead of the kernel:
 *
 *   - a wait set per address (the run's table, by address): FUTEX_WAIT
 *     compares the word and parks the task in the core, as the kernel does,
 *     with no other task able to run in between (the baton), so no wake is
 *     lost; its timeout is on the virtual clock (relative for FUTEX_WAIT,
 *     absolute for FUTEX_WAIT_BITSET, CLOCK_REALTIME when the flag says so);
 *   - FUTEX_WAKE wakes up to n of them, and which waiter each wake picks is
 *     the strategy's choice (`futex.wake`, logged and replayed like a task
 *     choice), as the kernel's order is nobody's promise;
 *   - the words themselves are atomics the program shares outside any lock,
 *     so every futex call depends on every other step (no reduction across).
 *
 * Requeue, wake-op and the priority-inheritance calls are not modelled: a
 * task that makes one ends its run as `uncontrolled`, named.
 */
#include "interpose.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <time.h>

static uint64_t ns_of(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

static long fail(int e)
{
    errno = e;
    return -1;
}

static long wait_on(const uint32_t *word, uint32_t val, uint64_t deadline)
{
    sim_point("futex.wait", 0, SIM_POINT_PLAIN);
    sim_touch_all();
    if (__atomic_load_n(word, __ATOMIC_SEQ_CST) != val)
        return fail(EAGAIN);
    sim_wait_info why = { "futex_wait", "futex", 0, -1, false };
    return sim_wait(ar_waitq_of(word), &why, deadline) ? 0 : fail(ETIMEDOUT);
}

static long wake(const uint32_t *word, long n)
{
    sim_point("futex.wake", 0, SIM_POINT_PLAIN);
    sim_touch_all();
    sim_waitq *q = ar_waitq_of(word);
    long woken = 0;
    for (; woken < n; woken++) {
        size_t waiting = sim_waitq_len(q);
        if (!waiting)
            break;
        sim_wake_nth(q, waiting > 1 ? (size_t)sim_choose("futex.wake", waiting) : 0);
    }
    return woken;
}

long ar_futex(const long a[6])
{
    const uint32_t *word = (const uint32_t *)a[0];
    int op = (int)a[1] & FUTEX_CMD_MASK;
    bool realtime = (int)a[1] & FUTEX_CLOCK_REALTIME;
    uint32_t val = (uint32_t)a[2];
    const struct timespec *ts = (const struct timespec *)a[3];
    uint32_t bitset = (uint32_t)a[5];
    switch (op) {
    case FUTEX_WAIT:               /* a relative timeout, on the monotonic clock */
        return wait_on(word, val, ts ? sim_now() + ns_of(ts) : 0);
    case FUTEX_WAIT_BITSET: {      /* an absolute one */
        if (bitset != FUTEX_BITSET_MATCH_ANY)
            ar_uncontrolled("futex(FUTEX_WAIT_BITSET)", "a bitset other than match-any is not modelled");
        uint64_t at = 0;
        if (ts) {
            at = ns_of(ts);
            if (realtime)
                at = at > AR_REALTIME_BASE_NS ? at - AR_REALTIME_BASE_NS : 1;
            at = at ? at : 1;
        }
        return wait_on(word, val, at);
    }
    case FUTEX_WAKE:
        return wake(word, (long)val);
    case FUTEX_WAKE_BITSET:
        if (bitset != FUTEX_BITSET_MATCH_ANY)
            ar_uncontrolled("futex(FUTEX_WAKE_BITSET)", "a bitset other than match-any is not modelled");
        return wake(word, (long)val);
    default: {
        char call[64];
        snprintf(call, sizeof call, "futex(op %d)", op);
        ar_uncontrolled(call, "requeue, wake-op and priority-inheritance futexes are not modelled");
    }
    }
}
