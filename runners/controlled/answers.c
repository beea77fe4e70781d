/* answers.c: what of the kernel's answer a task gets, chosen by the strategy
 * and logged like any decision (sim's net.c chooses the same for its model):
 *
 *   read.bytes   how many of the bytes waiting on a stream socket or pipe a
 *                read returns: 1 to all of them (the default). A short read is
 *                always allowed there, and code that assumes a whole message
 *                per read is a classic bug;
 *   epoll.order  the order of the events one epoll_wait returns (default: the
 *                kernel's);
 *   epoll.now    how many of them come now (default: all). Only events of a
 *                level-triggered registration may wait: the kernel reports
 *                those again at the loop's next epoll_wait, as if they had
 *                become ready later. Edge-triggered and one-shot ones are
 *                reported once, so they always come.
 *
 * Only a task's calls get here, one task at a time (the baton), so the
 * tables need no lock; each belongs to one run. A registration this file did
 * not see (made outside the run) is taken as one that may not wait.
 */
#include "interpose.h"

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ---- read sizes ---- */

enum { KNOWN_FDS = 4096 };

static struct {
    uint64_t run;                 /* the run that looked; other runs' entries are unknown */
    bool stream;                  /* a TCP or Unix stream socket, or a pipe */
} kinds[KNOWN_FDS];

static bool is_stream(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    if (S_ISFIFO(st.st_mode))
        return true;
    int type = 0;
    socklen_t len = sizeof type;
    return S_ISSOCK(st.st_mode) && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 &&
           type == SOCK_STREAM;
}

size_t ar_read_size(int fd, size_t n)
{
    if (fd < 0 || n < 2)
        return n;
    uint64_t run = sim_run_serial();
    bool stream;
    if (fd < KNOWN_FDS && kinds[fd].run == run) {
        stream = kinds[fd].stream;
    } else {
        stream = is_stream(fd);
        if (fd < KNOWN_FDS)
            kinds[fd].run = run, kinds[fd].stream = stream;
    }
    int waiting = 0;
    if (!stream || ioctl(fd, FIONREAD, &waiting) != 0 || waiting < 2)
        return n;
    size_t most = (size_t)waiting < n ? (size_t)waiting : n;
    return 1 + (size_t)sim_choose("read.bytes", most);
}

size_t ar_read_size_iov(int fd, const struct iovec *iov, int n, struct iovec *out)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    size_t want = ar_read_size(fd, total);
    int k = 0;
    for (; k < n && want; k++) {
        out[k] = iov[k];
        if (out[k].iov_len > want)
            out[k].iov_len = want;
        want -= out[k].iov_len;
    }
    return (size_t)k;
}

/* ---- epoll registrations, by the data the kernel gives back ---- */

enum { REGISTRATIONS = 1024 };

typedef struct {
    int epfd, fd;
    uint64_t data;
    uint32_t events;
} registration;

static registration regs[REGISTRATIONS];
static int nregs;
static bool overflowed;           /* a registration went unrecorded: none may wait */
static uint64_t regs_run;

static void regs_for_this_run(void)
{
    if (regs_run != sim_run_serial()) {
        nregs = 0;
        overflowed = false;
        regs_run = sim_run_serial();
    }
}

static void drop_at(int i)
{
    regs[i] = regs[--nregs];
}

void ar_registered(int epfd, int op, int fd, const struct epoll_event *ev)
{
    regs_for_this_run();
    for (int i = 0; i < nregs; i++)
        if (regs[i].epfd == epfd && regs[i].fd == fd) {
            drop_at(i);
            break;
        }
    if (op == EPOLL_CTL_DEL)
        return;
    if (nregs == REGISTRATIONS) {
        overflowed = true;
        return;
    }
    regs[nregs++] = (registration){ epfd, fd, ev->data.u64, ev->events };
}

/* The kernel drops a closed fd from every epoll set (these cases never dup
 * one), and a closed epoll fd's set is gone; what kind of fd the number was
 * is forgotten too. */
void ar_closed(int fd)
{
    if (fd >= 0 && fd < KNOWN_FDS)
        kinds[fd].run = 0;            /* the number may come back as another kind of fd */
    regs_for_this_run();
    for (int i = 0; i < nregs;)
        if (regs[i].fd == fd || regs[i].epfd == fd)
            drop_at(i);
        else
            i++;
}

static bool may_wait(int epfd, const struct epoll_event *ev)
{
    if (overflowed)
        return false;
    bool seen = false;
    for (int i = 0; i < nregs; i++) {
        if (regs[i].epfd != epfd || regs[i].data != ev->data.u64)
            continue;
        if (regs[i].events & (EPOLLET | EPOLLONESHOT))
            return false;
        seen = true;
    }
    return seen;
}

int ar_deliver(int epfd, struct epoll_event *ev, int n)
{
    if (n < 2)
        return n;
    regs_for_this_run();
    for (int i = 0; i + 1 < n; i++) {
        int j = n - 1 - (int)sim_choose("epoll.order", (uint64_t)(n - i));
        struct epoll_event t = ev[i];
        ev[i] = ev[j];
        ev[j] = t;
    }
    int least = n;                /* the first always comes, and what may not wait */
    while (least > 1 && may_wait(epfd, &ev[least - 1]))
        least--;
    return least + (int)sim_choose("epoll.now", (uint64_t)(n - least + 1));
}
