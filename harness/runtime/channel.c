/* channel.c: an unbounded mpsc channel of pointers, and the oneshot on top.
 *
 * Wakes happen after the channel's lock is released: under the inline wake
 * policy a wake may poll the receiver right here, and that poll takes this
 * lock again. (inline_repoll.c shows what happens to code that wakes while
 * holding its own lock.)
 */
#include "runtime.h"

#include <stdlib.h>

typedef struct node {
    struct node *next;
    void *item;
} node;

typedef struct chan {
    const ar_runner *r;
    ar_mutex *lock;
    node *head, *tail;
    size_t senders;
    bool receiver_alive;
    ar_waker *rx_waker;           /* the receiver parked in ar_recv */
    ar_drop_fn item_drop;
} chan;

void ar_chan_new(ar_rt *rt, ar_drop_fn item_drop, ar_sender **tx, ar_receiver **rx)
{
    chan *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->r = ar_rt_runner(rt);
    c->lock = c->r->mutex_new();
    c->senders = 1;
    c->receiver_alive = true;
    c->item_drop = item_drop;
    *tx = (ar_sender *)c;
    *rx = (ar_receiver *)c;
}

static void chan_free(chan *c)
{
    c->r->mutex_free(c->lock);
    free(c);
}

static void drop_items(ar_drop_fn item_drop, node *n)
{
    while (n) {
        node *next = n->next;
        if (item_drop)
            item_drop(n->item);
        free(n);
        n = next;
    }
}

ar_sender *ar_sender_clone(ar_sender *tx)
{
    chan *c = (chan *)tx;
    c->r->mutex_lock(c->lock);
    c->senders++;
    c->r->mutex_unlock(c->lock);
    return tx;
}

void ar_sender_drop(ar_sender *tx)
{
    chan *c = (chan *)tx;
    ar_race_point(&ar_at_chan_sender_drop, 0);
    c->r->mutex_lock(c->lock);
    bool closes = --c->senders == 0;
    ar_waker *w = NULL;
    if (closes) {
        w = c->rx_waker;
        c->rx_waker = NULL;
    }
    bool last_handle = closes && !c->receiver_alive;
    c->r->mutex_unlock(c->lock);
    if (w)
        ar_wake(w);               /* the receiver sees CLOSED */
    if (last_handle)
        chan_free(c);
}

bool ar_send(ar_sender *tx, void *item)
{
    chan *c = (chan *)tx;
    node *n = malloc(sizeof *n);
    if (!n) abort();
    n->next = NULL;
    n->item = item;
    ar_race_point(&ar_at_chan_send, 0);
    c->r->mutex_lock(c->lock);
    if (!c->receiver_alive) {
        c->r->mutex_unlock(c->lock);
        free(n);
        return false;
    }
    if (c->tail) c->tail->next = n;
    else c->head = n;
    c->tail = n;
    ar_waker *w = c->rx_waker;
    c->rx_waker = NULL;
    c->r->mutex_unlock(c->lock);
    if (w)
        ar_wake(w);
    return true;
}

ar_recv_result ar_recv(ar_receiver *rx, ar_cx *cx, void **item)
{
    chan *c = (chan *)rx;
    ar_recv_result res;
    c->r->mutex_lock(c->lock);
    if (c->head) {
        node *n = c->head;
        c->head = n->next;
        if (!c->head) c->tail = NULL;
        *item = n->item;
        free(n);
        res = AR_RECV_ITEM;
    } else if (c->senders == 0) {
        res = AR_RECV_CLOSED;
    } else {
        ar_waker_register(&c->rx_waker, cx);  /* a replaced waker's drop never wakes */
        res = AR_RECV_PENDING;
    }
    c->r->mutex_unlock(c->lock);
    return res;
}

void ar_receiver_drop(ar_receiver *rx)
{
    chan *c = (chan *)rx;
    ar_race_point(&ar_at_chan_receiver_drop, 0);
    c->r->mutex_lock(c->lock);
    c->receiver_alive = false;
    node *queued = c->head;
    c->head = c->tail = NULL;
    ar_waker *w = c->rx_waker;
    c->rx_waker = NULL;
    ar_drop_fn item_drop = c->item_drop;
    bool last_handle = c->senders == 0;
    c->r->mutex_unlock(c->lock);
    /* Outside the lock, an item's drop may wake; and without touching c, which
     * the last sender may free as soon as the lock is released. */
    drop_items(item_drop, queued);
    if (w)
        ar_waker_drop(w);
    if (last_handle)
        chan_free(c);
}

bool ar_oneshot_send(ar_oneshot_tx *tx, void *item)
{
    bool sent = ar_send(tx, item);
    ar_sender_drop(tx);
    return sent;
}

/* ---- block_on over a receiver: a scenario's main thread waiting for an answer ---- */

typedef struct {
    ar_recv_result result;
    void *item;
} recv_out;

typedef struct {
    ar_receiver *rx;
    recv_out *out;                /* the caller's; NULL once block_on gave up */
} recv_wait;

static ar_poll recv_wait_poll(void *p, ar_cx *cx)
{
    recv_wait *w = p;
    void *item = NULL;
    ar_recv_result r = ar_recv(w->rx, cx, &item);
    if (r == AR_RECV_PENDING)
        return AR_PENDING;
    if (w->out)
        *w->out = (recv_out){ r, item };
    return AR_READY;
}

static void recv_wait_drop(void *p)
{
    recv_wait *w = p;
    ar_receiver_drop(w->rx);
    free(w);
}

ar_recv_result ar_block_on_recv(ar_rt *rt, ar_receiver *rx, void **item)
{
    recv_out out = { AR_RECV_PENDING, NULL };
    recv_wait *w = malloc(sizeof *w);
    if (!w) abort();
    *w = (recv_wait){ rx, &out };
    /* Done: the runtime has dropped w. Timed out: the task stays pending
     * (nothing polls it: the main loop is not running) and is dropped at
     * shutdown, so it must forget `out`, which is about to go. */
    if (!ar_block_on(rt, recv_wait_poll, recv_wait_drop, w))
        w->out = NULL;
    *item = out.item;
    return out.result;
}
