/* baton.c: the core's tasks as real OS threads that take turns holding a
 * baton (see contexts.h). Each context has a futex word; "switch from a to b"
 * sets b's word, wakes b and sleeps on a's until someone hands the baton
 * back. The word is a C11 atomic (release on hand-over, acquire on taking
 * it), so the sanitizers see every switch as the happens-before edge it is.
 *
 * A task's thread is created with the real pthread_create (looked up past any
 * definition in the executable: the interposer defines its own), waits for
 * its first turn, runs entry, hands the baton to what entry returned and
 * exits. The host joins every one of them once the run is over (settle), so a
 * run returns only when its threads are gone: a leak check or a thread count
 * right after it sees no thread still on its way out. An abandoned one (a run ended by a deadlock or the step bound)
 * wakes, hands the baton back to the host and exits where it waited, with
 * pthread_exit: its frames are never resumed, as with fibers.
 *
 * The watchdog: while a task holds the baton, the host sleeps with a timeout
 * and counts the core's scheduling points. None for stuck_ms means the task
 * spins, or blocks in the kernel on something the scheduler does not know (a
 * futex inside glibc, a blocking read): the host reads the thread's state
 * from /proc and signals it; the handler, on the stuck thread, names where it
 * was (each frame's library and symbol) and ends the run through the core
 * (SIM_UNCONTROLLED), then exits like an abandoned task. A sanitizer that
 * holds the signal back (TSan delays it until the thread enters libc) leaves
 * the process one line and an exit, never a hang.
 */
#include "contexts.h"
#include "sched.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <ucontext.h>
#include <time.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct baton {
    _Atomic uint32_t turn;        /* 1: this context holds the baton */
    _Atomic bool abandoned;
    sim_fiber_entry entry;
    void *arg;
    bool host;
    pthread_t tid;
    pid_t ktid;                   /* the kernel's id, for /proc */
    struct baton *unwind_to;      /* where an abandoned one hands the baton */
} baton;

_Atomic unsigned long long sim_points_seen;
/* Who took the baton last, copied (a finished task's baton is freed): the
 * watchdog on the host reads these while the holder runs. */
static _Atomic bool holder_is_host;
static _Atomic unsigned long holder_tid;
static _Atomic int holder_ktid;
/* A task that lost control in the watchdog's signal handler cannot free its
 * baton there (not async-signal-safe): the host frees it once it has joined it. */
static baton *stuck_baton;
static _Thread_local bool in_watchdog_handler;

static _Thread_local baton *self;     /* the calling thread's context, once it has one */
static _Thread_local baton host_ctx;

typedef long (*syscall_fn)(long, ...);

static void futex(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *timeout)
{
    /* libc's syscall(), past the interposer's (which takes syscall() from
     * tasks). The kernel reads the word itself; EAGAIN (it changed) and EINTR
     * only send the caller round its loop again. */
    static _Atomic syscall_fn real;
    syscall_fn fn = atomic_load_explicit(&real, memory_order_relaxed);
    if (!fn) {
        fn = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
        atomic_store_explicit(&real, fn ? fn : syscall, memory_order_relaxed);
        fn = fn ? fn : syscall;
    }
    fn(SYS_futex, (uint32_t *)word, op, val, timeout, NULL, 0);
}

/* The word: 1, the context holds the baton; 0, it waits awake (spinning);
 * 2, it sleeps in the kernel and must be woken. */
enum { WAITING = 0, HOLDS = 1, ASLEEP = 2, SPINS = 200 };

static void hand(baton *to)
{
    if (atomic_exchange_explicit(&to->turn, HOLDS, memory_order_release) == ASLEEP)
        futex(&to->turn, FUTEX_WAKE_PRIVATE, 1, NULL);
}

static void watch(void);

/* Waits until me holds the baton: a short spin first (the hand-back often
 * comes within microseconds, and a futex wake-up costs several), then the
 * kernel. An abandoned task exits here. */
static void take(baton *me)
{
    for (int i = 0;; i++) {
        uint32_t v = atomic_load_explicit(&me->turn, memory_order_acquire);
        if (v == HOLDS) {
            atomic_store_explicit(&me->turn, WAITING, memory_order_relaxed);
            atomic_store_explicit(&holder_is_host, me->host, memory_order_relaxed);
            atomic_store_explicit(&holder_tid, (unsigned long)me->tid, memory_order_relaxed);
            atomic_store_explicit(&holder_ktid, me->ktid, memory_order_relaxed);
            break;
        }
        if (i < SPINS) {
            __builtin_ia32_pause();
            continue;
        }
        uint32_t expect = WAITING;
        if (v == ASLEEP || atomic_compare_exchange_strong_explicit(&me->turn, &expect, ASLEEP,
                                                                   memory_order_acquire,
                                                                   memory_order_acquire)) {
            static const struct timespec tick = { 0, 50 * 1000000 };
            futex(&me->turn, FUTEX_WAIT_PRIVATE, ASLEEP, me->host ? &tick : NULL);
            if (me->host)
                watch();
        }
    }
    if (atomic_load_explicit(&me->abandoned, memory_order_acquire)) {
        baton *to = me->unwind_to;
        if (in_watchdog_handler)
            stuck_baton = me;         /* ordered before the host's take by hand() */
        else
            free(me);
        self = NULL;
        hand(to);
        pthread_exit(NULL);
    }
}

/* ---- the watchdog ---- */

static unsigned stuck_ms = 2000;
static char stuck_why[160];           /* the host's finding, for the handler */

void sim_threads_set_stuck_ms(unsigned ms) { stuck_ms = ms ? ms : 2000; }
void sim_threads_ending_in_handler(void) { in_watchdog_handler = true; }

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int sim_where(char *out, size_t n, void *pc)
{
    Dl_info di;
    if (!dladdr(pc, &di) || !di.dli_fname)
        return snprintf(out, n, "%p", pc);
    const char *base = strrchr(di.dli_fname, '/');
    base = base ? base + 1 : di.dli_fname;
    if (di.dli_sname)
        return snprintf(out, n, "%s (%s+0x%lx)", base, di.dli_sname,
                        (unsigned long)((char *)pc - (char *)di.dli_saddr));
    return snprintf(out, n, "%s (+0x%lx)", base,
                    (unsigned long)((char *)pc - (char *)di.dli_fbase));
}

const char *sim_syscall_name(long number)
{
    switch (number) {
    case SYS_futex: return "futex";
    case SYS_read: return "read";
    case SYS_write: return "write";
    case SYS_epoll_wait: return "epoll_wait";
    case SYS_epoll_pwait: return "epoll_pwait";
    case SYS_poll: return "poll";
    case SYS_ppoll: return "ppoll";
    case SYS_clock_gettime: return "clock_gettime";
    case SYS_nanosleep: return "nanosleep";
    case SYS_clock_nanosleep: return "clock_nanosleep";
    case SYS_getrandom: return "getrandom";
    case SYS_io_uring_setup: return "io_uring_setup";
    case SYS_io_uring_enter: return "io_uring_enter";
    case SYS_io_uring_register: return "io_uring_register";
    case SYS_clone: return "clone";
    case SYS_clone3: return "clone3";
    case SYS_execve: return "execve";
    case SYS_fork: return "fork";
    default: return "?";
    }
}

/* On the stuck task's thread: where it is, then the run ends through the core. */
static void on_stuck(int sig, siginfo_t *si, void *uc)
{
    (void)sig, (void)si, (void)uc;
    in_watchdog_handler = true;
    void *pcs[16];
    int n = backtrace(pcs, 16);
    /* From the interrupted instruction on (the frames before it are this
     * handler's and the signal's), innermost first. */
    void *at = (void *)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
    int first = 2;
    for (int i = 0; i < n; i++)
        if (pcs[i] == at)
            first = i;
    char where[400];
    size_t len = 0;
    where[0] = '\0';
    for (int i = first; i < n && i < first + 5 && len < sizeof where; i++) {
        void *pc = i == first ? pcs[i] : (char *)pcs[i] - 1;  /* a return address is past its call */
        len += (size_t)snprintf(where + len, sizeof where - len, "%s", i > first ? " < " : "");
        if (len < sizeof where)
            len += (size_t)sim_where(where + len, sizeof where - len, pc);
    }
    sim_lost_control("%s, at %s", stuck_why, where);
}

/* The kernel's view of thread t: its state letter and, asleep, its syscall. */
char sim_thread_state(int t, long *syscall_nr)
{
    char path[64], buf[512];
    *syscall_nr = -1;
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", t);
    FILE *f = fopen(path, "r");
    if (!f)
        return '?';
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    const char *paren = strrchr(buf, ')');   /* the name may hold spaces */
    char state = paren && paren[1] && paren[2] ? paren[2] : '?';
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", t);
    if ((f = fopen(path, "r"))) {
        if (fscanf(f, "%ld", syscall_nr) != 1)
            *syscall_nr = -1;         /* "running" */
        fclose(f);
    }
    return state;
}

/* On the host, between its waits while a task holds the baton. */
static unsigned long long watch_last;
static bool watch_paused;             /* the host is letting an abandoned task exit */
static uint64_t watch_since, watch_signalled;   /* ms; since 0: start counting */

static void watch(void)
{
    uint64_t now = mono_ms();
    unsigned long long seen = atomic_load_explicit(&sim_points_seen, memory_order_relaxed);
    if (seen != watch_last || !watch_since) {
        watch_last = seen;
        watch_since = now;
        watch_signalled = 0;
        return;
    }
    int ktid = atomic_load_explicit(&holder_ktid, memory_order_relaxed);
    if (watch_paused || atomic_load_explicit(&holder_is_host, memory_order_relaxed) || !ktid ||
        now - watch_since < stuck_ms)
        return;
    if (watch_signalled) {
        if (now - watch_signalled > 5u * stuck_ms) {
            fprintf(stderr, "asyncrace: a task (kernel thread %d) %s and did not answer the "
                    "watchdog's signal (a sanitizer holds signals back while a thread spins)\n",
                    ktid, stuck_why);
            _exit(70);
        }
        return;
    }
    long nr;
    char state = sim_thread_state(ktid, &nr);
    if (state == 'R')
        snprintf(stuck_why, sizeof stuck_why, "a task spins: running %u ms without a "
                 "scheduling point", stuck_ms);
    else
        snprintf(stuck_why, sizeof stuck_why, "a task blocks outside the scheduler: asleep in "
                 "the kernel (system call %ld, %s) for %u ms with no scheduling point", nr,
                 sim_syscall_name(nr), stuck_ms);
    static bool installed;
    if (!installed) {
        struct sigaction sa = { .sa_sigaction = on_stuck, .sa_flags = SA_SIGINFO };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGRTMIN + 5, &sa, NULL);
        void *warm[2];
        backtrace(warm, 2);           /* loads the unwinder now, not in the handler */
        installed = true;
    }
    watch_signalled = now;
    pthread_kill((pthread_t)atomic_load_explicit(&holder_tid, memory_order_relaxed), SIGRTMIN + 5);
}

/* ---- an abandoned run's descriptors ---- */

/* A run ended early leaves its loops' sockets, epoll and event fds open (their
 * owners never run again): closed on the host, so the next run, and a replay
 * of it in a fresh process, get the same descriptor numbers. */
enum { FD_WORDS = 4096 / 64 };
static uint64_t open_before[FD_WORDS];

static void scan_fds(uint64_t *bits)
{
    memset(bits, 0, FD_WORDS * sizeof *bits);
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int own = dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd != own && fd < FD_WORDS * 64)
            bits[fd / 64] |= 1ull << (fd % 64);
    }
    closedir(d);
}

void sim_threads_fds_mark(void) { scan_fds(open_before); }

int sim_threads_fds_close_new(void)
{
    uint64_t now[FD_WORDS];
    scan_fds(now);
    int closed = 0;
    for (int w = 0; w < FD_WORDS; w++)
        for (uint64_t fresh = now[w] & ~open_before[w]; fresh; fresh &= fresh - 1) {
            close(w * 64 + __builtin_ctzll(fresh));
            closed++;
        }
    return closed;
}

static _Thread_local bool outside;     /* sim_threads_stay_outside was called here */

bool sim_threads_caller_is_harness(void) { return (self && self->host) || outside; }
void sim_threads_stay_outside(void) { outside = true; }

static void *thread_main(void *p)
{
    baton *me = p;
    me->ktid = gettid();
    self = me;
    take(me);
    baton *next = (baton *)me->entry(me->arg);
    self = NULL;
    free(me);
    hand(next);
    return NULL;
}

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
typedef int (*join_fn)(pthread_t, void **);

static create_fn real_create(void)
{
    static create_fn fn;
    if (!fn) {
        fn = (create_fn)dlsym(RTLD_NEXT, "pthread_create");
        if (!fn)
            fn = pthread_create;
    }
    return fn;
}

static join_fn real_join(void)
{
    static join_fn fn;
    if (!fn) {
        fn = (join_fn)dlsym(RTLD_NEXT, "pthread_join");
        if (!fn)
            fn = pthread_join;
    }
    return fn;
}

/* The threads started since the last settle (only the baton's holder adds). */
static pthread_t *started;
static size_t n_started, cap_started;

static sim_fiber *host(void)
{
    if (!self) {
        host_ctx.host = true;
        self = &host_ctx;
    }
    return (sim_fiber *)self;
}

static sim_fiber *start(sim_fiber_entry entry, void *arg)
{
    baton *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->entry = entry;
    b->arg = arg;
    if (n_started == cap_started) {
        size_t cap = cap_started ? cap_started * 2 : 16;
        pthread_t *p = realloc(started, cap * sizeof *p);
        if (!p) {
            free(b);
            return NULL;
        }
        started = p;
        cap_started = cap;
    }
    int err = real_create()(&b->tid, NULL, thread_main, b);
    if (err) {
        free(b);
        errno = err;
        return NULL;
    }
    started[n_started++] = b->tid;
    return (sim_fiber *)b;
}

static void switch_to(sim_fiber *from, sim_fiber *to)
{
    baton *me = (baton *)from, *next = (baton *)to;
    if (me == next)
        return;
    if (me->host)
        watch_since = 0;              /* a task's turn starts now */
    hand(next);
    take(me);
}

/* The process ends with this run (the preloaded scheduler): an abandoned
 * task is left asleep where it waits, never unwound (unwinding would run a
 * program's destructors behind the scheduler), and never joined. */
static bool keep_abandoned;
void sim_threads_keep_abandoned(void) { keep_abandoned = true; }

static void abandon(sim_fiber *f)
{
    if (keep_abandoned)
        return;
    baton *b = (baton *)f;
    b->unwind_to = self;
    atomic_store_explicit(&b->abandoned, true, memory_order_release);
    watch_paused = true;          /* it exits, unwinding: however long that takes, it is no task */
    switch_to((sim_fiber *)self, f);
    watch_paused = false;
}

static void settle(void)
{
    if (keep_abandoned)
        return;
    for (size_t i = 0; i < n_started; i++)
        real_join()(started[i], NULL);
    n_started = 0;
    free(stuck_baton);
    stuck_baton = NULL;
}

/* In the watchdog's handler the thread is no task: what the handler calls
 * (the unwinder's pthread_once) goes straight to libc. */
static bool owns_caller(void) { return self && !self->host && !in_watchdog_handler; }
static unsigned long os_thread(sim_fiber *f) { return (unsigned long)((baton *)f)->tid; }

const sim_contexts sim_threads = { "threads", host, start, switch_to, abandon, owns_caller,
                                   os_thread, settle };
