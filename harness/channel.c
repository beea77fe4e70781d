/* channel.c: an unbounded mpsc channel of pointers, and the oneshot on top.
 *
 * Wakes happen after the channel's lock is released: under the inline wake
 * policy a wake may poll the receiver right here, and that poll takes this
 * lock again. (inline_repoll.c shows what happens to code that wakes while
 * holding its own lock.)
 */
#include "runtime.h"
#include "case.h"

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
    ar_race_point("chan.sender_drop", 0);
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
    ar_race_point("chan.send", 0);
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
    ar_waker *old = NULL;
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
        if (!c->rx_waker || !ar_waker_will_wake(c->rx_waker, cx->waker)) {
            old = c->rx_waker;
            c->rx_waker = ar_waker_clone(cx->waker);
        }
        res = AR_RECV_PENDING;
    }
    c->r->mutex_unlock(c->lock);
    if (old)
        ar_waker_drop(old);
    return res;
}

void ar_receiver_drop(ar_receiver *rx)
{
    chan *c = (chan *)rx;
    ar_race_point("chan.receiver_drop", 0);
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
