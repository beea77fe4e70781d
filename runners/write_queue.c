/* write_queue.c: the nonblocking-socket write queue of raw_tcp.c; see
 * write_queue.h for why it exists. */
#include "write_queue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct ar_wreq {
    ar_wreq *next;
    ar_write_fn fn;
    void *arg;
    size_t len, done;
    char data[];
};

int ar_write_queue_push(ar_write_queue *q, const void *buf, size_t len, ar_write_fn fn, void *arg)
{
    ar_wreq *r = malloc(sizeof *r + len);
    if (!r)
        return -ENOMEM;
    r->next = NULL;
    r->fn = fn;
    r->arg = arg;
    r->len = len;
    r->done = 0;
    if (len)
        memcpy(r->data, buf, len);
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    return 0;
}

void ar_write_queue_fail(ar_write_queue *q, int status)
{
    ar_wreq *list = q->head;
    q->head = q->tail = NULL;
    while (list) {
        ar_wreq *r = list;
        list = r->next;
        r->fn(r->arg, status);
        free(r);
    }
}

void ar_write_queue_flush(ar_write_queue *q, int fd, const bool *closing)
{
    while (q->head && !*closing) {
        ar_wreq *r = q->head;
        if (r->done < r->len) {
            ssize_t n = send(fd, r->data + r->done, r->len - r->done,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN)
                    ar_write_queue_fail(q, -errno);
                break;
            }
            r->done += (size_t)n;
            if (r->done < r->len)
                continue;
        }
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
        r->fn(r->arg, 0);
        free(r);
    }
}
