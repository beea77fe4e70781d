/* race.c: the running iteration's state: its outcome, race points, gates,
 * chaos and the log of race-point events that a capture keeps.
 *
 * One iteration runs at a time in a process, so this state is global; it is
 * touched from every worker thread, hence atomics and the runner's locks.
 */
#include "iteration.h"

#include <dirent.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const ar_outcome_names[AR_OUTCOME_COUNT] = {
    "ok", "panic", "deadlock", "fatal", "lost", "wrong_thread", "leak", "crash", "hang",
};
const char *const ar_mode_names[AR_MODE_COUNT] = { "natural", "chaos", "forced" };

/* The log keeps the last LOG_SIZE events; fields are atomics so a reader
 * (the trap, the watchdog) never races a writer in TSan's eyes. */
#define LOG_SIZE 256
typedef struct {
    _Atomic uint64_t t_ns;
    _Atomic(const char *) name;
    _Atomic long arg;
    _Atomic int worker;
} log_event;
static log_event race_log[LOG_SIZE];
static _Atomic uint64_t race_log_next;

static ar_iteration_setup setup;
static _Atomic int outcome;
static char detail[256];          /* written once, by the winner of `outcome` */
static uint64_t started_ns;

static ar_mutex *gate_lock;
static ar_cond *gate_cond;
static bool gate_open[AR_GATES];

/* Per-thread random state, reseeded lazily when a new iteration starts. */
static _Atomic uint64_t epoch;
static _Atomic uint64_t thread_ordinal;
static _Thread_local uint64_t tls_epoch, tls_rng;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t ar_rand(void)
{
    uint64_t e = atomic_load(&epoch);
    if (tls_epoch != e) {
        tls_epoch = e;
        tls_rng = mix64(setup.seed ^ mix64(atomic_fetch_add(&thread_ordinal, 1)));
    }
    tls_rng = mix64(tls_rng);
    return tls_rng;
}

void ar_iteration_begin(const ar_iteration_setup *s)
{
    if (!gate_lock) {
        gate_lock = s->runner->mutex_new();
        gate_cond = s->runner->cond_new();
    }
    setup = *s;
    atomic_store(&outcome, AR_OK);
    detail[0] = '\0';
    memset(gate_open, 0, sizeof gate_open);
    atomic_store(&thread_ordinal, 0);
    atomic_fetch_add(&epoch, 1);
    started_ns = ar_now_ns();
}

ar_outcome ar_iteration_end(char *out, size_t n)
{
    ar_outcome o = (ar_outcome)atomic_load(&outcome);
    snprintf(out, n, "%s", detail);
    return o;
}

uint64_t ar_deadline_ns(void) { return setup.deadline_ns; }
uint64_t ar_now_ns(void) { return setup.runner ? setup.runner->now_ns() : ar_host_now_ns(); }
bool ar_trap_enabled(void) { return setup.trap; }
ar_mode ar_mode_now(void) { return setup.mode; }
bool ar_failed(void) { return atomic_load(&outcome) != AR_OK; }

void ar_race_log_dump(FILE *out)
{
    uint64_t end = atomic_load(&race_log_next);
    uint64_t begin = end > LOG_SIZE ? end - LOG_SIZE : 0;
    fprintf(out, "race-point log: last %llu of %llu events (t in us since the iteration began)\n",
            (unsigned long long)(end - begin), (unsigned long long)end);
    for (uint64_t i = begin; i < end; i++) {
        log_event *e = &race_log[i % LOG_SIZE];
        const char *name = atomic_load(&e->name);
        uint64_t t = atomic_load(&e->t_ns);
        fprintf(out, "  %10.1f  worker %2d  %-28s %ld\n",
                t > started_ns ? (double)(t - started_ns) / 1e3 : 0.0,
                atomic_load(&e->worker), name ? name : "?", atomic_load(&e->arg));
    }
}

void ar_fail(ar_outcome o, const char *fmt, ...)
{
    int expected = AR_OK;
    if (!atomic_compare_exchange_strong(&outcome, &expected, (int)o))
        return;                   /* the first failure wins */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (setup.trap) {
        ar_race_log_dump(stderr);
        fprintf(stderr, "asyncrace: trap: %s: %s\n", ar_outcome_names[o], detail);
        fflush(stderr);
        abort();
    }
}

/* chaos: half the time nothing, else a yield or a busy delay of up to 50 us:
 * long enough to let another worker through a window, short enough to keep
 * thousands of iterations a second. */
static void chaos_delay(void)
{
    uint64_t r = ar_rand();
    switch (r & 3) {
    case 0:
    case 1:
        return;
    case 2:
        sched_yield();
        return;
    default: {
        uint64_t until = ar_now_ns() + (r >> 8) % 50000;
        while (ar_now_ns() < until)
            ;
    }
    }
}

void ar_race_point(const char *name, long arg)
{
    uint64_t i = atomic_fetch_add_explicit(&race_log_next, 1, memory_order_relaxed);
    log_event *e = &race_log[i % LOG_SIZE];
    atomic_store_explicit(&e->t_ns, ar_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&e->name, name, memory_order_relaxed);
    atomic_store_explicit(&e->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&e->worker, ar_current_worker(), memory_order_relaxed);

    if (setup.mode == AR_CHAOS)
        chaos_delay();
    else if (setup.mode == AR_FORCED && setup.c->forced)
        setup.c->forced(name, arg);
}

void ar_gate_open(int gate)
{
    const ar_runner *r = setup.runner;
    r->mutex_lock(gate_lock);
    gate_open[gate] = true;
    r->cond_broadcast(gate_cond);
    r->mutex_unlock(gate_lock);
}

bool ar_gate_wait(int gate)
{
    const ar_runner *r = setup.runner;
    bool opened = true;
    r->mutex_lock(gate_lock);
    while (!gate_open[gate] && opened)
        opened = r->cond_wait_until(gate_cond, gate_lock, setup.deadline_ns) || gate_open[gate];
    opened = gate_open[gate];
    r->mutex_unlock(gate_lock);
    if (!opened)
        ar_fail(AR_HANG, "forced: gate %d never opened before the deadline", gate);
    return opened;
}

int ar_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3;                 /* ".", ".." and the directory's own descriptor */
}

void ar_sleep_us(uint64_t us)
{
    struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) != 0)
        ;
}
