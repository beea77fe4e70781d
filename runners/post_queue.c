/* post_queue.c: the mutex-guarded FIFO shared by the runners' post(); see
 * post_queue.h for why it exists. */
#include "post_queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ar_post_node {
    ar_post_node *next;
    ar_post_fn fn;
    void *arg;
};

int ar_post_queue_init(ar_post_queue *q)
{
    q->head = q->tail = NULL;
    q->wake_pending = false;
    q->muted = false;
    return pthread_mutex_init(&q->lock, NULL);
}

void ar_post_queue_destroy(ar_post_queue *q)
{
    int err = pthread_mutex_destroy(&q->lock);
    if (err) {
        fprintf(stderr, "asyncrace: post queue: pthread_mutex_destroy: %s\n", strerror(err));
        abort();
    }
}

bool ar_post_queue_push(ar_post_queue *q, ar_post_fn fn, void *arg, bool may_wake)
{
    ar_post_node *n = malloc(sizeof *n);
    if (!n) {
        fputs("asyncrace: post: out of memory\n", stderr);
        abort();
    }
    n->next = NULL;
    n->fn = fn;
    n->arg = arg;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    bool need_wake = !q->wake_pending && !q->muted && may_wake;
    q->wake_pending = true;
    pthread_mutex_unlock(&q->lock);
    return need_wake;
}

ar_post_node *ar_post_queue_take(ar_post_queue *q)
{
    pthread_mutex_lock(&q->lock);
    ar_post_node *list = q->head;
    q->head = q->tail = NULL;
    q->wake_pending = false;
    pthread_mutex_unlock(&q->lock);
    return list;
}

bool ar_post_queue_wake_pending(ar_post_queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool pending = q->wake_pending;
    pthread_mutex_unlock(&q->lock);
    return pending;
}

bool ar_post_queue_nonempty(ar_post_queue *q)
{
    pthread_mutex_lock(&q->lock);
    bool queued = q->head != NULL;
    pthread_mutex_unlock(&q->lock);
    return queued;
}

void ar_post_queue_mute(ar_post_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->muted = true;
    pthread_mutex_unlock(&q->lock);
}

void ar_post_run(ar_post_node *list, bool cancelled)
{
    while (list) {
        ar_post_node *n = list;
        list = n->next;
        n->fn(n->arg, cancelled);
        free(n);
    }
}

void ar_post_queue_cancel_all(ar_post_queue *q)
{
    for (ar_post_node *list; (list = ar_post_queue_take(q));)
        ar_post_run(list, true);
}
