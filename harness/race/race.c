/* race.c: the running iteration's state: its outcome, race points, gates,
 * chaos, per-thread randomness and the log of race-point events that a
 * capture keeps.
 *
 * One iteration runs at a time in a process, so this state is global; it is
 * touched from every thread the iteration starts, hence atomics and the
 * runner's locks (which sim owns like every other lock).
 */
#include "iteration.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

const char *const ar_outcome_names[AR_OUTCOME_COUNT] = {
    "ok", "panic", "deadlock", "fatal", "lost", "wrong_thread", "leak", "crash", "hang",
    "uncontrolled",
};

const ar_mode_info ar_modes[AR_MODE_COUNT] = {
    [AR_NATURAL] = { "natural", "no interference: the rate a user would see (a runner that owns "
                     "the schedule: POS schedules)" },
    [AR_CHAOS] = { "chaos", "seeded yields and delays at the race points (a runner that owns the "
                   "schedule: PCT schedules)" },
    [AR_FORCED] = { "forced", "the documented interleaving imposed with gates at the race points" },
    [AR_EXHAUSTIVE] = { "exhaustive", "every schedule within a bound, one program seed (runners "
                        "that own the schedule only, sim and the *_ctl ones: delay bounding, 2 "
                        "delays)" },
};

/* The log keeps the last LOG_SIZE events; fields are atomics so a reader
 * (the trap, the watchdog) never races a writer in TSan's eyes. */
#define LOG_SIZE 256
typedef struct {
    _Atomic uint64_t t_ns;
    _Atomic(const ar_point *) point;
    _Atomic long arg;
    _Atomic int worker;          /* the thread's label + 1; 0: unlabelled */
} log_event;
static log_event race_log[LOG_SIZE];
static _Atomic uint64_t race_log_next;

static const ar_runner *runner;
static ar_iteration_setup setup;
static _Atomic int outcome;
static char detail[256];          /* written once, by the winner of `outcome` */
static char tag[AR_TAG_BYTES];
static uint64_t started_ns;

static ar_mutex *gate_lock;       /* made and freed with each iteration */
static ar_cond *gate_cond;

/* This layer's thread-local slot. Threads other than the iteration's own
 * outlive iterations (the main thread), so the fields carry the epoch they
 * were set in and are reset lazily when a new iteration starts. */
typedef struct {
    uint64_t epoch;
    uint64_t rng, id;
    int label;                    /* +1; 0: none */
} thread_state;
_Static_assert(sizeof(thread_state) <= AR_SLOT_BYTES, "race slot");
_Static_assert(AR_SLOTS * AR_SLOT_BYTES <= AR_THREAD_LOCALS_BYTES, "thread-local slots");

static _Atomic uint64_t epoch = 1;
static _Atomic uint64_t thread_ordinal;

void ar_race_use_runner(const ar_runner *r) { runner = r; }
const ar_runner *ar_runner_now(void) { return runner; }

void *ar_thread_slot(int slot)
{
    return (unsigned char *)runner->thread_locals() + (size_t)slot * AR_SLOT_BYTES;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static thread_state *this_thread(void)
{
    thread_state *t = ar_thread_slot(AR_SLOT_RACE);
    uint64_t e = atomic_load(&epoch);
    if (t->epoch != e) {
        int label = t->label;     /* a thread keeps its label across iterations */
        *t = (thread_state){ .epoch = e, .label = label };
        t->id = atomic_fetch_add(&thread_ordinal, 1) + 1;
        t->rng = mix64(setup.seed ^ mix64(t->id));
    }
    return t;
}

uint64_t ar_rand(void)
{
    thread_state *t = this_thread();
    t->rng = mix64(t->rng);
    return t->rng;
}

uint64_t ar_thread_id(void) { return this_thread()->id; }
void ar_thread_label(int worker) { this_thread()->label = worker + 1; }

void ar_iteration_begin(const ar_iteration_setup *s)
{
    setup = *s;
    atomic_store(&outcome, AR_OK);
    detail[0] = '\0';
    tag[0] = '\0';
    atomic_store(&thread_ordinal, 0);
    atomic_store(&race_log_next, 0);  /* the log is this iteration's alone */
    atomic_fetch_add(&epoch, 1);
    gate_lock = runner->mutex_new();
    gate_cond = runner->cond_new();
    if (!gate_lock || !gate_cond) {
        fprintf(stderr, "asyncrace: %s: cannot make the gates' lock\n", runner->name);
        abort();
    }
    started_ns = ar_now_ns();
}

void ar_iteration_tag(const char *t) { snprintf(tag, sizeof tag, "%s", t); }

ar_outcome ar_iteration_end(char *out, size_t n, char *tag_out)
{
    snprintf(tag_out, AR_TAG_BYTES, "%s", tag);
    runner->cond_free(gate_cond);
    runner->mutex_free(gate_lock);
    gate_cond = NULL;
    gate_lock = NULL;
    ar_outcome o = (ar_outcome)atomic_load(&outcome);
    snprintf(out, n, "%s", detail);
    return o;
}

uint64_t ar_now_ns(void) { return runner->now_ns(); }
uint64_t ar_deadline_ns(void) { return setup.deadline_ns; }
bool ar_trap_enabled(void) { return setup.trap; }
ar_mode ar_mode_now(void) { return setup.mode; }
bool ar_failed(void) { return atomic_load(&outcome) != AR_OK; }
void ar_sleep_us(uint64_t us) { runner->sleep_ns(us * 1000); }

uint64_t ar_race_log_count(void) { return atomic_load(&race_log_next); }

void ar_race_log_dump(FILE *out)
{
    uint64_t end = atomic_load(&race_log_next);
    uint64_t begin = end > LOG_SIZE ? end - LOG_SIZE : 0;
    fprintf(out, "race-point log: last %llu of %llu events (t in us since the iteration began)\n",
            (unsigned long long)(end - begin), (unsigned long long)end);
    for (uint64_t i = begin; i < end; i++) {
        log_event *e = &race_log[i % LOG_SIZE];
        const ar_point *p = atomic_load(&e->point);
        uint64_t t = atomic_load(&e->t_ns);
        int worker = atomic_load(&e->worker);
        char who[16] = "  -";
        if (worker)
            snprintf(who, sizeof who, "%3d", worker - 1);
        fprintf(out, "  %10.1f  worker %s  %-28s %ld\n",
                t > started_ns ? (double)(t - started_ns) / 1e3 : 0.0,
                who, p ? p->name : "?", atomic_load(&e->arg));
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
        runner->yield();
        return;
    default: {
        uint64_t until = ar_now_ns() + (r >> 8) % 50000;
        while (ar_now_ns() < until)
            ;
    }
    }
}

void ar_race_point(const ar_point *p, long arg)
{
    uint64_t i = atomic_fetch_add_explicit(&race_log_next, 1, memory_order_relaxed);
    log_event *e = &race_log[i % LOG_SIZE];
    atomic_store_explicit(&e->t_ns, runner->log_now_ns ? runner->log_now_ns() : ar_now_ns(),
                          memory_order_relaxed);
    atomic_store_explicit(&e->point, p, memory_order_relaxed);
    atomic_store_explicit(&e->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&e->worker, this_thread()->label, memory_order_relaxed);

    if (runner->race_point)       /* the runner owns the schedule: its choice, not chaos */
        runner->race_point(p->name, arg);
    else if (setup.mode == AR_CHAOS)
        chaos_delay();
    if (setup.mode == AR_FORCED && setup.forced)
        setup.forced(setup.scenario, p, arg);
}

/* ---- gates ---- */

void ar_gate_init(ar_gate *g, const char *name)
{
    g->name = name;
    g->opened = 0;
}

void ar_gate_open(ar_gate *g)
{
    runner->mutex_lock(gate_lock);
    g->opened++;
    runner->cond_broadcast(gate_cond);
    runner->mutex_unlock(gate_lock);
}

bool ar_gate_wait_count(ar_gate *g, unsigned n)
{
    runner->mutex_lock(gate_lock);
    while (g->opened < n && runner->cond_wait_until(gate_cond, gate_lock, setup.deadline_ns))
        ;
    bool opened = g->opened >= n;
    unsigned seen = g->opened;
    runner->mutex_unlock(gate_lock);
    if (!opened)
        ar_fail(AR_HANG, "forced: gate '%s' opened %u of the %u times waited for before the "
                "deadline", g->name ? g->name : "(unnamed)", seen, n);
    return opened;
}

bool ar_gate_wait(ar_gate *g) { return ar_gate_wait_count(g, 1); }
