/* queue_teardown.c: shutdown unmaps a job queue that its worker still uses.
 *
 * main starts a worker that takes jobs from a queue, pushes jobs 1 and 2,
 * sets `stop` and broadcasts. The worker finishes the queued jobs, sees stop
 * and returns. The buggy shutdown then frees the queue and joins the worker
 * afterwards ("stop is set: the worker is on its way out"). But the worker
 * may not have got there yet:
 *
 *   main                                    worker
 *   ------------------------------------    ------------------------------------
 *   push 1; push 2                          (not started yet, or waiting on `more`)
 *   lock; stop = true; broadcast; unlock
 *   munmap(queue)
 *                                           lock(&queue->lock), read queue->head
 *                                             -> SIGSEGV: the page is gone
 *   pthread_join(worker)
 *
 * The queue, its mutex and its cond live in one page of their own (mmap), so
 * the worker's late access faults at once, with or without a sanitizer (a
 * freed malloc block would mostly read back stale data, silently).
 * Symptom: SIGSEGV in the worker.
 *
 *   buggy   stop, broadcast, munmap, then join
 *   fixed   stop, broadcast, join, then destroy and munmap: join returns only
 *           after the worker's last access to the queue (its final unlock).
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum { JOBS = 2 };

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t more;                /* a job was pushed, or stop was set */
    int jobs[JOBS];
    int head, tail;                     /* jobs[head..tail) are queued */
    bool stop;
    int sum;                            /* the work: the sum of the jobs done */
};


/* Wait on `more` (q->lock held); with --timeout-ms, abort when the wait expires. */
static void wait_more(struct queue *q)
{
    if (!wait_in_time(&q->more, &q->lock)) {
        fprintf(stderr, "queue_teardown: worker waited %ld ms for a job or stop\n", timeout_ms);
        abort();
    }
}

static void *worker(void *arg)
{
    struct queue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->head == q->tail && !q->stop)
            wait_more(q);
        if (q->head == q->tail) {       /* stop, and every job done */
            pthread_mutex_unlock(&q->lock);
            return NULL;                /* the last access to *q */
        }
        q->sum += q->jobs[q->head++];
        pthread_mutex_unlock(&q->lock);
    }
}

static void push(struct queue *q, int job)
{
    pthread_mutex_lock(&q->lock);
    q->jobs[q->tail++] = job;           /* never full: the queue holds every job */
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->lock);
}

static void scenario(size_t page)
{
    struct queue *q = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED) {
        fprintf(stderr, "queue_teardown: mmap: %s\n", strerror(errno));
        exit(1);
    }
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->more, NULL);
    pthread_t t = start_thread("queue_teardown", worker, q);
    for (int job = 1; job <= JOBS; job++)
        push(q, job);
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->more);
    pthread_mutex_unlock(&q->lock);
    if (buggy) {
        munmap(q, page);                /* the worker may still be on its way */
        pthread_join(t, NULL);
        return;
    }
    pthread_join(t, NULL);
    if (q->sum != JOBS * (JOBS + 1) / 2) {
        fprintf(stderr, "queue_teardown: worker left with jobs undone (sum %d)\n", q->sum);
        abort();
    }
    pthread_cond_destroy(&q->more);
    pthread_mutex_destroy(&q->lock);
    munmap(q, page);
}

int main(int argc, char **argv)
{
    parse_command_line("queue_teardown", argc, argv);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (long n = 0; n < iterations; n++)
        scenario(page);
    return 0;
}
