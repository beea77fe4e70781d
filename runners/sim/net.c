/* net.c: the sim runner's loopback TCP, in memory.
 *
 * A stream is one end of a pair; bytes a write hands over go straight into
 * the peer's receive buffer (at most RX_CAP bytes: a peer that does not read
 * holds writes back, as a full socket buffer does), and the peer's loop reads
 * them on one of its turns, as many at a time as the scheduler chooses (one
 * read callback per turn: 1 .. min(buffered, 64 KiB) bytes). What happens
 * between the two loops' turns is the schedule.
 *
 * Connects: on the connecting loop's next turn the listener at that port is
 * looked up: none means -ECONNREFUSED; a full backlog keeps the connect
 * waiting until an accept makes room (the SYN retry, without its seconds);
 * otherwise the server end joins the backlog (it buffers what the client
 * writes before it is accepted) and the connect completes. The listener's
 * loop accepts the whole backlog on its turn.
 *
 * Closing is Linux's: a FIN (the peer reads what is buffered, then EOF),
 * unless unread bytes were left in the closer's receive buffer or
 * tcp_reset_on_close was set: then a reset (the peer's buffered bytes are
 * dropped, its read gets -ECONNRESET and its writes fail with -ECONNRESET).
 * A write to a peer that closed is handed over (status 0) and answered by a
 * reset. Closing a listener resets the connections it had not accepted.
 * Ports are sim's own (40000 and up, reused at once: no TIME_WAIT) and there
 * are no descriptors.
 */
#include "sim_runner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_CAP (256u << 10)
#define READ_MAX 65536u
#define ACCEPTS_PER_TURN 64
#define FIRST_PORT 40000
#define LAST_PORT 60999

typedef struct chunk {
    struct chunk *next;
    size_t len, off;
    char data[];
} chunk;

typedef struct wreq {
    struct wreq *next;
    ar_write_fn fn;
    void *arg;
    size_t len, done;
    char data[];
} wreq;

enum tcp_kind { TCP_LISTENER, TCP_CONNECTING, TCP_STREAM };

struct ar_tcp {
    ar_loop *loop;
    enum tcp_kind kind;
    bool closing, reading, reset_on_close;
    bool live;                  /* the user has it (not a backlog entry): on loop->handles */
    bool owns_port;             /* listeners and connects; an accepted end shares its listener's */
    bool in_ready;
    uint64_t ready_gen;
    void *fn, *arg;             /* accept, connect or read callback, by kind */
    ar_close_fn close_fn;
    void *close_arg;
    int local_port, peer_port;
    ar_tcp *prev, *next;        /* loop->handles, or loop's closing list (next only) */
    ar_tcp *ready_prev, *ready_next;
    /* a stream */
    ar_tcp *peer;               /* NULL once the peer end closed */
    chunk *rx_head, *rx_tail;
    size_t rx_len;
    bool rx_fin;                /* EOF once rx is read */
    int rx_err;                 /* a reset: what the next read gets */
    int write_err;              /* a reset: what queued and later writes get */
    wreq *wq_head, *wq_tail;
    /* a connect */
    uint16_t target;
    bool syn_sent, established, refused;
    /* a listener's backlog, or a connect waiting in one (bl_next, listener) */
    int backlog_max, backlog_n;
    ar_tcp *bl_head, *bl_tail, *syn_head, *syn_tail;
    ar_tcp *bl_next, *listener;
};

static ar_tcp *listeners[65536];
static unsigned char port_used[65536];
static int next_port = FIRST_PORT;
static uint64_t ports_run;

/* ---- ports ---- */

static int port_alloc(void)
{
    if (ports_run != sim_run_serial()) {  /* each run hands out the same ports */
        ports_run = sim_run_serial();
        next_port = FIRST_PORT;
    }
    for (int i = 0; i <= LAST_PORT - FIRST_PORT; i++) {
        int p = next_port;
        next_port = next_port == LAST_PORT ? FIRST_PORT : next_port + 1;
        if (!port_used[p]) {
            port_used[p] = 1;
            return p;
        }
    }
    return -1;
}

static void port_free(int port)
{
    if (port > 0) {
        port_used[port] = 0;
        if (listeners[port])
            listeners[port] = NULL;
    }
}

/* ---- handles, the ready list ---- */

static ar_tcp *tcp_new(ar_loop *loop, enum tcp_kind kind)
{
    ar_tcp *h = calloc(1, sizeof *h);
    if (!h) {
        fputs("sim runner: out of memory (tcp)\n", stderr);
        abort();
    }
    h->loop = loop;
    h->kind = kind;
    h->local_port = h->peer_port = -1;
    return h;
}

static void make_live(ar_tcp *h)
{
    h->live = true;
    h->next = h->loop->handles;
    h->prev = NULL;
    if (h->next)
        h->next->prev = h;
    h->loop->handles = h;
    sim_count(SIM_RES_TCP, 1);
}

static void handles_unlink(ar_tcp *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        h->loop->handles = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
}

static void ready_unlink(ar_tcp *h)
{
    if (!h->in_ready)
        return;
    ar_loop *loop = h->loop;
    if (h->ready_prev)
        h->ready_prev->ready_next = h->ready_next;
    else
        loop->ready_head = h->ready_next;
    if (h->ready_next)
        h->ready_next->ready_prev = h->ready_prev;
    else
        loop->ready_tail = h->ready_prev;
    h->ready_prev = h->ready_next = NULL;
    h->in_ready = false;
}

/* h has something to do on a later turn of its loop. */
static void mark_ready(ar_tcp *h)
{
    if (!h->live || h->closing || h->in_ready)
        return;
    ar_loop *loop = h->loop;
    h->in_ready = true;
    h->ready_gen = loop->gen;
    h->ready_next = NULL;
    h->ready_prev = loop->ready_tail;
    if (loop->ready_tail)
        loop->ready_tail->ready_next = h;
    else
        loop->ready_head = h;
    loop->ready_tail = h;
    sim_loop_wake(loop);
}

bool sim_net_has_work(const ar_loop *loop)
{
    return loop->ready_head || loop->closing_head;
}

/* ---- buffers ---- */

static void rx_append(ar_tcp *h, const char *data, size_t len)
{
    chunk *c = malloc(sizeof *c + len);
    if (!c) {
        fputs("sim runner: out of memory (rx)\n", stderr);
        abort();
    }
    c->next = NULL;
    c->len = len;
    c->off = 0;
    memcpy(c->data, data, len);
    if (h->rx_tail)
        h->rx_tail->next = c;
    else
        h->rx_head = c;
    h->rx_tail = c;
    h->rx_len += len;
}

static size_t rx_take(ar_tcp *h, char *out, size_t want)
{
    size_t got = 0;
    while (got < want && h->rx_head) {
        chunk *c = h->rx_head;
        size_t k = c->len - c->off < want - got ? c->len - c->off : want - got;
        memcpy(out + got, c->data + c->off, k);
        c->off += k;
        got += k;
        if (c->off == c->len) {
            h->rx_head = c->next;
            if (!h->rx_head)
                h->rx_tail = NULL;
            free(c);
        }
    }
    h->rx_len -= got;
    return got;
}

static void rx_drop(ar_tcp *h)
{
    while (h->rx_head) {
        chunk *c = h->rx_head;
        h->rx_head = c->next;
        free(c);
    }
    h->rx_tail = NULL;
    h->rx_len = 0;
}

/* Calls each queued write's callback with status; writes these callbacks
 * queue wait for the next flush. */
static void writes_fail(ar_tcp *h, int status)
{
    wreq *list = h->wq_head;
    h->wq_head = h->wq_tail = NULL;
    while (list) {
        wreq *w = list;
        list = w->next;
        w->fn(w->arg, status);
        free(w);
    }
}

/* ---- resets and FINs ---- */

static void reset(ar_tcp *h)
{
    rx_drop(h);
    h->rx_fin = false;
    h->rx_err = -ECONNRESET;
    h->write_err = -ECONNRESET;
    h->peer = NULL;
    mark_ready(h);
}

/* h's end goes away: its peer sees a FIN or, with unread bytes or
 * reset_on_close, a reset. */
static void disconnect(ar_tcp *h)
{
    ar_tcp *p = h->peer;
    h->peer = NULL;
    if (!p)
        return;
    if (h->reset_on_close || h->rx_len > 0) {
        reset(p);
    } else {
        p->peer = NULL;
        p->rx_fin = true;
        mark_ready(p);
    }
}

static void backlog_drop(ar_tcp *l)
{
    while (l->bl_head) {
        ar_tcp *s = l->bl_head;
        l->bl_head = s->bl_next;
        s->reset_on_close = true;   /* never accepted: the client gets a reset */
        disconnect(s);
        rx_drop(s);
        free(s);
    }
    l->bl_tail = NULL;
    l->backlog_n = 0;
    while (l->syn_head) {
        ar_tcp *c = l->syn_head;
        l->syn_head = c->bl_next;
        c->bl_next = NULL;
        c->listener = NULL;
        c->refused = true;
        mark_ready(c);
    }
    l->syn_tail = NULL;
}

static void syn_unlink(ar_tcp *c)
{
    ar_tcp *l = c->listener, *prev = NULL;
    for (ar_tcp *p = l->syn_head; p; prev = p, p = p->bl_next)
        if (p == c) {
            if (prev)
                prev->bl_next = c->bl_next;
            else
                l->syn_head = c->bl_next;
            if (l->syn_tail == c)
                l->syn_tail = prev;
            break;
        }
    c->bl_next = NULL;
    c->listener = NULL;
}

/* ---- closing ---- */

static void close_now(ar_tcp *h, ar_close_fn fn, void *arg)
{
    h->closing = true;
    h->reading = false;
    h->close_fn = fn;
    h->close_arg = arg;
    ready_unlink(h);
    handles_unlink(h);
    if (h->kind == TCP_LISTENER)
        backlog_drop(h);
    else if (h->kind == TCP_CONNECTING && h->listener)
        syn_unlink(h);
    disconnect(h);
    rx_drop(h);
    if (h->owns_port)
        port_free(h->local_port);
    h->local_port = h->peer_port = -1;
    ar_loop *loop = h->loop;
    h->next = NULL;
    if (loop->closing_tail)
        loop->closing_tail->next = h;
    else
        loop->closing_head = h;
    loop->closing_tail = h;
    sim_loop_wake(loop);
}

void sim_net_finish_closes(ar_loop *loop)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    while (loop->closing_head) {
        ar_tcp *h = loop->closing_head;
        loop->closing_head = h->next;
        if (!loop->closing_head)
            loop->closing_tail = NULL;
        if (h->kind == TCP_CONNECTING)
            ((ar_connect_fn)h->fn)(h->arg, NULL, -ECANCELED);
        else
            writes_fail(h, -ECANCELED);
        if (h->close_fn)
            h->close_fn(h->close_arg);
        free(h);
        sim_count(SIM_RES_TCP, -1);
    }
}

void sim_net_close_all(ar_loop *loop)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    while (loop->handles) {
        ar_tcp *h = loop->handles;
        close_now(h, NULL, NULL);   /* loop_free: no close callback unless one was asked for */
    }
}

/* ---- what a turn does for each ready handle ---- */

static void establish(ar_tcp *l, ar_tcp *c)
{
    ar_tcp *s = tcp_new(l->loop, TCP_STREAM);
    s->local_port = l->local_port;
    s->peer_port = c->local_port;
    s->peer = c;
    c->peer = s;
    c->peer_port = l->local_port;
    c->established = true;
    if (l->bl_tail)
        l->bl_tail->bl_next = s;
    else
        l->bl_head = s;
    l->bl_tail = s;
    l->backlog_n++;
    mark_ready(l);
}

static void turn_connecting(ar_tcp *h)
{
    if (!h->syn_sent) {
        h->syn_sent = true;
        ar_tcp *l = listeners[h->target];
        if (!l || l->closing)
            h->refused = true;
        else if (l->backlog_n >= l->backlog_max) {
            h->listener = l;    /* waits for room */
            if (l->syn_tail)
                l->syn_tail->bl_next = h;
            else
                l->syn_head = h;
            l->syn_tail = h;
            return;
        } else
            establish(l, h);
    }
    if (h->refused) {
        handles_unlink(h);
        port_free(h->local_port);
        ((ar_connect_fn)h->fn)(h->arg, NULL, -ECONNREFUSED);
        free(h);
        sim_count(SIM_RES_TCP, -1);
        return;
    }
    if (h->established) {
        h->kind = TCP_STREAM;
        ar_connect_fn fn = (ar_connect_fn)h->fn;
        h->fn = NULL;
        fn(h->arg, h, 0);
    }
}

static void turn_listener(ar_tcp *l)
{
    ar_accept_fn fn = (ar_accept_fn)l->fn;
    for (int i = 0; i < ACCEPTS_PER_TURN && l->bl_head && !l->closing; i++) {
        ar_tcp *s = l->bl_head;
        l->bl_head = s->bl_next;
        if (!l->bl_head)
            l->bl_tail = NULL;
        l->backlog_n--;
        s->bl_next = NULL;
        if (l->syn_head) {      /* room: the next waiting connect completes */
            ar_tcp *c = l->syn_head;
            l->syn_head = c->bl_next;
            if (!l->syn_head)
                l->syn_tail = NULL;
            c->bl_next = NULL;
            c->listener = NULL;
            establish(l, c);
            mark_ready(c);
        }
        make_live(s);
        fn(l->arg, s, 0);
    }
    if (l->bl_head && !l->closing)
        mark_ready(l);
}

static size_t peer_room(const ar_tcp *p) { return p->rx_len < RX_CAP ? RX_CAP - p->rx_len : 0; }

static void flush(ar_tcp *h)
{
    while (h->wq_head && !h->closing) {
        wreq *w = h->wq_head;
        if (h->write_err) {
            writes_fail(h, h->write_err);
            return;
        }
        ar_tcp *p = h->peer;
        if (!p) {               /* the peer closed: handed over, then answered by a reset */
            w->done = w->len;
            reset(h);
        } else {
            size_t k = w->len - w->done;
            if (k > peer_room(p))
                k = peer_room(p);
            if (k) {
                rx_append(p, w->data + w->done, k);
                w->done += k;
                mark_ready(p);
            }
            if (w->done < w->len)
                return;         /* the peer's buffer is full: its reads make room */
        }
        h->wq_head = w->next;
        if (!h->wq_head)
            h->wq_tail = NULL;
        w->fn(w->arg, 0);
        free(w);
    }
}

static bool stream_has_work(const ar_tcp *h)
{
    if (h->reading && (h->rx_len || h->rx_err || h->rx_fin))
        return true;
    return h->wq_head && (!h->peer || h->write_err || peer_room(h->peer) > 0);
}

static void turn_stream(ar_tcp *h)
{
    if (h->reading) {
        ar_read_fn fn = (ar_read_fn)h->fn;
        if (h->rx_len) {
            size_t most = h->rx_len < READ_MAX ? h->rx_len : READ_MAX;
            size_t n = 1 + (size_t)sim_choose("tcp.read", most);
            rx_take(h, h->loop->read_buf, n);
            if (h->peer && h->peer->wq_head)
                mark_ready(h->peer);     /* room again for its writes */
            fn(h->arg, h->loop->read_buf, (ssize_t)n);
        } else if (h->rx_err || h->rx_fin) {
            int err = h->rx_err;
            h->reading = false;          /* reading stops before the callback */
            h->rx_err = 0;
            h->rx_fin = false;
            fn(h->arg, NULL, err);
        }
    }
    if (!h->closing && h->wq_head)
        flush(h);
}

void sim_net_run_ready(ar_loop *loop)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    for (ar_tcp *h; (h = loop->ready_head) && h->ready_gen < loop->gen;) {
        ready_unlink(h);
        switch (h->kind) {
        case TCP_LISTENER:
            turn_listener(h);
            continue;
        case TCP_CONNECTING:
            turn_connecting(h);
            continue;
        case TCP_STREAM:
            turn_stream(h);
            if (!h->closing && stream_has_work(h))
                mark_ready(h);
            continue;
        }
    }
}

/* ---- the API ---- */

ar_tcp *sim_tcp_listen(ar_loop *loop, int backlog, ar_accept_fn fn, void *arg, uint16_t *port)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    int p = port_alloc();
    if (p < 0) {
        errno = EADDRINUSE;
        return NULL;
    }
    ar_tcp *l = tcp_new(loop, TCP_LISTENER);
    l->fn = (void *)fn;
    l->arg = arg;
    l->local_port = p;
    l->owns_port = true;
    l->backlog_max = backlog > 0 ? backlog : 4096;
    listeners[p] = l;
    make_live(l);
    *port = (uint16_t)p;
    return l;
}

void sim_tcp_connect(ar_loop *loop, uint16_t port, ar_connect_fn fn, void *arg)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    ar_tcp *h = tcp_new(loop, TCP_CONNECTING);
    h->fn = (void *)fn;
    h->arg = arg;
    h->target = port;
    h->local_port = port_alloc();
    h->owns_port = h->local_port > 0;
    make_live(h);
    mark_ready(h);              /* the SYN goes out on the loop's next turn */
}

int sim_tcp_read_start(ar_tcp *h, ar_read_fn fn, void *arg)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    if (h->closing)
        return -EBADF;
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    if (h->reading)
        return -EALREADY;
    h->fn = (void *)fn;
    h->arg = arg;
    h->reading = true;
    if (stream_has_work(h))
        mark_ready(h);
    return 0;
}

int sim_tcp_read_stop(ar_tcp *h)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    h->reading = false;
    return 0;
}

int sim_tcp_write(ar_tcp *h, const void *buf, size_t len, ar_write_fn fn, void *arg)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    if (h->closing)
        return -EBADF;
    if (h->kind != TCP_STREAM)
        return -ENOTCONN;
    wreq *w = malloc(sizeof *w + len);
    if (!w)
        return -ENOMEM;
    *w = (wreq){ NULL, fn, arg, len, 0 };
    if (len)
        memcpy(w->data, buf, len);
    if (h->wq_tail)
        h->wq_tail->next = w;
    else
        h->wq_head = w;
    h->wq_tail = w;
    mark_ready(h);              /* handed over on a turn: callbacks never come from here */
    return 0;
}

void sim_tcp_close(ar_tcp *h, ar_close_fn fn, void *arg)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    if (!h->closing)
        close_now(h, fn, arg);
}

int sim_tcp_port(ar_tcp *h, bool peer)
{
    sim_touch(SIM_OBJ_NET, 0);   /* connections join loops: one object */
    if (h->closing)
        return -1;
    return peer ? (h->kind == TCP_STREAM ? h->peer_port : -1) : h->local_port;
}

void sim_tcp_reset_on_close(ar_tcp *h)
{
    sim_touch(SIM_OBJ_NET, 0);
    h->reset_on_close = true;
}
