/* caught.c: libc functions the loop libraries import that the scheduler
 * cannot order, taken so that a task's call ends its run as `uncontrolled`,
 * named, instead of running as if it were deterministic. None is reached by
 * the cases (docs/census.md); runners/controlled/census.txt says, for every
 * import of libuv, libevent and libev, whether it is interposed, caught here,
 * or plain, and runners/test_census.py holds the build to it. Outside a
 * task each is libc's own.
 */
#include "interpose.h"
#include "sim/contexts.h"

#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

/* Ends the calling task's run: the call, who made it (which library), why. */
static _Noreturn void caught(const char *call, void *from, const char *why)
{
    char where[200], what[300];
    sim_where(where, sizeof where, from);
    snprintf(what, sizeof what, "%s from %s", call, where);
    ar_uncontrolled(what, why);
}

#define CAUGHT(ret, name, params, args, why)                                  \
    ret name params                                                           \
    {                                                                         \
        if (ar_controlled())                                                  \
            caught(#name, __builtin_return_address(0), why);                  \
        return REAL(name) args;                                               \
    }

#define WAITS "it may wait in the kernel, where the scheduler cannot wake it"
#define PROCESS "another process, which the scheduler does not run"
#define SIGNALS "signals arrive when the kernel delivers them, not when the schedule says"
#define FS_EVENTS "file system events arrive when the kernel sees them"
#define TIME "it reads the CPU time or the uptime, which are not virtual"
#define NETWORK "it may ask a name server, outside the run"
#define TRANSFER "a transfer between descriptors the scheduler does not order yet"

/* A zero timeout asks and returns, as epoll_wait(0) does: that is allowed. */
int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    if (timeout != 0 && ar_controlled())
        caught("poll", __builtin_return_address(0), WAITS);
    return REAL(poll)(fds, n, timeout);
}

int select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout)
{
    if (!(timeout && !timeout->tv_sec && !timeout->tv_usec) && ar_controlled())
        caught("select", __builtin_return_address(0), WAITS);
    return REAL(select)(n, r, w, e, timeout);
}

/* A task's thread must end through the core (its turn handed on), never
 * past it. */
_Noreturn void pthread_exit(void *ret)
{
    if (ar_controlled())
        caught("pthread_exit", __builtin_return_address(0), "a task ends by returning from "
               "its function; pthread_exit would end its thread behind the scheduler");
    REAL(pthread_exit)(ret);
}

CAUGHT(pid_t, fork, (void), (), PROCESS)
CAUGHT(pid_t, vfork, (void), (), PROCESS)
CAUGHT(int, execvp, (const char *file, char *const argv[]), (file, argv), PROCESS)
CAUGHT(int, execv, (const char *path, char *const argv[]), (path, argv), PROCESS)
CAUGHT(int, execve, (const char *path, char *const argv[], char *const envp[]),
       (path, argv, envp), PROCESS)
CAUGHT(int, execvpe, (const char *file, char *const argv[], char *const envp[]),
       (file, argv, envp), PROCESS)
CAUGHT(int, posix_spawn, (pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
       (pid, path, fa, attr, argv, envp), PROCESS)
CAUGHT(int, posix_spawnp, (pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]),
       (pid, file, fa, attr, argv, envp), PROCESS)
CAUGHT(int, system, (const char *command), (command), PROCESS)
CAUGHT(FILE *, popen, (const char *command, const char *type), (command, type), PROCESS)
CAUGHT(pid_t, waitpid, (pid_t pid, int *status, int options), (pid, status, options), PROCESS)
CAUGHT(int, kill, (pid_t pid, int sig), (pid, sig), SIGNALS)
/* A handler for a signal the kernel sends asynchronously is what cannot be
 * ordered. Asking, ignoring, restoring the default, and handling a fault
 * (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP: delivered to the faulting
 * thread at the faulting instruction, as deterministic as the instruction)
 * are allowed: Rust's runtime does all of them before main. */
static bool settles_nothing(int sig, void (*h)(int))
{
    return h == SIG_IGN || h == SIG_DFL || sig == SIGSEGV || sig == SIGBUS || sig == SIGILL ||
           sig == SIGFPE || sig == SIGTRAP;
}

int sigaction(int sig, const struct sigaction *a, struct sigaction *old)
{
    if (a && !settles_nothing(sig, a->sa_handler) && ar_controlled())
        caught("sigaction", __builtin_return_address(0), SIGNALS);
    return REAL(sigaction)(sig, a, old);
}

sighandler_t signal(int sig, sighandler_t h)
{
    if (!settles_nothing(sig, h) && ar_controlled())
        caught("signal", __builtin_return_address(0), SIGNALS);
    return REAL(signal)(sig, h);
}

CAUGHT(int, sigprocmask, (int how, const sigset_t *set, sigset_t *old), (how, set, old), SIGNALS)
CAUGHT(int, pthread_sigmask, (int how, const sigset_t *set, sigset_t *old), (how, set, old),
       SIGNALS)
CAUGHT(int, signalfd, (int fd, const sigset_t *mask, int flags), (fd, mask, flags), SIGNALS)
CAUGHT(int, inotify_init, (void), (), FS_EVENTS)
CAUGHT(int, inotify_init1, (int flags), (flags), FS_EVENTS)
CAUGHT(int, inotify_add_watch, (int fd, const char *path, uint32_t mask), (fd, path, mask),
       FS_EVENTS)
CAUGHT(int, inotify_rm_watch, (int fd, int wd), (fd, wd), FS_EVENTS)
CAUGHT(int, getrusage, (__rusage_who_t who, struct rusage *u), (who, u), TIME)
CAUGHT(int, sysinfo, (struct sysinfo *info), (info), TIME)
CAUGHT(int, getaddrinfo, (const char *node, const char *service, const struct addrinfo *hints,
       struct addrinfo **res), (node, service, hints, res), NETWORK)
CAUGHT(int, getnameinfo, (const struct sockaddr *a, socklen_t alen, char *host, socklen_t hlen,
       char *serv, socklen_t slen, int flags), (a, alen, host, hlen, serv, slen, flags), NETWORK)
CAUGHT(ssize_t, sendfile, (int out, int in, off_t *off, size_t n), (out, in, off, n), TRANSFER)
CAUGHT(ssize_t, sendfile64, (int out, int in, __off64_t *off, size_t n), (out, in, off, n),
       TRANSFER)
