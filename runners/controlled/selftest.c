/* selftest.c: build/tools/ctltest, ordinary pthread programs run unmodified
 * under the scheduler core on real threads (sim_threads, through the
 * interposer), and what the core must do with them.
 *
 *   ctltest [--test NAME] [--list]     the checks, in runners/selftest.h's lines
 *   ctltest --bench                    switch cost and schedules per second
 *
 * The programs below call pthread_create, pthread_mutex_lock,
 * pthread_cond_wait, clock_gettime and nanosleep themselves, as a user's
 * program would: nothing in them knows the scheduler. Every check can fail:
 * the overdraft and the lost wake-up are real (two threads, one balance; a
 * flag read outside its lock), the deadlock is real (AB/BA), the 10 s sleep
 * is 10 s of the clock the program reads.
 */
#include "selftest.h"
#include "sim/sim.h"
#include "sim/sched.h"
#include "sim/contexts.h"
#include "controlled/interpose.h"

#include <dirent.h>
#include <uv.h>
#include <errno.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

static ar_selftest results = { .program = "ctltest", .subject = "threads" };
#define CHECK(c, ...) AR_SELFTEST_CHECK(&results, (c), __VA_ARGS__)

/* The test's own wall clock: the host thread is not a task, so libc answers. */
static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void configure(const char *strategy, int bound)
{
    sim_options o = SIM_OPTIONS_DEFAULT;
    o.strategy = strategy;
    o.dfs_bound = bound;
    o.step_bound = 100000;
    o.threads = true;
    char err[256];
    if (ar_trap_escapes(err, sizeof err) != 0 || sim_configure(&o, err, sizeof err) != 0) {
        fprintf(stderr, "ctltest: %s\n", err);
        exit(2);
    }
}

/* Entries of a /proc directory, or -1. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* OS threads of this process now (the abandoned runs' must be gone). */
static int os_threads(void) { return entries("/proc/self/task"); }

/* Two threads running fn(0) and fn(1), joined; their ids in t. */
static void pair(void *(*fn)(void *), pthread_t t[2])
{
    for (intptr_t i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, fn, (void *)i);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
}

/* ---- program 1: check, then act, in two critical sections ---- */

static pthread_mutex_t bal_lock = PTHREAD_MUTEX_INITIALIZER;
static int balance;
static bool one_section;          /* the fix: check and act under one lock */

static void *withdraw(void *arg)
{
    if (one_section) {
        pthread_mutex_lock(&bal_lock);
        if (balance >= 10)
            balance -= 10;
        pthread_mutex_unlock(&bal_lock);
        return NULL;
    }
    pthread_mutex_lock(&bal_lock);
    bool enough = balance >= 10;
    pthread_mutex_unlock(&bal_lock);
    if (enough) {                 /* the other withdrawal may come in here */
        pthread_mutex_lock(&bal_lock);
        balance -= 10;
        pthread_mutex_unlock(&bal_lock);
    }
    return NULL;
}

static void bank_main(void *arg)
{
    balance = 10;
    pthread_t t[2];
    pair(withdraw, t);
}

/* Searches program fn to the end of the bound: schedules run, and the first
 * that failed (0: none). */
static uint64_t search(void (*fn)(void *), bool (*failed)(void), const char *strategy,
                       int bound, uint64_t cap, uint64_t *first_failure, bool *exhausted)
{
    configure(strategy, bound);
    uint64_t n = 0;
    *first_failure = 0;
    while (!sim_exhausted() && n < cap) {
        sim_set_seed(n + 1);
        sim_run(fn, NULL);
        n++;
        if (failed() && !*first_failure)
            *first_failure = n;
    }
    *exhausted = sim_exhausted();
    return n;
}

static bool overdrawn(void) { return balance < 0; }

static void test_overdraft(void)
{
    uint64_t first, n;
    bool done;
    one_section = false;
    n = search(bank_main, overdrawn, "dfs", 0, 10000, &first, &done);
    CHECK(done && !first, "dfs bound 0: exhausted %d after %llu schedules, first overdraft %llu "
          "(it needs a preemption)", done, (unsigned long long)n, (unsigned long long)first);
    printf("  two sections, dfs bound 0: exhausted after %llu schedules, no overdraft\n",
           (unsigned long long)n);
    n = search(bank_main, overdrawn, "dfs", 1, 10000, &first, &done);
    CHECK(first > 0, "dfs bound 1: no overdraft in %llu schedules", (unsigned long long)n);
    printf("  two sections, dfs bound 1: overdrawn at schedule %llu of %llu\n",
           (unsigned long long)first, (unsigned long long)n);
    one_section = true;
    n = search(bank_main, overdrawn, "dfs", 2, 100000, &first, &done);
    CHECK(done && !first, "one section, dfs bound 2: exhausted %d after %llu schedules, first "
          "overdraft %llu", done, (unsigned long long)n, (unsigned long long)first);
    printf("  one section, dfs bound 2: exhausted after %llu schedules, no overdraft\n",
           (unsigned long long)n);
}

/* ---- program 2: a wake-up lost between a check and the wait ---- */

static pthread_mutex_t ready_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready_cond = PTHREAD_COND_INITIALIZER;
static bool ready, check_under_lock;

static void *consumer(void *arg)
{
    if (check_under_lock) {
        pthread_mutex_lock(&ready_lock);
        while (!ready)
            pthread_cond_wait(&ready_cond, &ready_lock);
        pthread_mutex_unlock(&ready_lock);
        return NULL;
    }
    if (!ready) {                 /* read outside the lock: the signal can come first */
        pthread_mutex_lock(&ready_lock);
        pthread_cond_wait(&ready_cond, &ready_lock);
        pthread_mutex_unlock(&ready_lock);
    }
    return NULL;
}

static void *producer(void *arg)
{
    pthread_mutex_lock(&ready_lock);
    ready = true;
    pthread_cond_signal(&ready_cond);
    pthread_mutex_unlock(&ready_lock);
    return NULL;
}

static void wakeup_main(void *arg)
{
    ready = false;
    pthread_t c, p;
    pthread_create(&c, NULL, consumer, NULL);
    pthread_create(&p, NULL, producer, NULL);
    pthread_join(c, NULL);
    pthread_join(p, NULL);
}

static bool hung(void) { return sim_last_result()->status == SIM_DEADLOCK; }

static void test_lost_wakeup(void)
{
    uint64_t first, n;
    bool done;
    check_under_lock = false;
    n = search(wakeup_main, hung, "dfs", 1, 10000, &first, &done);
    CHECK(first > 0, "dfs bound 1: no lost wake-up in %llu schedules", (unsigned long long)n);
    const char *detail = NULL;
    for (uint64_t i = 0; i < 200 && !detail; i++) {   /* the detail of one, by pct */
        configure("pct", 0);
        sim_set_seed(i + 1);
        sim_run(wakeup_main, NULL);
        if (hung())
            detail = sim_last_result()->detail;
    }
    CHECK(detail && strstr(detail, "cond_wait"), "no deadlock naming the consumer's cond_wait "
          "in 200 pct schedules: %s", detail ? detail : "none");
    printf("  check outside the lock: dfs bound 1 hung at schedule %llu; pct: %s\n",
           (unsigned long long)first, detail);
    check_under_lock = true;
    n = search(wakeup_main, hung, "dfs", 2, 100000, &first, &done);
    CHECK(done && !first, "check under the lock, dfs bound 2: exhausted %d after %llu schedules, "
          "first hang %llu", done, (unsigned long long)n, (unsigned long long)first);
    printf("  check under the lock, dfs bound 2: exhausted after %llu schedules, no hang\n",
           (unsigned long long)n);
}

/* ---- program 3: AB/BA, and the runs it abandons ---- */

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER, lock_b = PTHREAD_MUTEX_INITIALIZER;

static void *ab(void *arg)
{
    bool reverse = arg != NULL;
    pthread_mutex_lock(reverse ? &lock_b : &lock_a);
    pthread_mutex_lock(reverse ? &lock_a : &lock_b);
    pthread_mutex_unlock(reverse ? &lock_a : &lock_b);
    pthread_mutex_unlock(reverse ? &lock_b : &lock_a);
    return NULL;
}

static void abba_main(void *arg)
{
    pthread_t t[2];
    pair(ab, t);
}

static void test_abba_abandoned(void)
{
    configure("random", 2);
    sim_run(abba_main, NULL);       /* first: a sanitizer starts its own thread at the first */
    int before = os_threads();      /* a run returns once its threads are joined */
    int deadlocks = 0, ok = 0;
    static char detail[1024];
    for (uint64_t i = 0; i < 300; i++) {
        sim_set_seed(i + 1);
        sim_run(abba_main, NULL);
        const sim_result *r = sim_last_result();
        if (r->status == SIM_DEADLOCK) {
            if (!deadlocks++)
                snprintf(detail, sizeof detail, "%s", r->detail);
        } else {
            ok += r->status == SIM_OK;
        }
    }
    CHECK(deadlocks > 0 && ok > 0, "300 random schedules: %d deadlocks, %d ran through",
          deadlocks, ok);
    CHECK(strstr(detail, "mutex_lock(mutex 1, held by task") &&
          strstr(detail, "mutex_lock(mutex 2, held by task"),
          "the deadlock does not name both waits: %s", detail);
    int after = os_threads();
    CHECK(after == before, "OS threads: %d before, %d after %d abandoned runs", before, after,
          deadlocks);
    CHECK(sim_live_tasks() == 0, "%ld tasks left after the runs", sim_live_tasks());
    printf("  300 random schedules: %d deadlocks (%s), %d ran through; OS threads %d before, "
           "%d after\n", deadlocks, detail, ok, before, after);
}

/* ---- program 4: the program's clocks and sleeps are virtual ---- */

static struct {
    uint64_t mono0, mono1, slept, real0;
    time_t t0;
    int timedwait;
} vt;

static uint64_t ns_of(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void clocks_main(void *arg)
{
    vt.mono0 = ns_of(CLOCK_MONOTONIC);
    vt.real0 = ns_of(CLOCK_REALTIME);
    vt.t0 = time(NULL);
    struct timespec ten = { 10, 0 };
    nanosleep(&ten, NULL);
    vt.slept = ns_of(CLOCK_MONOTONIC) - vt.mono0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_t c;
    pthread_cond_init(&c, &ca);
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&m);
    vt.timedwait = pthread_cond_timedwait(&c, &m, &until);
    pthread_mutex_unlock(&m);
    vt.mono1 = ns_of(CLOCK_MONOTONIC);
}

static void test_virtual_clocks(void)
{
    configure("random", 2);
    memset(&vt, 0, sizeof vt);
    uint64_t t0 = wall_ns();
    sim_set_seed(1);
    sim_run(clocks_main, NULL);
    uint64_t wall = wall_ns() - t0;
    CHECK(sim_last_result()->status == SIM_OK, "status %s", sim_status_names[sim_last_result()->status]);
    CHECK(vt.mono0 == SIM_EPOCH_NS + 1000 || vt.mono0 < SIM_EPOCH_NS + 100000,
          "CLOCK_MONOTONIC read %llu at the start, not the run's virtual epoch",
          (unsigned long long)vt.mono0);
    CHECK(vt.slept >= 10000000000ull && vt.slept < 10001000000ull,
          "nanosleep(10 s): the program's clock moved %llu ns", (unsigned long long)vt.slept);
    CHECK(vt.timedwait == ETIMEDOUT, "pthread_cond_timedwait returned %d, expected ETIMEDOUT",
          vt.timedwait);
    CHECK(vt.mono1 - vt.mono0 >= 15000000000ull, "after the 5 s timed wait the clock moved %llu ns",
          (unsigned long long)(vt.mono1 - vt.mono0));
    CHECK((uint64_t)vt.t0 == vt.real0 / 1000000000u, "time() %lld, CLOCK_REALTIME %llu ns",
          (long long)vt.t0, (unsigned long long)vt.real0);
    CHECK(wall < 1000000000ull, "15 virtual seconds took %.3f s of wall time", wall / 1e9);
    printf("  slept 10 s and timed out a 5 s wait in %.2f ms of wall time; CLOCK_REALTIME "
           "%lld s at the start\n", wall / 1e6, (long long)vt.t0);
}

/* ---- program 5: the tasks are real threads ---- */

static _Thread_local int mine;
static struct {
    pthread_t self[2];
    long tid[2];
    int mine[2];
    int err[2];
    int detach;
} rt;

static void *who(void *arg)
{
    int i = (int)(intptr_t)arg;
    mine += i + 1;
    errno = 100 + i;
    sched_yield();                /* the other runs here */
    rt.self[i] = pthread_self();
    rt.tid[i] = syscall(SYS_gettid);
    rt.mine[i] = mine;
    rt.err[i] = errno;
    return NULL;
}

static _Atomic int detached_ran, main_ended, ran_after_main;
static pthread_mutex_t detached_lock = PTHREAD_MUTEX_INITIALIZER;

static void *detached_body(void *arg)
{
    pthread_mutex_lock(&detached_lock);   /* a point of its own, after main may have ended */
    detached_ran = 1;
    ran_after_main += main_ended;
    pthread_mutex_unlock(&detached_lock);
    return arg;
}

static void real_main(void *arg)
{
    pthread_t t[2], d;
    pthread_create(&d, NULL, detached_body, NULL);
    rt.detach = pthread_detach(d);    /* never joined: the run still waits for it */
    main_ended = 0;
    pair(who, t);
    for (int i = 0; i < 2; i++)
        if (!pthread_equal(t[i], rt.self[i]))
            rt.mine[i] = -1;      /* pthread_create named another thread than the task's */
    main_ended = 1;
}

static void test_tasks_are_threads(void)
{
    configure("random", 2);
    memset(&rt, 0, sizeof rt);
    detached_ran = 0;
    sim_set_seed(3);
    sim_run(real_main, NULL);
    CHECK(sim_last_result()->status == SIM_OK, "status %s", sim_status_names[sim_last_result()->status]);
    int detached_bad = 0;
    ran_after_main = 0;
    for (uint64_t seed = 1; seed <= 100; seed++) {
        detached_ran = 0;
        sim_set_seed(seed);
        sim_run(real_main, NULL);
        detached_bad += sim_last_result()->status != SIM_OK || rt.detach || !detached_ran;
    }
    CHECK(!detached_bad, "a detached thread: in %d of 100 schedules the run failed, "
          "pthread_detach failed or the thread did not run to its end", detached_bad);
    CHECK(ran_after_main > 0 && ran_after_main < 100, "the detached thread took its lock after "
          "main ended in %d of 100 schedules; both orders should occur", ran_after_main);
    CHECK(rt.tid[0] && rt.tid[1] && rt.tid[0] != rt.tid[1] && rt.tid[0] != syscall(SYS_gettid),
          "kernel thread ids %ld and %ld (the host is %ld)", rt.tid[0], rt.tid[1],
          (long)syscall(SYS_gettid));
    CHECK(rt.mine[0] == 1 && rt.mine[1] == 2, "thread-locals: %d and %d, expected 1 and 2 "
          "(-1: pthread_create's id is not the thread's pthread_self)", rt.mine[0], rt.mine[1]);
    CHECK(rt.err[0] == 100 && rt.err[1] == 101, "errno: %d and %d, expected 100 and 101",
          rt.err[0], rt.err[1]);
    printf("  two tasks on kernel threads %ld and %ld, each with its own thread-locals and errno; "
           "a detached one ran to its end (after main ended in %d of 100 schedules)\n",
           rt.tid[0], rt.tid[1], ran_after_main);
}

/* ---- program 5b: a mutex made where a freed one was ---- */

/* malloc may hand a destroyed mutex's memory to the next one, or not, as it
 * pleases: which it does must not change the schedule. */
static pthread_mutex_t *slots[2], *current;
static bool same_slot;

static void *locker(void *arg)
{
    pthread_mutex_lock(current);
    pthread_mutex_unlock(current);
    return arg;
}

static void reuse_main(void *arg)
{
    pthread_t t;
    current = slots[0];
    pthread_mutex_init(current, NULL);
    pthread_create(&t, NULL, locker, NULL);
    pthread_join(t, NULL);
    pthread_mutex_destroy(slots[0]);
    current = same_slot ? slots[0] : slots[1];
    pthread_mutex_init(current, NULL);
    pthread_create(&t, NULL, locker, NULL);
    pthread_mutex_lock(current);
    pthread_mutex_unlock(current);
    pthread_join(t, NULL);
    pthread_mutex_destroy(current);
}

static void test_reused_memory(void)
{
    pthread_mutex_t mem[2];
    slots[0] = &mem[0];
    slots[1] = &mem[1];
    uint64_t hash[2];
    for (int round = 0; round < 2; round++) {
        same_slot = round == 0;
        configure("random", 2);
        sim_set_seed(7);
        sim_run(reuse_main, NULL);
        hash[round] = sim_last_result()->hash;
    }
    CHECK(hash[0] == hash[1], "a second mutex in the first one's memory and in its own: "
          "schedule hashes %016llx and %016llx (its number came from the address)",
          (unsigned long long)hash[0], (unsigned long long)hash[1]);
    printf("  a mutex made in a destroyed one's memory is numbered as a new one: hash %016llx "
           "both ways\n", (unsigned long long)hash[0]);
}

/* ---- programs 5c-5f: what the scheduler does not order ends the run, named ---- */

static _Atomic int spin_flag;
static pthread_mutex_t spin_lock = PTHREAD_MUTEX_INITIALIZER;

static void *spinner(void *arg)
{
    while (!atomic_load_explicit(&spin_flag, memory_order_relaxed))
        ;                         /* no call: only the other thread can end this */
    return arg;
}

static void *flag_setter(void *arg)
{
    pthread_mutex_lock(&spin_lock);
    atomic_store(&spin_flag, 1);
    pthread_mutex_unlock(&spin_lock);
    return arg;
}

static void spin_main(void *arg)
{
    pthread_t a, b;
    atomic_store(&spin_flag, 0);
    pthread_create(&a, NULL, spinner, NULL);
    pthread_create(&b, NULL, flag_setter, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
}

static int never_written[2];      /* a blocking pipe nobody writes during the run */

static void *blocked_reader(void *arg)
{
    char c;
    if (read(never_written[0], &c, 1) != 1)  /* interposed, then asleep in the kernel */
        perror("ctltest: read");
    return arg;
}

/* clock_gettime by a `syscall` instruction of the program's own, as a library
 * that skips libc would: only the seccomp filter sees it (escapes.c). */
static long inline_clock_gettime(struct timespec *ts)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"((long)SYS_clock_gettime), "D"((long)CLOCK_MONOTONIC),
                     "S"(ts) : "rcx", "r11", "memory");
    return r;
}

static void *inline_reader(void *arg)
{
    struct timespec ts;
    inline_clock_gettime(&ts);
    return arg;
}

static void inline_main(void *arg)
{
    pthread_t a;
    pthread_create(&a, NULL, inline_reader, NULL);
    pthread_join(a, NULL);
}

static void *exiter(void *arg)
{
    pthread_exit(arg);                /* caught.c: past the core's end of a task */
}

static void exit_main(void *arg)
{
    pthread_t a;
    pthread_create(&a, NULL, exiter, NULL);
    pthread_join(a, NULL);
}

static void *poller(void *arg)
{
    struct pollfd p = { .fd = never_written[0], .events = POLLIN };
    poll(&p, 1, 10);                 /* caught.c: a wait the scheduler cannot end */
    return arg;
}

static void caught_main(void *arg)
{
    pthread_t a;
    pthread_create(&a, NULL, poller, NULL);
    pthread_join(a, NULL);
}

static void blocked_main(void *arg)
{
    pthread_t a, b;
    pthread_create(&a, NULL, blocked_reader, NULL);
    pthread_create(&b, NULL, flag_setter, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
}

static void escape_main(void *arg)
{
    pthread_t b;
    pthread_create(&b, NULL, flag_setter, NULL);
    char params[120] = {0};       /* io_uring: the kernel would complete it on its own time */
    long fd = syscall(SYS_io_uring_setup, 8, params);
    if (fd >= 0)
        close((int)fd);
    pthread_join(b, NULL);
}

static int foreign_pipe[2];
static sem_t foreign_go;

static _Atomic int outsider_tid;

static void *outsider(void *arg)  /* started by the host, outside any run */
{
    atomic_store(&outsider_tid, gettid());
    sem_wait(&foreign_go);
    if (write(foreign_pipe[1], "x", 1) != 1)
        perror("ctltest: outsider write");
    return arg;
}

static bool outsider_asleep(void)
{
    long nr;
    int tid = atomic_load(&outsider_tid);
    return tid && sim_thread_state(tid, &nr) == 'S';
}

static void foreign_main(void *arg)
{
    pthread_t b;
    pthread_create(&b, NULL, flag_setter, NULL);
    sem_post(&foreign_go);
    char c;
    if (read(foreign_pipe[0], &c, 1) != 1)  /* a blocking pipe: returns once the outsider wrote */
        perror("ctltest: read");
    pthread_join(b, NULL);
}

typedef struct { sim_status status; char detail[512]; bool next_clean; } stuck;

/* One run of fn on dfs (the lowest id goes first: deterministic); then a
 * normal program, which must run clean: the process got over it. */
static stuck stuck_run(void (*fn)(void *))
{
    configure("dfs", 0);
    sim_set_seed(1);
    sim_run(fn, NULL);
    stuck s = { sim_last_result()->status, "", false };
    snprintf(s.detail, sizeof s.detail, "%s", sim_last_result()->detail);
    configure("random", 2);
    one_section = true;
    sim_set_seed(1);
    sim_run(bank_main, NULL);
    s.next_clean = sim_last_result()->status == SIM_OK && balance == 0;
    return s;
}

#define EXPECT_UNCONTROLLED(r, want1, want2)                                          \
    CHECK((r).status == SIM_UNCONTROLLED && strstr((r).detail, want1) &&            \
          strstr((r).detail, want2) && (r).next_clean, "status %s, detail: %s; the "   \
          "next run %s", sim_status_names[(r).status], (r).detail,                    \
          (r).next_clean ? "clean" : "not clean")

static void test_uncontrolled(void)
{
    sim_threads_set_stuck_ms(300);
    configure("random", 2);
    sim_set_seed(1);
    sim_run(bank_main, NULL);     /* first, for TSan's own thread, started with the first one */
    int before = os_threads();
    uint64_t t0 = wall_ns();
    stuck r = stuck_run(escape_main);
    EXPECT_UNCONTROLLED(r, "syscall(425, io_uring_setup)", "ctltest");
    printf("  io_uring through syscall(): %s\n", r.detail);

    sem_init(&foreign_go, 0, 0);
    if (pipe(foreign_pipe) != 0)
        perror("ctltest: pipe");
    pthread_t out;
    atomic_store(&outsider_tid, 0);
    pthread_create(&out, NULL, outsider, NULL);   /* the host's: a plain thread */
    while (!outsider_asleep())    /* in sem_wait before the run: its first call in it is write */
        usleep(1000);
    r = stuck_run(foreign_main);
    sem_post(&foreign_go);        /* a run that ended before its own post must not strand it */
    pthread_join(out, NULL);
    close(foreign_pipe[0]);
    close(foreign_pipe[1]);
    EXPECT_UNCONTROLLED(r, "did not start called", "ctltest");
    printf("  a thread started outside the run: %s\n", r.detail);

    if (pipe(never_written) != 0)
        perror("ctltest: pipe");
    r = stuck_run(blocked_main);
    EXPECT_UNCONTROLLED(r, "blocks outside the scheduler", "(system call 0, read)");
    printf("  a blocking read of an empty pipe: %s\n", r.detail);
    r = stuck_run(inline_main);
    EXPECT_UNCONTROLLED(r, "an inline system call (228, clock_gettime) at ctltest", "past the "
                        "interposer");
    printf("  an inline syscall instruction: %s\n", r.detail);
    struct timespec inline_ts = { 0, 0 }, libc_ts;
    long inline_r = inline_clock_gettime(&inline_ts);   /* the host's: made for it, in the handler */
    clock_gettime(CLOCK_MONOTONIC, &libc_ts);
    CHECK(inline_r == 0 && inline_ts.tv_sec > 0 && inline_ts.tv_sec <= libc_ts.tv_sec,
          "the same inline call outside a run: returned %ld, %lld s (libc: %lld s)", inline_r,
          (long long)inline_ts.tv_sec, (long long)libc_ts.tv_sec);
    r = stuck_run(exit_main);
    EXPECT_UNCONTROLLED(r, "pthread_exit from ctltest", "behind the scheduler");
    r = stuck_run(caught_main);
    EXPECT_UNCONTROLLED(r, "poll from ctltest", "it may wait in the kernel");
    printf("  a call the interposer catches: %s\n", r.detail);
    if (write(never_written[1], "xx", 2) != 2)   /* the abandoned reader returns, and exits */
        perror("ctltest: write");
    close(never_written[0]);
    close(never_written[1]);
#if defined(__SANITIZE_THREAD__)
    (void)spin_main;
    printf("  (the pure spin is not provoked under TSan: it holds a signal back from a thread "
           "that never calls libc, so the watchdog could only end the process)\n");
#else
    r = stuck_run(spin_main);
    EXPECT_UNCONTROLLED(r, "spins", "ctltest");
    printf("  a pure spin: %s\n", r.detail);
#endif
    CHECK(os_threads() == before, "OS threads: %d before, %d after", before, os_threads());
    printf("  each ended its run in %.1f s in all, and the next run was clean\n",
           (double)(wall_ns() - t0) / 1e9);
    sim_threads_set_stuck_ms(0);
}

/* ---- program 5g: an abandoned run's descriptors ---- */

static int open_fds(void) { return entries("/proc/self/fd") - 1; }   /* less opendir's own */

static pthread_mutex_t twice = PTHREAD_MUTEX_INITIALIZER;

static void leaves_fds_main(void *arg)
{
    int p[2];
    if (pipe(p) != 0 || socket(AF_INET, SOCK_STREAM, 0) < 0)
        perror("ctltest: pipe, socket");
    pthread_mutex_lock(&twice);
    pthread_mutex_lock(&twice);   /* a deadlock: the run is abandoned with three fds open */
}

static void test_abandoned_fds(void)
{
    configure("random", 2);
    int before = open_fds();
    sim_set_seed(1);
    sim_run(leaves_fds_main, NULL);
    sim_status st = sim_last_result()->status;
    int after = open_fds();
    CHECK(st == SIM_DEADLOCK && after == before, "status %s; descriptors: %d before, %d after",
          sim_status_names[st], before, after);
    printf("  a run abandoned with a pipe and a socket open: %d descriptors before, %d after\n",
           before, after);
}

/* ---- program 5h: semaphores, rwlocks, once and getrandom ---- */

static sem_t items;
static pthread_rwlock_t table_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_once_t once_control;
static int inits, reads_saw_write, got_item;
static pthread_barrier_t all_three;
static _Atomic int before_barrier, serials, early;   /* early: one left before all arrived */

static void meet(void)
{
    atomic_fetch_add(&before_barrier, 1);
    if (pthread_barrier_wait(&all_three) == PTHREAD_BARRIER_SERIAL_THREAD)
        atomic_fetch_add(&serials, 1);
    early += atomic_load(&before_barrier) != 3;
}
static unsigned char drawn[2][16];

static void init_once(void)
{
    pthread_mutex_lock(&spin_lock);   /* a point inside init: the other caller must wait */
    inits++;
    pthread_mutex_unlock(&spin_lock);
}

static void *sem_consumer(void *arg)
{
    pthread_once(&once_control, init_once);
    sem_wait(&items);                 /* waits in the core until the sem_producer posts */
    got_item = 1;
    pthread_rwlock_rdlock(&table_lock);
    reads_saw_write += inits;
    pthread_rwlock_unlock(&table_lock);
    meet();
    return arg;
}

static void *sem_producer(void *arg)
{
    pthread_once(&once_control, init_once);
    pthread_rwlock_wrlock(&table_lock);
    pthread_rwlock_unlock(&table_lock);
    sem_post(&items);
    meet();
    return arg;
}

static void sync_main(void *arg)
{
    pthread_t t[2];
    once_control = PTHREAD_ONCE_INIT;
    inits = reads_saw_write = got_item = 0;
    before_barrier = serials = early = 0;
    sem_init(&items, 0, 0);
    pthread_barrier_init(&all_three, NULL, 3);
    pthread_create(&t[0], NULL, sem_consumer, NULL);
    pthread_create(&t[1], NULL, sem_producer, NULL);
    meet();
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    pthread_barrier_destroy(&all_three);
    sem_destroy(&items);
}

static void random_main(void *arg)
{
    if (getrandom(drawn[(intptr_t)arg], 8, 0) != 8)
        perror("ctltest: getrandom");
    arc4random_buf(drawn[(intptr_t)arg] + 8, 8);   /* libevent's */
}

static void test_sync_objects(void)
{
    configure("dfs", 2);
    uint64_t n = 0, bad = 0;
    while (!sim_exhausted() && n < 100000) {
        sim_set_seed(++n);
        sim_run(sync_main, NULL);
        bad += sim_last_result()->status != SIM_OK || inits != 1 || !got_item ||
               reads_saw_write != 1 || serials != 1 || early;
    }
    CHECK(sim_exhausted() && !bad, "dfs bound 2: exhausted %d after %llu schedules, %llu "
          "wrong (a deadlock, init run twice, an item lost, a barrier that let one through "
          "early or named no serial thread)", sim_exhausted(),
          (unsigned long long)n, (unsigned long long)bad);
    configure("random", 2);
    unsigned char again[16];
    sim_set_seed(42);
    sim_run(random_main, (void *)0);
    memcpy(again, drawn[0], sizeof again);
    sim_set_seed(42);
    sim_run(random_main, (void *)0);
    sim_set_seed(43);
    sim_run(random_main, (void *)1);
    CHECK(!memcmp(again, drawn[0], sizeof again) && memcmp(drawn[0], drawn[1], sizeof again),
          "getrandom and arc4random: seed 42 twice %s, seeds 42 and 43 %s",
          memcmp(again, drawn[0], sizeof again) ? "differ" : "agree",
          memcmp(drawn[0], drawn[1], sizeof again) ? "differ" : "agree");
    printf("  a semaphore, an rwlock, a once and a barrier shared by three threads: %llu "
           "schedules (dfs bound 2) to the end, each init once, each item delivered, nobody "
           "through the barrier early; getrandom and arc4random follow the seed\n",
           (unsigned long long)n);
}

/* ---- program 6: one seed, one schedule; a failing schedule replays ---- */

static void test_replay(void)
{
    check_under_lock = false;
    uint64_t hashes[2];
    for (int round = 0; round < 2; round++) {
        configure("pct", 0);
        for (uint64_t i = 0; i < 300; i++) {
            sim_set_seed(i + 1);
            sim_run(wakeup_main, NULL);
        }
        hashes[round] = sim_last_result()->run_hash;
    }
    CHECK(hashes[0] == hashes[1], "300 pct schedules twice: run hashes %016llx and %016llx",
          (unsigned long long)hashes[0], (unsigned long long)hashes[1]);
    configure("pct", 0);
    uint64_t seed = 0;
    for (uint64_t i = 0; i < 300 && !seed; i++) {
        sim_set_seed(i + 1);
        sim_run(wakeup_main, NULL);
        if (hung())
            seed = i + 1;
    }
    CHECK(seed, "no lost wake-up in 300 pct schedules");
    uint64_t hash = sim_last_result()->hash;
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/ctltest-%d.json",
             getenv("TMPDIR") ? getenv("TMPDIR") : P_tmpdir, (int)getpid());
    sim_schedule_id id = { "lost_wakeup", "check_outside", "pct", NULL, NULL, 0, "ctltest" };
    CHECK(sim_schedule_write(path, &id, 0, seed, "deadlock", "", err, sizeof err) == 0,
          "write: %s", err);
    sim_schedule *s = sim_schedule_load(path, &id, err, sizeof err);
    unlink(path);
    CHECK(s, "load: %s", err);
    int same = 0;
    for (int i = 0; i < 10; i++) {
        sim_replay(s);
        sim_run(wakeup_main, NULL);
        const sim_result *r = sim_last_result();
        same += r->hash == hash && hung() && !r->diverged;
    }
    sim_replay(NULL);
    sim_schedule_free(s);
    CHECK(same == 10, "10 replays: %d identical (hash %016llx, a deadlock, no divergence)", same,
          (unsigned long long)hash);
    printf("  300 pct schedules twice: run hash %016llx both times; seed %llu hung, replayed "
           "10 times: 10 identical\n", (unsigned long long)hashes[0], (unsigned long long)seed);
}

/* ---- program 7: a real libuv loop woken from another thread ---- */

/* libuv initialises some state once per process, in the first loop's run
 * (the signal lock pipe: a pipe, and a write to it), so a process's first
 * schedule has points no later one has. Each comparison below starts after
 * one such run. */
static void warm_up(void (*fn)(void *))
{
    configure("random", 2);
    sim_set_seed(12345);
    sim_run(fn, NULL);
}

static struct {
    uv_loop_t loop;
    uv_async_t async;
    _Atomic int sent;
    int callbacks;
    bool done;
} ua;

enum { SENDS = 3 };

static void on_async(uv_async_t *a)
{
    ua.callbacks++;               /* sends that land before the loop runs this coalesce */
    if (atomic_load(&ua.sent) == SENDS)
        uv_close((uv_handle_t *)a, NULL);
}

static void *sender(void *arg)
{
    for (int i = 0; i < SENDS; i++) {
        atomic_fetch_add(&ua.sent, 1);
        uv_async_send(&ua.async);
        sched_yield();            /* the loop may run between two sends, or not */
    }
    return NULL;
}

static void async_main(void *arg)
{
    memset(&ua, 0, sizeof ua);
    uv_loop_init(&ua.loop);
    uv_async_init(&ua.loop, &ua.async, on_async);
    pthread_t t;
    pthread_create(&t, NULL, sender, NULL);
    uv_run(&ua.loop, UV_RUN_DEFAULT);  /* returns once the async handle is closed */
    pthread_join(t, NULL);
    ua.done = uv_loop_close(&ua.loop) == 0;
}

static void test_libuv_async(void)
{
    bool seen[SENDS + 1] = { false };
    uint64_t hashes[2] = { 0, 0 };
    int bad = 0;
    warm_up(async_main);
    for (int round = 0; round < 2; round++) {
        configure("random", 2);
        for (uint64_t i = 0; i < 200; i++) {
            sim_set_seed(i + 1);
            sim_run(async_main, NULL);
            if (sim_last_result()->status != SIM_OK || !ua.done || ua.callbacks < 1 ||
                ua.callbacks > SENDS)
                bad++;
            else
                seen[ua.callbacks] = true;
        }
        hashes[round] = sim_last_result()->run_hash;
    }
    CHECK(!bad, "%d of 400 schedules did not end with the loop closed and 1 to %d callbacks "
          "(last: %s %s)", bad, SENDS, sim_status_names[sim_last_result()->status],
          sim_last_result()->detail);
    int kinds = 0;
    for (int k = 1; k <= SENDS; k++)
        kinds += seen[k];
    CHECK(kinds >= 2, "every schedule saw the same number of callbacks: the sends and the "
          "loop were not interleaved");
    CHECK(hashes[0] == hashes[1], "200 random schedules twice: run hashes %016llx and %016llx",
          (unsigned long long)hashes[0], (unsigned long long)hashes[1]);
    printf("  uv_async_send x%d from another thread: callbacks seen:", SENDS);
    for (int k = 1; k <= SENDS; k++)
        if (seen[k])
            printf(" %d", k);
    printf("; 200 random schedules twice: run hash %016llx both times\n",
           (unsigned long long)hashes[0]);
}

/* ---- program 8: libuv TCP echo on 127.0.0.1, server and client loops ---- */

static struct {
    uv_loop_t sloop, cloop;
    uv_tcp_t server, sconn, client;
    uv_connect_t creq;
    uv_write_t sw, cw;
    char sbuf[64], cbuf[64];
    int port, echoed;
    char got[16];
    size_t got_n;
    uv_sem_t *unused;
    pthread_mutex_t port_lock;
    pthread_cond_t port_cond;
    bool ok;
} te;

static void te_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    *b = uv_buf_init(h == (uv_handle_t *)&te.client ? te.cbuf : te.sbuf, 64);
}

static void te_server_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0) {
        te.echoed += (int)n;
        uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
        uv_write(&te.sw, s, &out, 1, NULL);
    } else if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        uv_close((uv_handle_t *)&te.server, NULL);
    }
}

static void te_accept(uv_stream_t *server, int status)
{
    uv_tcp_init(&te.sloop, &te.sconn);
    if (status == 0 && uv_accept(server, (uv_stream_t *)&te.sconn) == 0)
        uv_read_start((uv_stream_t *)&te.sconn, te_alloc, te_server_read);
}

static void te_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n > 0 && te.got_n + (size_t)n <= sizeof te.got) {
        memcpy(te.got + te.got_n, b->base, (size_t)n);
        te.got_n += (size_t)n;
    }
    if (n < 0 || te.got_n >= 4)
        uv_close((uv_handle_t *)s, NULL);   /* the server sees EOF and closes too */
}

static void te_connected(uv_connect_t *req, int status)
{
    if (status != 0) {
        uv_close((uv_handle_t *)req->handle, NULL);
        return;
    }
    uv_buf_t out = uv_buf_init("ping", 4);
    uv_write(&te.cw, req->handle, &out, 1, NULL);
    uv_read_start(req->handle, te_alloc, te_client_read);
}

static void *te_server_thread(void *arg)
{
    uv_loop_init(&te.sloop);
    uv_tcp_init(&te.sloop, &te.server);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&te.server, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&te.server, 8, te_accept);
    struct sockaddr_in bound;
    int len = sizeof bound;
    uv_tcp_getsockname(&te.server, (struct sockaddr *)&bound, &len);
    pthread_mutex_lock(&te.port_lock);
    te.port = ntohs(bound.sin_port);
    pthread_cond_broadcast(&te.port_cond);
    pthread_mutex_unlock(&te.port_lock);
    uv_run(&te.sloop, UV_RUN_DEFAULT);
    uv_loop_close(&te.sloop);
    return NULL;
}

static void echo_main(void *arg)
{
    memset(&te, 0, sizeof te);
    pthread_mutex_init(&te.port_lock, NULL);
    pthread_cond_init(&te.port_cond, NULL);
    pthread_t st;
    pthread_create(&st, NULL, te_server_thread, NULL);
    pthread_mutex_lock(&te.port_lock);
    while (!te.port)
        pthread_cond_wait(&te.port_cond, &te.port_lock);
    pthread_mutex_unlock(&te.port_lock);
    uv_loop_init(&te.cloop);
    uv_tcp_init(&te.cloop, &te.client);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", te.port, &a);
    uv_tcp_connect(&te.creq, &te.client, (const struct sockaddr *)&a, te_connected);
    uv_run(&te.cloop, UV_RUN_DEFAULT);
    uv_loop_close(&te.cloop);
    pthread_join(st, NULL);
    te.ok = te.got_n == 4 && !memcmp(te.got, "ping", 4) && te.echoed == 4;
}

static void test_libuv_tcp_echo(void)
{
    uint64_t hashes[2] = { 0, 0 }, points = 0;
    int bad = 0;
    char last[256] = "";
    warm_up(echo_main);
    for (int round = 0; round < 2; round++) {
        configure("random", 2);
        for (uint64_t i = 0; i < 100; i++) {
            sim_set_seed(i + 1);
            sim_run(echo_main, NULL);
            points += sim_last_result()->steps;
            if (sim_last_result()->status != SIM_OK || !te.ok) {
                bad++;
                snprintf(last, sizeof last, "%s %s; echoed %d, got %zu", sim_status_names[
                         sim_last_result()->status], sim_last_result()->detail, te.echoed, te.got_n);
            }
        }
        hashes[round] = sim_last_result()->run_hash;
    }
    CHECK(!bad, "%d of 200 schedules did not echo \"ping\" and end (last: %s)", bad, last);
    CHECK(hashes[0] == hashes[1], "100 random schedules twice: run hashes %016llx and %016llx",
          (unsigned long long)hashes[0], (unsigned long long)hashes[1]);
    printf("  200 schedules each echoed \"ping\" over 127.0.0.1 and ended (%.0f points each); "
           "run hash %016llx twice\n", (double)points / 200, (unsigned long long)hashes[0]);
}

/* ---- the kernel's answers, the strategy's choice (answers.c) ---- */

static struct {
    ssize_t got;                  /* one read of a pipe holding 100 bytes */
    ssize_t datagram;             /* then one of a 100-byte datagram, in the pipe's old fd */
    int n;                        /* events one epoll_wait delivered, of 4 ready */
    uint64_t first;               /* the first one's data */
    bool edge_came;               /* the edge-triggered one was among them */
} ka;

static void answers_main(void *arg)
{
    int p[2], ep = epoll_create1(EPOLL_CLOEXEC), level[3][2], edge[2];
    char buf[100];
    memset(buf, 'x', sizeof buf);
    if (pipe(p) == 0 && write(p[1], buf, sizeof buf) == (ssize_t)sizeof buf)
        ka.got = read(p[0], buf, sizeof buf);
    close(p[0]);                      /* its number comes back as a datagram socket's */
    int d[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM, 0, d) == 0 && d[0] == p[0] &&
        write(d[1], buf, sizeof buf) == (ssize_t)sizeof buf)
        ka.datagram = read(d[0], buf, sizeof buf);   /* a datagram is never cut short */
    else
        ka.datagram = -2;
    close(d[0]);
    close(d[1]);
    for (int i = 0; i < 4; i++) {
        int *fds = i < 3 ? level[i] : edge;
        if (pipe(fds) != 0 || write(fds[1], "!", 1) != 1)
            abort();
        struct epoll_event e = { .events = EPOLLIN | (i == 3 ? EPOLLET : 0), .data.u64 = 10 + i };
        epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &e);
    }
    struct epoll_event ev[8];
    ka.n = epoll_wait(ep, ev, 8, 0);
    ka.first = ka.n > 0 ? ev[0].data.u64 : 0;
    ka.edge_came = false;
    for (int i = 0; i < ka.n; i++)
        ka.edge_came |= ev[i].data.u64 == 13;
    int all[] = { p[1], ep, level[0][0], level[0][1], level[1][0], level[1][1],
                  level[2][0], level[2][1], edge[0], edge[1] };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        close(all[i]);
}

static void test_kernel_answers(void)
{
    configure("dfs", 0);
    sim_run(answers_main, NULL);
    CHECK(ka.got == 100 && ka.n == 4 && ka.first == 10, "the default answer (dfs): read %zd "
          "of 100 bytes, %d of 4 events, the first %llu; expected the kernel's: 100, 4, 10",
          ka.got, ka.n, (unsigned long long)ka.first);
    bool sizes[101] = { false }, firsts[4] = { false }, counts[5] = { false };
    int distinct = 0, edge_missing = 0, datagram_cut = 0;
    uint64_t hashes[2] = { 0, 0 };
    for (int round = 0; round < 2; round++) {
        configure("random", 2);
        for (uint64_t i = 0; i < 200; i++) {
            sim_set_seed(i + 1);
            sim_run(answers_main, NULL);
            hashes[round] ^= sim_last_result()->run_hash * (2 * i + 1);
            if (ka.got >= 1 && ka.got <= 100 && !sizes[ka.got]) {
                sizes[ka.got] = true;
                distinct++;
            }
            if (ka.first >= 10 && ka.first <= 13)
                firsts[ka.first - 10] = true;
            if (ka.n >= 0 && ka.n <= 4)
                counts[ka.n] = true;
            edge_missing += !ka.edge_came;
            datagram_cut += ka.datagram != 100;
        }
    }
    CHECK(distinct >= 20 && !sizes[0], "200 random schedules: %d distinct read sizes", distinct);
    CHECK(firsts[0] && firsts[1] && firsts[2] && firsts[3], "the first event: 10 %s, 11 %s, 12 %s, "
          "13 %s; every one should come first in some schedule", firsts[0] ? "seen" : "never",
          firsts[1] ? "seen" : "never", firsts[2] ? "seen" : "never", firsts[3] ? "seen" : "never");
    CHECK(counts[1] && counts[4] && !counts[0], "events delivered of 4 ready: 1 %s, 4 %s, 0 %s",
          counts[1] ? "seen" : "never", counts[4] ? "seen" : "never", counts[0] ? "seen" : "never");
    CHECK(!datagram_cut, "a 100-byte datagram read through a closed pipe's fd number: not "
          "100 bytes (or no such fd) in %d of 400 schedules (last: %zd)", datagram_cut,
          ka.datagram);
    CHECK(!edge_missing, "the edge-triggered event held back in %d of 400 schedules: the kernel "
          "would not report it again", edge_missing);
    CHECK(hashes[0] == hashes[1], "200 random schedules twice: run hashes %016llx and %016llx",
          (unsigned long long)hashes[0], (unsigned long long)hashes[1]);
    printf("  a read of 100 waiting bytes, 4 ready events (one edge-triggered), 200 random "
           "schedules twice: %d read sizes, each event first in some, 1 to 4 delivered, the "
           "edge-triggered always, a datagram in a reused fd number never cut; one run hash %016llx\n", distinct, (unsigned long long)hashes[0]);
}

/* ---- cost ---- */

static long bench_rounds;

static void *yielder(void *arg)
{
    for (long i = 0; i < bench_rounds; i++)
        sched_yield();
    return NULL;
}

static void yield_main(void *arg)
{
    pthread_t t[2];
    pair(yielder, t);
}

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What a switch between real threads costs, and schedules per second. */
static void bench(void)
{
    printf("(wall: elapsed; cpu: the process's CPU time, every thread's)\n");
    configure("random", 2);
    bench_rounds = 100000;
    uint64_t w0 = wall_ns(), c0 = cpu_ns();
    sim_set_seed(1);
    sim_run(yield_main, NULL);
    uint64_t steps = sim_last_result()->steps;
    printf("two threads yielding through the core: %.0f ns wall, %.0f ns cpu per scheduling "
           "point (%llu points)\n", (double)(wall_ns() - w0) / (double)steps,
           (double)(cpu_ns() - c0) / (double)steps, (unsigned long long)steps);
    struct { const char *name; void (*fn)(void *); } programs[] = {
        { "overdraft (two sections)", bank_main }, { "lost_wakeup (checked under the lock)",
        wakeup_main }, { "abba", abba_main }, { "libuv_async", async_main },
        { "libuv_tcp_echo", echo_main } };
    one_section = false;
    check_under_lock = true;
    for (size_t p = 0; p < sizeof programs / sizeof *programs; p++) {
        configure("random", 2);
        uint64_t n = 2000, points = 0;
        w0 = wall_ns();
        c0 = cpu_ns();
        for (uint64_t i = 0; i < n; i++) {
            sim_set_seed(i + 1);
            sim_run(programs[p].fn, NULL);
            points += sim_last_result()->steps;
        }
        double wall = (double)(wall_ns() - w0) / 1e9, cpu = (double)(cpu_ns() - c0) / 1e9;
        printf("%-38s %6.0f schedules/s wall, %6.0f per cpu s (%.1f points each)\n",
               programs[p].name, (double)n / wall, (double)n / cpu, (double)points / (double)n);
    }
}

/* ---- the list ---- */

static const ar_selftest_case tests[] = {
    { "overdraft", test_overdraft },
    { "lost_wakeup", test_lost_wakeup },
    { "abba_abandoned", test_abba_abandoned },
    { "virtual_clocks", test_virtual_clocks },
    { "tasks_are_threads", test_tasks_are_threads },
    { "reused_memory", test_reused_memory },
    { "uncontrolled", test_uncontrolled },
    { "abandoned_fds", test_abandoned_fds },
    { "sync_objects", test_sync_objects },
    { "replay", test_replay },
    { "libuv_async", test_libuv_async },
    { "libuv_tcp_echo", test_libuv_tcp_echo },
    { "kernel_answers", test_kernel_answers },
};
#define N_TESTS ((int)(sizeof tests / sizeof *tests))

static _Noreturn void usage(const char *what, const char *value)
{
    fprintf(stderr, "ctltest: %s '%s' (accepted: --test NAME, --list, --bench)\n", what, value);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bench")) {
            bench();
            return 0;
        }
        if (!strcmp(argv[i], "--list")) {
            for (int t = 0; t < N_TESTS; t++)
                printf("%s\n", tests[t].name);
            return 0;
        }
        if (strcmp(argv[i], "--test"))
            usage("unknown option", argv[i]);
        if (i + 1 >= argc)
            usage("a value is missing after", argv[i]);
        only = argv[++i];
    }
    if (!ar_selftest_run_cases(&results, tests, N_TESTS, only, wall_ns))
        usage("unknown test", only);
    ar_selftest_summary(&results);
    return results.failed ? 1 : 0;
}
