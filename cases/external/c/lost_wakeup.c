/* lost_wakeup.c: a consumer sleeps forever with items in its queue.
 *
 * A producer thread pushes items 1 and 2 into a queue and signals `ready`
 * after each push (under the lock); main takes them in order. The buggy
 * consumer asks "is the queue empty?" through a helper that takes and drops
 * the lock, and only then locks again to wait. The producer can push and
 * signal in between, when nobody is waiting yet, so the signal is lost:
 *
 *   main (consumer)                         producer
 *   ------------------------------------    ------------------------------------
 *   queue_empty(): lock; empty; unlock
 *                                           lock; push 1; signal; unlock
 *                                             (nobody waits: the signal is lost)
 *                                           lock; push 2; signal; unlock; exit
 *   lock; wait(ready) -> sleeps forever
 *     with items 1 and 2 in the queue
 *
 * Symptom: a hang, every thread blocked (a deadlock under a scheduler). With
 * --timeout-ms the wait is timed and its expiry aborts, naming the item.
 *
 *   buggy   check the predicate in one lock section, wait in another
 *   fixed   check and wait under one lock, in a while loop: the producer
 *           cannot push between the check and the wait, because
 *           pthread_cond_wait drops the mutex only once the consumer waits,
 *           so every push after the check signals a waiting consumer.
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ITEMS = 2 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;               /* signalled after each push */
    int items[ITEMS];
    int head, tail;                     /* items[head..tail) are queued */
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0 };


/* Wait on `ready` (q.lock held); with --timeout-ms, abort when the wait expires. */
static void wait_ready(int want)
{
    if (!wait_in_time(&q.ready, &q.lock)) {
        fprintf(stderr, "lost_wakeup: consumer never saw item %d (lost wake-up: "
                "slept %ld ms with %d item(s) queued)\n", want, timeout_ms, q.tail - q.head);
        abort();
    }
}

static void *producer(void *arg)
{
    (void)arg;
    for (int i = 1; i <= ITEMS; i++) {
        pthread_mutex_lock(&q.lock);
        q.items[q.tail++] = i;          /* never full: the queue holds every item */
        pthread_cond_signal(&q.ready);
        pthread_mutex_unlock(&q.lock);
    }
    return NULL;
}

/* The buggy consumer's helper: its answer is stale as soon as it returns. */
static bool queue_empty(void)
{
    pthread_mutex_lock(&q.lock);
    bool empty = q.head == q.tail;
    pthread_mutex_unlock(&q.lock);
    return empty;
}

static int take(int want)
{
    if (buggy) {
        while (queue_empty()) {
            /* window: the producer may push and signal here, before we wait */
            pthread_mutex_lock(&q.lock);
            wait_ready(want);
            pthread_mutex_unlock(&q.lock);
        }
        pthread_mutex_lock(&q.lock);
    } else {
        pthread_mutex_lock(&q.lock);
        while (q.head == q.tail)        /* while: wake-ups may be spurious */
            wait_ready(want);
    }
    int item = q.items[q.head++];
    pthread_mutex_unlock(&q.lock);
    return item;
}

static void scenario(void)
{
    q.head = q.tail = 0;                /* no other thread runs between scenarios */
    pthread_t t = start_thread("lost_wakeup", producer, NULL);
    for (int want = 1; want <= ITEMS; want++)
        take(want);
    pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
    parse_command_line("lost_wakeup", argc, argv);
    for (long n = 0; n < iterations; n++)
        scenario();
    return 0;
}
