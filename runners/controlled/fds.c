/* fds.c: a task's fd calls, passed to the kernel but ordered by the core, and
 * epoll_wait turned into a probe and a wait the core controls (see
 * interpose.h). Hermit's way, not Shadow's: sockets, eventfds and pipes stay
 * real (libuv's nonblocking fds never block in the kernel); what the core
 * decides is who makes the next call, and when a waiting loop wakes.
 *
 *   - every call below is a scheduling point before it reaches the kernel, so
 *     a strategy orders two tasks' writes, closes and connects;
 *   - epoll_wait (and epoll_pwait) first asks the kernel without waiting. If
 *     something is ready it returns that; else the task parks in the core (a
 *     loop's idle wait, with the call's timeout on the virtual clock). After
 *     every fd call a task makes, the caller asks the kernel, without waiting,
 *     on behalf of each parked epoll_wait, into that caller's own buffer, and
 *     wakes the ones that now have events. A parked loop therefore wakes only
 *     because another task did something, at a point of the schedule.
 *
 * What of the kernel's answer the task gets (how many bytes a read returns,
 * the order of ready events and which of them come now) is the strategy's
 * choice: answers.c.
 *
 * Timerfds (libevent's precise timer, the epoll runner's timers) keep their
 * real fd, so epoll sees them, but their deadlines are virtual: settime only
 * records the deadline; once the virtual clock reaches it, the real timer is
 * armed to expire at once, and its expiry awaited, before anyone asks epoll.
 * A parked epoll_wait's own timeout is cut to the earliest armed timerfd's.
 *
 * What this assumes: the kernel has finished what a call started by the time
 * the call returns, so the same schedule sees the same readiness. On
 * loopback it mostly has: the segment is in the peer's queue and the SYN
 * answered, in the caller's own softirq. Under load the kernel may leave
 * that work to ksoftirqd, so the interposer waits for it where it can tell:
 * after a connect in progress, until the handshake is done (the listener's
 * accept queue has the connection). A write is not waited for: the bytes
 * reach the peer's queue in the softirq that sends them, but its ACK may be
 * delayed by 40 ms, and nothing else on the sender tells (waiting for the
 * ACK made `make test` twice as long). That is what
 * ctltest's determinism checks measure, on a loaded machine too. A readiness
 * the kernel brings about later than that (no task's call in between) is
 * seen only at the next call, or never: the core then reports a deadlock.
 */
#include "interpose.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* ---- timerfds on the virtual clock ---- */

enum { TIMERFDS = 4096 };

typedef struct {
    uint64_t run;                 /* the run that made it; other runs' entries are empty */
    uint64_t deadline;            /* virtual ns; 0: disarmed */
    uint64_t interval;
} vtimer;

static vtimer timers[TIMERFDS];

static vtimer *vtimer_of(int fd)
{
    if (fd < 0 || fd >= TIMERFDS || timers[fd].run != sim_run_serial())
        return NULL;
    return &timers[fd];
}

static uint64_t to_ns(const struct timespec *ts)
{
    return (uint64_t)ts->tv_sec * 1000000000u + (uint64_t)ts->tv_nsec;
}

/* The due timers' real fds made readable: armed to expire now, and waited for
 * (microseconds), so the next question to epoll sees them. */
static void fire_due_timers(void)
{
    uint64_t now = sim_clock();
    for (int fd = 0; fd < TIMERFDS; fd++) {
        vtimer *t = vtimer_of(fd);
        if (!t || !t->deadline || t->deadline > now)
            continue;
        t->deadline = t->interval ? t->deadline + t->interval * ((now - t->deadline) /
                                                                 t->interval + 1) : 0;
        struct itimerspec at_once = { { 0, 0 }, { 0, 1 } };
        REAL(timerfd_settime)(fd, 0, &at_once, NULL);
        struct pollfd p = { .fd = fd, .events = POLLIN };
        while (REAL(poll)(&p, 1, 1000) == 0)
            ;
    }
}

/* The earliest armed timerfd's deadline, or 0. */
static uint64_t next_timer(void)
{
    uint64_t best = 0;
    for (int fd = 0; fd < TIMERFDS; fd++) {
        vtimer *t = vtimer_of(fd);
        if (t && t->deadline && (!best || t->deadline < best))
            best = t->deadline;
    }
    return best;
}

int timerfd_create(int clockid, int flags)
{
    int fd = REAL(timerfd_create)(clockid, flags);
    if (!ar_controlled() || fd < 0)
        return fd;
    if (fd >= TIMERFDS)
        ar_uncontrolled("timerfd_create", "a descriptor number above 4095");
    sim_point("timerfd_create", fd, SIM_POINT_PLAIN);
    sim_touch_all();
    timers[fd] = (vtimer){ .run = sim_run_serial() };
    return fd;
}

/* Both of the loops' clocks (MONOTONIC, REALTIME) read the one virtual clock;
 * an absolute REALTIME deadline is taken off its base. */
int timerfd_settime(int fd, int flags, const struct itimerspec *new, struct itimerspec *old)
{
    vtimer *t = ar_controlled() ? vtimer_of(fd) : NULL;
    if (!t)
        return REAL(timerfd_settime)(fd, flags, new, old);
    sim_point("timerfd_settime", fd, SIM_POINT_PLAIN);
    sim_touch_all();
    uint64_t now = sim_now();
    if (old) {
        uint64_t left = t->deadline > now ? t->deadline - now : (t->deadline ? 1 : 0);
        *old = (struct itimerspec){ { (time_t)(t->interval / 1000000000u),
                                      (long)(t->interval % 1000000000u) },
                                    { (time_t)(left / 1000000000u), (long)(left % 1000000000u) } };
    }
    uint64_t value = to_ns(&new->it_value);
    if (!value) {
        t->deadline = 0;
    } else if (flags & TFD_TIMER_ABSTIME) {
        t->deadline = value >= AR_REALTIME_BASE_NS ? value - AR_REALTIME_BASE_NS : value;
        if (!t->deadline)
            t->deadline = 1;
    } else {
        t->deadline = now + value;
    }
    t->interval = to_ns(&new->it_interval);
    struct itimerspec off = { { 0, 0 }, { 0, 0 } };
    return REAL(timerfd_settime)(fd, 0, &off, NULL);   /* disarmed: also drops an expiry */
}

int timerfd_gettime(int fd, struct itimerspec *cur)
{
    vtimer *t = ar_controlled() ? vtimer_of(fd) : NULL;
    if (!t)
        return REAL(timerfd_gettime)(fd, cur);
    uint64_t now = sim_now(), left = t->deadline > now ? t->deadline - now : (t->deadline ? 1 : 0);
    *cur = (struct itimerspec){ { (time_t)(t->interval / 1000000000u),
                                  (long)(t->interval % 1000000000u) },
                                { (time_t)(left / 1000000000u), (long)(left % 1000000000u) } };
    return 0;
}

/* ---- parked epoll_waits ---- */

typedef struct parked {
    int epfd;
    struct epoll_event *events;
    int max;
    int n;                        /* events found for it while it waited */
    sim_waitq q;
    struct parked *next;
} parked;

static parked *waiting;           /* this run's; each lives on its waiter's stack */
static uint64_t waiting_run;

/* After a task's fd call: the parked loops that have something now wake. */
static void probe_parked(void)
{
    if (waiting_run != sim_run_serial()) {   /* an abandoned run's waiters are gone */
        waiting = NULL;
        waiting_run = sim_run_serial();
    }
    fire_due_timers();
    for (parked *p = waiting; p; p = p->next) {
        if (p->n)
            continue;
        int n = REAL(epoll_wait)(p->epfd, p->events, p->max, 0);
        if (n > 0) {
            p->n = n;
            sim_wake_all(&p->q);
        }
    }
}

static void unpark(parked *me)
{
    for (parked **p = &waiting; *p; p = &(*p)->next)
        if (*p == me) {
            *p = me->next;
            return;
        }
}

static int controlled_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    sim_point("epoll_wait", epfd, SIM_POINT_PLAIN);
    sim_touch_all();
    uint64_t deadline = timeout < 0 ? 0 : sim_now() + (uint64_t)timeout * 1000000u;
    for (;;) {
        fire_due_timers();
        int n = REAL(epoll_wait)(epfd, events, max, 0);
        if (n > 0)
            return ar_deliver(epfd, events, n);
        if (n < 0 || timeout == 0 || (deadline && sim_clock() >= deadline))
            return n;
        if (waiting_run != sim_run_serial()) {
            waiting = NULL;
            waiting_run = sim_run_serial();
        }
        /* Woken at the earliest timerfd's deadline too (perhaps another loop's:
         * then it only asks again). */
        uint64_t until = deadline, timer = next_timer();
        if (timer && (!until || timer < until))
            until = timer;
        parked me = { .epfd = epfd, .events = events, .max = max, .next = waiting };
        waiting = &me;
        sim_wait_info why = { "epoll_wait", "epoll", epfd, -1, true };
        sim_wait(&me.q, &why, until);
        unpark(&me);
        if (me.n)
            return ar_deliver(epfd, events, me.n);
    }
}

int epoll_wait(int epfd, struct epoll_event *events, int max, int timeout)
{
    if (!ar_controlled())
        return REAL(epoll_wait)(epfd, events, max, timeout);
    return controlled_epoll_wait(epfd, events, max, timeout);
}

/* The signal mask is not applied: signals are out of scope under control. */
int epoll_pwait(int epfd, struct epoll_event *events, int max, int timeout, const sigset_t *mask)
{
    if (!ar_controlled())
        return REAL(epoll_pwait)(epfd, events, max, timeout, mask);
    return controlled_epoll_wait(epfd, events, max, timeout);
}

/* ---- the kernel's loopback work, waited for ---- */

/* Bounded: a peer that never answers must not hold the baton for ever. */
enum { SETTLE_MS = 20 };

static void settle_connect(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    REAL(poll)(&p, 1, SETTLE_MS);
}

/* ---- the calls: a point, the kernel, then the parked loops ---- */

/* settle: what to wait for before the parked loops are asked (a statement).
 * The step touches everything: the kernel's state behind an fd is shared with
 * whoever holds the other end, so no reduction may take two calls as
 * independent (dfs-sleep's sleep sets read footprints). */
#define FD_CALL_THEN(point, fd, call, settle)                                 \
    do {                                                                      \
        sim_point(point, (long)(fd), SIM_POINT_PLAIN);                        \
        sim_touch_all();                                                      \
        __typeof__(call) r_ = call;                                           \
        int e_ = errno;                                                       \
        settle;                                                               \
        probe_parked();                                                       \
        errno = e_;                                                           \
        return r_;                                                            \
    } while (0)
#define FD_CALL(point, fd, call) FD_CALL_THEN(point, fd, call, (void)0)


int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (!ar_controlled())
        return REAL(epoll_ctl)(epfd, op, fd, ev);
    FD_CALL_THEN("epoll_ctl", fd, REAL(epoll_ctl)(epfd, op, fd, ev),
                 if (r_ == 0) ar_registered(epfd, op, fd, ev));
}

ssize_t read(int fd, void *buf, size_t n)
{
    if (!ar_controlled())
        return REAL(read)(fd, buf, n);
    FD_CALL("read", fd, REAL(read)(fd, buf, ar_read_size(fd, n)));
}

ssize_t write(int fd, const void *buf, size_t n)
{
    if (!ar_controlled())
        return REAL(write)(fd, buf, n);
    FD_CALL("write", fd, REAL(write)(fd, buf, n));
}

ssize_t readv(int fd, const struct iovec *iov, int n)
{
    if (!ar_controlled())
        return REAL(readv)(fd, iov, n);
    if (n < 1 || n > 64)
        FD_CALL("readv", fd, REAL(readv)(fd, iov, n));
    struct iovec shorter[64];
    FD_CALL("readv", fd, REAL(readv)(fd, shorter, (int)ar_read_size_iov(fd, iov, n, shorter)));
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    if (!ar_controlled())
        return REAL(writev)(fd, iov, n);
    FD_CALL("writev", fd, REAL(writev)(fd, iov, n));
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
    if (!ar_controlled())
        return REAL(recv)(fd, buf, n, flags);
    FD_CALL("recv", fd, REAL(recv)(fd, buf, ar_read_size(fd, n), flags));
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    if (!ar_controlled())
        return REAL(send)(fd, buf, n, flags);
    FD_CALL("send", fd, REAL(send)(fd, buf, n, flags));
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *a, socklen_t *alen)
{
    if (!ar_controlled())
        return REAL(recvfrom)(fd, buf, n, flags, a, alen);
    FD_CALL("recvfrom", fd, REAL(recvfrom)(fd, buf, ar_read_size(fd, n), flags, a, alen));
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
               socklen_t alen)
{
    if (!ar_controlled())
        return REAL(sendto)(fd, buf, n, flags, a, alen);
    FD_CALL("sendto", fd, REAL(sendto)(fd, buf, n, flags, a, alen));
}

ssize_t recvmsg(int fd, struct msghdr *m, int flags)
{
    if (!ar_controlled())
        return REAL(recvmsg)(fd, m, flags);
    FD_CALL("recvmsg", fd, REAL(recvmsg)(fd, m, flags));
}

ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    if (!ar_controlled())
        return REAL(sendmsg)(fd, m, flags);
    FD_CALL("sendmsg", fd, REAL(sendmsg)(fd, m, flags));
}

int connect(int fd, const struct sockaddr *a, socklen_t n)
{
    if (!ar_controlled())
        return REAL(connect)(fd, a, n);
    FD_CALL_THEN("connect", fd, REAL(connect)(fd, a, n),
                 if (r_ < 0 && e_ == EINPROGRESS) settle_connect(fd));
}

int listen(int fd, int backlog)
{
    if (!ar_controlled())
        return REAL(listen)(fd, backlog);
    FD_CALL("listen", fd, REAL(listen)(fd, backlog));
}

int accept4(int fd, struct sockaddr *a, socklen_t *n, int flags)
{
    if (!ar_controlled())
        return REAL(accept4)(fd, a, n, flags);
    FD_CALL("accept4", fd, REAL(accept4)(fd, a, n, flags));
}

int accept(int fd, struct sockaddr *a, socklen_t *n)
{
    if (!ar_controlled())
        return REAL(accept)(fd, a, n);
    FD_CALL("accept", fd, REAL(accept)(fd, a, n));
}

int shutdown(int fd, int how)
{
    if (!ar_controlled())
        return REAL(shutdown)(fd, how);
    FD_CALL("shutdown", fd, REAL(shutdown)(fd, how));
}

int close(int fd)
{
    if (!ar_controlled())
        return REAL(close)(fd);
    FD_CALL_THEN("close", fd, REAL(close)(fd), ar_closed(fd));
}

/* dup2 and dup3 close newfd first, if it was open. */
int dup2(int fd, int newfd)
{
    if (!ar_controlled())
        return REAL(dup2)(fd, newfd);
    FD_CALL_THEN("dup2", newfd, REAL(dup2)(fd, newfd), if (r_ >= 0) ar_closed(newfd));
}

int dup3(int fd, int newfd, int flags)
{
    if (!ar_controlled())
        return REAL(dup3)(fd, newfd, flags);
    FD_CALL_THEN("dup3", newfd, REAL(dup3)(fd, newfd, flags), if (r_ >= 0) ar_closed(newfd));
}

/* What a task may ask of syscall() without the scheduler: calls that neither
 * wait, nor order anything with another task, nor read time or chance. */
static bool harmless(long number)
{
    switch (number) {
    case SYS_gettid: case SYS_getpid: case SYS_getppid: case SYS_getuid: case SYS_geteuid:
    case SYS_getgid: case SYS_getegid: case SYS_sched_getaffinity: case SYS_statx:
    case SYS_membarrier: case SYS_rseq:
        return true;
    default:
        return false;
    }
}

/* libuv closes every fd with syscall(SYS_close); Rust's std and parking_lot
 * wait and wake on futexes through syscall() (futex.c), and may ask for
 * random bytes so (sync.c's getrandom: from the run's seed). Any other call
 * through syscall() that is not harmless (a raw epoll_wait, read or
 * clock_gettime) would act behind the scheduler's back: the run ends, naming
 * it and its caller. */
/* Six arguments are read whatever the caller passed, as libc's own syscall()
 * does from registers; past the registers that reads the caller's frame,
 * which ASan would call an underflow. */
__attribute__((no_sanitize_address))
long syscall(long number, ...)
{
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (ar_controlled()) {
        if (number == SYS_close)
            FD_CALL_THEN("close", a[0], REAL(syscall)(SYS_close, a[0]), ar_closed((int)a[0]));
        if (number == SYS_futex)
            return ar_futex(a);
        if (number == SYS_getrandom)
            return getrandom((void *)a[0], (size_t)a[1], (unsigned)a[2]);
        if (!harmless(number)) {
            char where[200];
            sim_where(where, sizeof where, __builtin_return_address(0));
            sim_lost_control("a call past the interposer: syscall(%ld, %s) from %s, which "
                             "the scheduler does not order", number, sim_syscall_name(number), where);
        }
    }
    return REAL(syscall)(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
