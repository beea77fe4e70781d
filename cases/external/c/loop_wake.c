/* loop_wake.c: an event loop sleeps while a message waits in its mailbox.
 *
 * A loop thread sleeps in epoll_wait on an eventfd. main posts a message to
 * a mutex-protected mailbox, writes 1 to the eventfd to wake the loop, and
 * waits for the reply before it posts the next: 1, 2, then "quit". Woken,
 * the buggy loop answers every message in the mailbox and then reads the
 * eventfd to reset it "so that the next epoll_wait sleeps". A post that lands
 * between the drain and the reset loses its wake-up:
 *
 *   loop thread                             main (poster)
 *   ------------------------------------    ------------------------------------
 *                                           lock; push 1; write(efd)
 *                                           wait for reply 1 (unlocks)
 *   epoll_wait -> efd readable
 *   lock; take 1, reply 1; signal; unlock
 *                                           reply 1 seen; push 2; write(efd)
 *                                           wait for reply 2 (unlocks)
 *   read(efd) -> counter back to 0: the
 *     wake-up for 2 is gone
 *   epoll_wait -> sleeps forever            waits for reply 2 forever
 *
 * Symptom: a hang, every thread blocked (a deadlock under a scheduler). With
 * --timeout-ms main's wait for a reply is timed, and its expiry aborts.
 *
 *   buggy   drain the mailbox, then reset the eventfd
 *   fixed   reset the eventfd, then drain: a post the drain misses writes the
 *           eventfd after the reset, so the next epoll_wait returns at once.
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

enum { QUIT = 3, MESSAGES = 3 };        /* messages 1, 2, then 3 = quit */

static struct {
    pthread_mutex_t lock;
    pthread_cond_t replied;             /* signalled when `replies` grows */
    int msgs[MESSAGES];
    int head, tail;                     /* msgs[head..tail) wait for the loop */
    int replies;                        /* messages the loop has answered */
} box = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0 };

static int efd, ep;                     /* the loop's eventfd and epoll fds */

static void die(const char *what)
{
    fprintf(stderr, "loop_wake: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void reset_wake(void)
{
    uint64_t n;
    if (read(efd, &n, sizeof n) < 0 && errno != EAGAIN)
        die("read(eventfd)");
}

static void *loop(void *arg)
{
    (void)arg;
    for (;;) {
        struct epoll_event ev;
        if (epoll_wait(ep, &ev, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        if (!buggy)
            reset_wake();               /* reset first: a post after this wakes us again */
        bool quit = false;
        pthread_mutex_lock(&box.lock);
        int answered = box.replies;
        while (box.head < box.tail) {   /* drain: answer every message in the box */
            box.replies = box.msgs[box.head++];
            quit = box.replies == QUIT;
        }
        if (box.replies != answered)
            pthread_cond_signal(&box.replied);
        pthread_mutex_unlock(&box.lock);
        if (quit)
            return NULL;
        if (buggy)
            reset_wake();               /* window: a post since the drain loses its wake-up */
    }
}

/* Wait on `replied` (box.lock held); with --timeout-ms, abort when the wait expires. */
static void wait_replied(int msg)
{
    if (!wait_in_time(&box.replied, &box.lock)) {
        fprintf(stderr, "loop_wake: no reply to message %d in %ld ms, %d message(s) left "
                "in the mailbox (lost wake-up)\n", msg, timeout_ms, box.tail - box.head);
        abort();
    }
}

/* Post msg, wake the loop, wait for the reply. */
static void call(int msg)
{
    uint64_t one = 1;
    pthread_mutex_lock(&box.lock);
    box.msgs[box.tail++] = msg;         /* never full: the box holds every message */
    if (write(efd, &one, sizeof one) != sizeof one)
        die("write(eventfd)");
    while (box.replies < msg)
        wait_replied(msg);
    pthread_mutex_unlock(&box.lock);
}

static void scenario(void)
{
    box.head = box.tail = box.replies = 0;  /* no other thread runs between scenarios */
    efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (efd < 0 || ep < 0)
        die("eventfd/epoll_create1");
    struct epoll_event ev = { .events = EPOLLIN };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0)
        die("epoll_ctl");
    pthread_t t = start_thread("loop_wake", loop, NULL);
    for (int msg = 1; msg <= QUIT; msg++)
        call(msg);
    pthread_join(t, NULL);
    close(ep);
    close(efd);
}

int main(int argc, char **argv)
{
    parse_command_line("loop_wake", argc, argv);
    for (long n = 0; n < iterations; n++)
        scenario();
    return 0;
}
