/* early_writer_drop.c: a write is accepted, the stream is dropped, the bytes never arrive.
 *
 * Refs: bytecodealliance/wasmtime #6811 (fixed by an explicit flush, PR #6877);
 *       bytecodealliance/wasip3-prototyping #81 / PR #88.
 *
 * An async write stream is a channel plus a receiver task spawned on another
 * worker. The task prepares its sink (here a real loopback TCP connection to a
 * reader that runs on a third loop and counts and checks every byte), then
 * drains the channel into it. The stream holds an abort-on-drop join handle to
 * the task. The caller writes one message, the write says ok (it was queued),
 * and the stream is dropped at once. Two shapes, both from upstream:
 *
 * shape 1: dropped before the task has started (or before its sink exists)
 *
 *   caller (block_on, main loop)              receiver task (worker 0)
 *   ------------------------------------      ------------------------------------
 *   stream = new(): channel, spawn the        (queued behind other work on
 *     receiver, keep its abort handle          worker 0: not polled yet)
 *   stream.write(msg) -> ok: msg queued
 *   drop(stream): abort the task, drop
 *     the sender
 *                                             first poll: abort seen -> dropped,
 *                                             the queued msg with it; the sink
 *                                             was never connected
 *   reader: 0 of N bytes -> lost
 *
 * shape 2: dropped after the write was accepted, before it was written
 *
 *   caller (block_on, main loop)              receiver task (worker 0)
 *   ------------------------------------      ------------------------------------
 *   stream = new()                            started: connect the sink (ready,
 *                                             if the variant has one); recv() ->
 *                                             pending, parked
 *   stream.write(msg) -> ok: msg queued,
 *     receiver woken
 *   drop(stream): abort, drop the sender
 *                                             next poll: abort seen -> dropped
 *                                             with msg still queued; the sink
 *                                             is closed: the reader sees EOF
 *   reader: 0 of N bytes -> lost
 *
 *   buggy        new() returns at once; drop aborts the task whether or not it
 *                has started. Loses in both shapes.
 *   partial      new() awaits a readiness oneshot, but the task signals it
 *                before it prepares the sink (the seed's "the readiness signal
 *                fires too early"). That only moves shape 1 from "not polled
 *                yet" to "polled, sink not ready": drop still aborts the task
 *                while it connects, and the queued msg goes with it. Shape 2
 *                is untouched. Loses in both shapes.
 *   handshake    the seed's readiness handshake alone: ready is signalled
 *                after the sink is connected and new() awaits it, so no stream
 *                exists before its sink (shape 1 as such cannot happen); but
 *                drop still aborts the task, and a message written just before
 *                the drop is still queued when the abort lands: shape 2's
 *                loss, in both kinds of iteration. Loses sometimes.
 *   fixed        the seed's close(): the caller ends by dropping the sender
 *                and joining the task instead of aborting it, so the task
 *                drains every queued byte before it ends, and a sink error
 *                comes back from close(). Closes both shapes without any
 *                handshake: a variant with the handshake and close() behaves
 *                exactly like this one (measured), so the handshake is not
 *                part of this fix.
 *   fixed_flush  upstream's PR #6877: new() still returns at once and drop
 *                still aborts, but the caller awaits flush() before dropping.
 *                A flush is a request queued behind the data and answered only
 *                once every earlier byte was handed to the sink, so when drop
 *                aborts the task there is nothing left unwritten (closes both:
 *                the caller cannot drop before the task started, connected and
 *                wrote).
 *
 * The outcome is judged at the end of the iteration, once the runtime is shut
 * down and the reader has seen EOF on every sink connection: fewer bytes read
 * than the stream accepted is `lost`.
 *
 * The shape is chosen per iteration by the iteration seed: even -> shape 1,
 * odd -> shape 2 (tagged, so the report counts outcomes per shape). In natural and chaos modes shape 1 writes right after new(),
 * shape 2 first does --run-us of other work so the receiver is usually parked
 * on a connected sink by then. In every mode a no-op callback is queued on
 * worker 0 just before the spawn ("receiver.queued": other work ahead of the
 * new task), which is where forced mode holds the worker.
 *
 * forced mode makes the receiver the slow side, the same rule for every
 * variant: at each of its hold points ("receiver.queued", before the first
 * poll; "receiver.prepare_sink"; "receiver.parked") the receiver waits until
 * the caller is waiting on it (awaiting ready, the flush reply or the join)
 * or has let go of the stream (dropped or closed it). Shape 2 adds that the
 * caller writes only once the receiver is parked on a connected sink. buggy
 * and partial never wait after the write, so the receiver only moves once the
 * stream is gone; the fixes wait, and pass the very same holds. handshake
 * loses every shape-2 iteration there; in shape 1 its new() waits on the
 * receiver, which lets it get ahead, so some of those iterations get through.
 */
#include "asyncrace.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A variant's design: when the receiver says it is ready (if at all), and how
 * the caller ends with the stream. */
enum ready { NO_READY, READY_BEFORE_SINK, READY_AFTER_SINK };
enum ending { DROP, FLUSH_THEN_DROP, CLOSE };
struct design { enum ready ready; enum ending end; };

/* Where this case's threads race (the runtime's own points are in points.h). */
static const ar_point at_queued = AR_POINT("receiver.queued",
    "other work queued on the receiver's worker just ahead of the new task runs (arg: 0)");
static const ar_point at_started = AR_POINT("receiver.started",
    "the receiver task's first poll (arg: 0)");
static const ar_point at_prepare_sink = AR_POINT("receiver.prepare_sink",
    "the receiver is about to connect its sink (arg: 0)");
static const ar_point at_ready = AR_POINT("receiver.ready",
    "the receiver signals ready to new() (arg: the sink's status)");
static const ar_point at_sink_ready = AR_POINT("receiver.sink_ready",
    "the receiver's sink is connected (arg: 0)");
static const ar_point at_parked = AR_POINT("receiver.parked",
    "the receiver awaits the next message on a connected sink (arg: how often it parked)");
static const ar_point at_flush_reply = AR_POINT("receiver.flush_reply",
    "every earlier byte was written; the flush is answered (arg: the sink's status)");
static const ar_point at_before_write = AR_POINT("receiver.before_write",
    "the receiver took a message and writes it to the sink (arg: its length)");
static const ar_point at_written = AR_POINT("receiver.written",
    "the sink completed the message's write (arg: 0)");
static const ar_point at_await_ready = AR_POINT("stream.await_ready",
    "new() parks on the receiver's ready signal (arg: 0)");
static const ar_point at_write = AR_POINT("stream.write",
    "the caller is about to write the message (arg: its length)");
static const ar_point at_accepted = AR_POINT("stream.accepted",
    "the stream said ok: the message is queued (arg: its length)");
static const ar_point at_flush = AR_POINT("stream.flush",
    "the caller parks on flush() (arg: 0)");
static const ar_point at_close = AR_POINT("stream.close",
    "the caller parks in close(), joining the receiver (arg: 0)");
static const ar_point at_drop = AR_POINT("stream.drop",
    "the caller is about to drop the stream (arg: 0)");
static const ar_point at_dropped = AR_POINT("stream.dropped",
    "the stream is dropped: the receiver aborted, the sender gone (arg: 0)");

/* How far the receiver got: for the detail of a loss. */
enum { P_NOT_POLLED, P_STARTED, P_SINK_READY, P_WRITE_ISSUED, P_WRITTEN };
static const char *const progress_names[] = {
    "was dropped before its first poll",
    "had started, but its sink was not connected yet",
    "had a connected sink, but had not taken the message from the channel",
    "had issued the write, but it had not completed",
    "had written the message",
};

/* ---- the iteration's shared state ---- */

/* One accepted connection. The reader tells the sink's connection from
 * strays by its peer port: on a shared machine another program's client may
 * reach this ephemeral port (one it has just released) and hold it open. */
typedef struct reader_conn {
    struct reader_conn *next;     /* the list and the fields below: under sc->mon */
    struct scenario *sc;
    ar_tcp *tcp;                  /* reader's thread only; NULL once closed */
    int peer_port;                /* -1: unknown */
    bool ended;                   /* EOF or a read error */
    int err;
    size_t got;
    bool mismatch;
    size_t mismatch_at;
    unsigned mismatch_byte, mismatch_want;
} reader_conn;

#define MAX_SINK_CONNS 4

typedef struct scenario {
    const ar_runner *r;
    const struct design *design;
    int shape;                    /* 1 or 2 */
    ar_mode mode;
    uint64_t run_us;
    int worker;                   /* the receiver's */
    uint64_t seed;                /* the message's bytes */
    size_t len;

    size_t accepted;              /* bytes the stream said ok to: caller's thread */
    int receiver_result;          /* 0 or -errno: written before the task completes */
    _Atomic int progress;

    ar_monitor mon;               /* guards the fields below */
    bool receiver_dropped;
    int sink_ports[MAX_SINK_CONNS]; /* local ports of the sink's connections */
    int n_sink_conns;
    reader_conn *conns;

    /* The reader's loop, on its own thread. */
    ar_loop *reader_loop;
    ar_thread *reader_thread;
    ar_tcp *listener;
    uint16_t port;

    /* forced mode (see forced() below) */
    ar_gate operational;          /* the receiver is parked on a connected sink */
    ar_gate caller_yields;        /* opened each time the caller waits or lets go */
    _Atomic unsigned handoffs;    /* receiver's worker: what it gave the caller to wait on */
} scenario;

static uint8_t message_byte(uint64_t seed, size_t i)
{
    uint64_t x = seed + (uint64_t)(i / 8) * 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ull;
    return (uint8_t)((x ^ (x >> 32)) >> ((i % 8) * 8));
}


/* ---- the sink: a TCP connection owned by the receiver's loop ---- */

/* Shared by the receiver task and the loop callbacks (connect, writes), all on
 * the receiver's worker; freed when the last of them lets go. */
typedef struct sink {
    scenario *sc;
    int refs;
    ar_tcp *conn;
    bool connecting;
    bool task_gone;
    int writes_pending;
    int err;                      /* 0 or -errno, the first one */
    ar_waker *waker;
} sink;

static void sink_unref(sink *sk)
{
    if (--sk->refs == 0)
        free(sk);
}

static void sink_close(sink *sk)
{
    if (sk->conn) {
        ar_tcp *c = sk->conn;
        sk->conn = NULL;
        sk->sc->r->tcp_close(c, NULL, NULL);
    }
}

static void on_connect(void *arg, ar_tcp *conn, int err)
{
    sink *sk = arg;
    sk->connecting = false;
    if (conn) {
        scenario *sc = sk->sc;
        int port = sc->r->tcp_port(conn, false);
        ar_monitor_lock(&sc->mon);
        if (sc->n_sink_conns < MAX_SINK_CONNS)
            sc->sink_ports[sc->n_sink_conns++] = port;
        ar_monitor_unlock(&sc->mon);
        if (sk->task_gone)
            sk->sc->r->tcp_close(conn, NULL, NULL);
        else
            sk->conn = conn;
    } else if (!sk->err) {
        sk->err = err ? err : -ECONNREFUSED;
    }
    ar_waker_take_wake(&sk->waker);
    sink_unref(sk);
}

static void on_written(void *arg, int status)
{
    sink *sk = arg;
    sk->writes_pending--;
    if (status && !sk->err)
        sk->err = status;
    ar_waker_take_wake(&sk->waker);
    sink_unref(sk);
}

/* ---- the channel's items ---- */

typedef struct msg {
    bool flush;
    ar_oneshot_tx *reply;         /* flush: answered once every earlier byte is written */
    size_t len;
    unsigned char data[];
} msg;

static void msg_drop(void *p)
{
    msg *m = p;
    if (m->reply)
        ar_sender_drop(m->reply); /* the flush sees the task gone */
    free(m);
}

/* A status through a oneshot: 0 is sent as 1, since NULL is no item. */
static void *status_item(int status) { return (void *)(intptr_t)(status ? status : 1); }
static int item_status(void *item) { return (intptr_t)item == 1 ? 0 : (int)(intptr_t)item; }

/* ---- the receiver task ---- */

enum { R_START, R_CONNECTING, R_DRAIN, R_WRITING };

typedef struct {
    scenario *sc;
    int st;
    ar_receiver *rx;
    ar_oneshot_tx *ready;         /* partial, fixed: until signalled */
    sink *sk;
    long parks;
} receiver;

static void signal_ready(receiver *rv, int status)
{
    if (!rv->ready)
        return;
    ar_race_point(&at_ready, status);
    ar_oneshot_send(rv->ready, status_item(status));
    rv->ready = NULL;
}

/* let sink = prepare().await?; (ready) while let Some(m) = rx.recv().await {
 *     sink.write_all(&m).await?; }  sink.close() */
static ar_poll receiver_poll(void *p, ar_cx *cx)
{
    receiver *rv = p;
    scenario *sc = rv->sc;
    sink *sk = rv->sk;
    for (;;) {
        switch (rv->st) {
        case R_START:
            atomic_store(&sc->progress, P_STARTED);
            ar_race_point(&at_started, 0);
            if (sc->design->ready == READY_BEFORE_SINK)
                signal_ready(rv, 0);  /* too early: there is no sink yet */
            ar_race_point(&at_prepare_sink, 0);
            sk->connecting = true;
            sk->refs++;               /* the connect callback's */
            sc->r->tcp_connect(ar_rt_loop(cx->rt, cx->worker), sc->port, on_connect, sk);
            rv->st = R_CONNECTING;
            break;
        case R_CONNECTING:
            if (sk->connecting) {
                ar_waker_register(&sk->waker, cx);
                return AR_PENDING;
            }
            if (!sk->conn) {
                sc->receiver_result = sk->err;
                signal_ready(rv, sk->err);
                return AR_READY;
            }
            atomic_store(&sc->progress, P_SINK_READY);
            ar_race_point(&at_sink_ready, 0);
            if (sc->design->ready == READY_AFTER_SINK)
                signal_ready(rv, 0);  /* the sink exists: now the stream may too */
            rv->st = R_DRAIN;
            break;
        case R_DRAIN: {
            void *item;
            switch (ar_recv(rv->rx, cx, &item)) {
            case AR_RECV_PENDING:
                ar_race_point(&at_parked, rv->parks++);
                return AR_PENDING;
            case AR_RECV_CLOSED:      /* every sender gone: close() */
                sink_close(sk);
                sc->receiver_result = sk->err;
                return AR_READY;
            case AR_RECV_ITEM:
                break;
            }
            msg *m = item;
            if (m->flush) {
                /* Every earlier message was written before this one was taken. */
                ar_race_point(&at_flush_reply, sk->err);
                ar_oneshot_send(m->reply, status_item(sk->err));
                m->reply = NULL;
                msg_drop(m);
                break;
            }
            ar_race_point(&at_before_write, (long)m->len);
            atomic_store(&sc->progress, P_WRITE_ISSUED);
            int e = sc->r->tcp_write(sk->conn, m->data, m->len, on_written, sk);
            msg_drop(m);
            if (e) {
                sc->receiver_result = e;
                return AR_READY;
            }
            sk->refs++;
            sk->writes_pending++;
            rv->st = R_WRITING;
            break;
        }
        case R_WRITING:
            if (sk->writes_pending) {
                ar_waker_register(&sk->waker, cx);
                return AR_PENDING;
            }
            if (sk->err) {
                sc->receiver_result = sk->err;
                return AR_READY;
            }
            atomic_store(&sc->progress, P_WRITTEN);
            ar_race_point(&at_written, 0);
            rv->st = R_DRAIN;
            break;
        }
    }
}

/* Runs on the receiver's worker when the task completes or is aborted; at
 * shutdown only if the iteration already failed. */
static void receiver_drop(void *p)
{
    receiver *rv = p;
    scenario *sc = rv->sc;
    sink *sk = rv->sk;
    ar_receiver_drop(rv->rx);     /* drops the messages still queued */
    if (rv->ready)
        ar_sender_drop(rv->ready);
    sk->task_gone = true;
    if (sk->waker) {
        ar_waker_drop(sk->waker);
        sk->waker = NULL;
    }
    sink_close(sk);               /* fails a pending write with -ECANCELED */
    sink_unref(sk);
    free(rv);
    ar_monitor_lock(&sc->mon);
    sc->receiver_dropped = true;
    ar_monitor_notify(&sc->mon);
    ar_monitor_unlock(&sc->mon);
}

/* Other work queued on the receiver's worker ahead of the new task. */
static void receiver_queued(void *arg, bool cancelled)
{
    if (!cancelled)
        ar_race_point(&at_queued, 0);
}

/* ---- the write stream, as the caller sees it ---- */

typedef struct {
    ar_sender *tx;
    ar_join *task;                /* abort-on-drop, as in wasmtime */
    ar_oneshot_rx *ready;         /* partial, fixed: awaited by new() */
    ar_oneshot_rx *flushed;       /* fixed_flush: the pending flush */
} write_stream;

static void stream_new(write_stream *ws, scenario *sc, ar_rt *rt)
{
    receiver *rv = calloc(1, sizeof *rv);
    sink *sk = calloc(1, sizeof *sk);
    if (!rv || !sk) abort();
    sk->sc = sc;
    sk->refs = 1;                 /* the task's */
    rv->sc = sc;
    rv->sk = sk;
    ar_chan_new(rt, msg_drop, &ws->tx, &rv->rx);
    if (sc->design->ready != NO_READY)
        ar_oneshot_new(rt, NULL, &rv->ready, &ws->ready);
    sc->r->post(ar_rt_loop(rt, sc->worker), receiver_queued, NULL);
    ws->task = ar_spawn_join(rt, sc->worker, receiver_poll, receiver_drop, rv);
}

/* Accepted means queued: the stream says ok. */
static bool stream_write(write_stream *ws, scenario *sc)
{
    msg *m = malloc(sizeof *m + sc->len);
    if (!m) abort();
    m->flush = false;
    m->reply = NULL;
    m->len = sc->len;
    for (size_t i = 0; i < sc->len; i++)
        m->data[i] = message_byte(sc->seed, i);
    return ar_send(ws->tx, m);    /* false: the task is gone, m was not taken */
}

/* drop(stream): abort the task whether or not it has started, close the channel. */
static void stream_drop(write_stream *ws)
{
    if (ws->task) {
        ar_join_abort(ws->task);
        ar_join_drop(ws->task);
        ws->task = NULL;
    }
    if (ws->tx) {
        ar_sender_drop(ws->tx);
        ws->tx = NULL;
    }
    if (ws->ready) {
        ar_receiver_drop(ws->ready);
        ws->ready = NULL;
    }
    if (ws->flushed) {
        ar_receiver_drop(ws->flushed);
        ws->flushed = NULL;
    }
}

/* ---- the caller: new(), write(msg), then drop / flush + drop / close ---- */

enum { C_NEW, C_READY, C_WRITE, C_FLUSH, C_DROP, C_CLOSE, C_DONE };

typedef struct {
    scenario *sc;
    int st;
    bool waiting;                 /* the current await already returned pending once */
    write_stream ws;
} caller;

typedef enum { AWAIT_PENDING, AWAIT_OK, AWAIT_PANICKED } await_result;

/* One `reply.await.unwrap()` on a oneshot carrying a sink status: the race
 * point marks the first time it parks; a closed reply or a sink error is the
 * caller's panic. On success the receiver is dropped and *rx cleared. */
static await_result await_status(caller *c, ar_receiver **rx, ar_cx *cx, const ar_point *point,
                                 const char *call, const char *closed_why)
{
    void *item;
    switch (ar_recv(*rx, cx, &item)) {
    case AR_RECV_PENDING:
        if (!c->waiting)
            ar_race_point(point, 0);
        c->waiting = true;
        return AWAIT_PENDING;
    case AR_RECV_CLOSED:
        ar_fail(AR_PANIC, "caller: %s: %s", call, closed_why);
        return AWAIT_PANICKED;
    case AR_RECV_ITEM:
        break;
    }
    c->waiting = false;
    ar_receiver_drop(*rx);
    *rx = NULL;
    int status = item_status(item);
    if (status) {
        ar_fail(AR_PANIC, "caller: %s: sink error: %s", call, strerror(-status));
        return AWAIT_PANICKED;
    }
    return AWAIT_OK;
}

static ar_poll caller_poll(void *p, ar_cx *cx)
{
    caller *c = p;
    scenario *sc = c->sc;
    write_stream *ws = &c->ws;
    for (;;) {
        switch (c->st) {
        case C_NEW:
            stream_new(ws, sc, cx->rt);
            c->st = ws->ready ? C_READY : C_WRITE;
            break;
        case C_READY:             /* inside new().await */
            switch (await_status(c, &ws->ready, cx, &at_await_ready, "new().await.unwrap()",
                                 "the receiver task ended without signalling ready")) {
            case AWAIT_PENDING: return AR_PENDING;
            case AWAIT_PANICKED: return AR_READY;
            case AWAIT_OK: break;
            }
            c->st = C_WRITE;
            break;
        case C_WRITE:
            if (sc->shape == 2 && sc->mode != AR_FORCED)
                ar_sleep_us(sc->run_us);  /* other work: the receiver gets going */
            ar_race_point(&at_write, (long)sc->len);
            if (!stream_write(ws, sc)) {
                ar_fail(AR_PANIC, "caller: write().unwrap(): the stream refused the write: "
                        "its task is gone (a sink error)");
                return AR_READY;
            }
            sc->accepted += sc->len;
            ar_race_point(&at_accepted, (long)sc->len);
            c->st = sc->design->end == CLOSE ? C_CLOSE
                  : sc->design->end == FLUSH_THEN_DROP ? C_FLUSH : C_DROP;
            break;
        case C_FLUSH: {
            if (!c->waiting) {
                msg *m = malloc(sizeof *m);
                if (!m) abort();
                m->flush = true;
                m->len = 0;
                ar_oneshot_new(cx->rt, NULL, &m->reply, &ws->flushed);
                if (!ar_send(ws->tx, m)) {
                    msg_drop(m);
                    ar_fail(AR_PANIC, "caller: flush().await.unwrap(): the stream's task is gone");
                    return AR_READY;
                }
            }
            switch (await_status(c, &ws->flushed, cx, &at_flush, "flush().await.unwrap()",
                                 "the task dropped the flush")) {
            case AWAIT_PENDING: return AR_PENDING;
            case AWAIT_PANICKED: return AR_READY;
            case AWAIT_OK: break;
            }
            c->st = C_DROP;
            break;
        }
        case C_DROP:
            ar_race_point(&at_drop, 0);
            stream_drop(ws);
            ar_race_point(&at_dropped, 0);
            c->st = C_DONE;
            return AR_READY;
        case C_CLOSE:             /* close(): no more writes, then join the task */
            if (ws->tx) {
                ar_sender_drop(ws->tx);
                ws->tx = NULL;
            }
            if (!ar_join_poll(ws->task, cx)) {
                if (!c->waiting)
                    ar_race_point(&at_close, 0);
                c->waiting = true;
                return AR_PENDING;
            }
            c->waiting = false;
            bool cancelled = ar_join_was_cancelled(ws->task);
            ar_join_drop(ws->task);
            ws->task = NULL;
            if (cancelled)
                ar_fail(AR_PANIC, "caller: close().await.unwrap(): the task was cancelled");
            else if (sc->receiver_result)
                ar_fail(AR_PANIC, "caller: close().await.unwrap(): sink error: %s",
                        strerror(-sc->receiver_result));
            c->st = C_DONE;
            return AR_READY;
        default:
            return AR_READY;
        }
    }
}

static void caller_drop(void *p)
{
    caller *c = p;
    stream_drop(&c->ws);          /* a caller cut off by the deadline */
    free(c);
}

/* ---- the reader: a third loop, on its own thread ---- */

static void reader_conn_closed(scenario *sc, reader_conn *rc, int err)
{
    sc->r->tcp_close(rc->tcp, NULL, NULL);
    rc->tcp = NULL;
    ar_monitor_lock(&sc->mon);
    rc->ended = true;
    rc->err = err;
    ar_monitor_notify(&sc->mon);
    ar_monitor_unlock(&sc->mon);
}

static void reader_on_read(void *arg, const void *data, ssize_t n)
{
    reader_conn *rc = arg;
    scenario *sc = rc->sc;
    if (n <= 0) {
        reader_conn_closed(sc, rc, (int)n);
        return;
    }
    const unsigned char *b = data;
    ar_monitor_lock(&sc->mon);
    for (ssize_t i = 0; i < n && !rc->mismatch; i++) {
        size_t at = rc->got + (size_t)i;
        unsigned want = at < sc->len ? message_byte(sc->seed, at) : 0x100;
        if (b[i] != want) {
            rc->mismatch = true;
            rc->mismatch_at = at;
            rc->mismatch_byte = b[i];
            rc->mismatch_want = want;
        }
    }
    rc->got += (size_t)n;
    ar_monitor_unlock(&sc->mon);
}

static void reader_on_accept(void *arg, ar_tcp *conn, int err)
{
    scenario *sc = arg;
    if (!conn)
        return;                   /* a failed accept: the sink's side reports it */
    reader_conn *rc = calloc(1, sizeof *rc);
    if (!rc) abort();
    rc->sc = sc;
    rc->tcp = conn;
    /* The reader closes after the sink's EOF: a reset then ends the sink's
     * side, which closed first, without TIME_WAIT. */
    sc->r->tcp_reset_on_close(conn);
    rc->peer_port = sc->r->tcp_port(conn, true);
    ar_monitor_lock(&sc->mon);
    rc->next = sc->conns;
    sc->conns = rc;
    ar_monitor_unlock(&sc->mon);
    int e = sc->r->tcp_read_start(conn, reader_on_read, rc);
    if (e)
        reader_conn_closed(sc, rc, e);
}

static void reader_main(void *arg)
{
    scenario *sc = arg;
    sc->r->loop_run(sc->reader_loop);
}

static void reader_stop(void *arg, bool cancelled)
{
    scenario *sc = arg;
    if (cancelled)
        return;
    for (reader_conn *rc = sc->conns; rc; rc = rc->next)
        if (rc->tcp) {
            sc->r->tcp_close(rc->tcp, NULL, NULL);
            rc->tcp = NULL;
        }
    sc->r->tcp_close(sc->listener, NULL, NULL);
    sc->listener = NULL;
    sc->r->loop_stop(sc->reader_loop);
}

/* NULL, or what failed (errno says why); a failed attempt leaves nothing behind. */
static const char *reader_try_start(scenario *sc)
{
    errno = 0;
    if (!(sc->reader_loop = sc->r->loop_new()))
        return "loop_new";
    const char *failed = NULL;
    sc->listener = sc->r->tcp_listen(sc->reader_loop, 8, reader_on_accept, sc, &sc->port);
    if (!sc->listener)
        failed = "tcp_listen(127.0.0.1, port 0)";
    else if (!(sc->reader_thread = sc->r->thread_start(reader_main, sc)))
        failed = "thread_start";
    if (failed) {
        int e = errno;
        sc->r->loop_free(sc->reader_loop);  /* closes the listener */
        sc->reader_loop = NULL;
        sc->listener = NULL;
        errno = e;
    }
    return failed;
}

/* The reader is the test's fixture, not the code under test: on a shared
 * machine bind(0) can briefly find no free port (every ephemeral port held by
 * some socket, TIME_WAIT included), so retry for up to half the deadline. */
static const char *reader_start(scenario *sc)
{
    uint64_t now = ar_now_ns(), until = now + (ar_deadline_ns() - now) / 2;
    const char *failed;
    while ((failed = reader_try_start(sc)) && ar_now_ns() < until)
        ar_sleep_us(1000);
    return failed;
}

static void reader_finish(scenario *sc)
{
    if (sc->reader_thread) {
        sc->r->post(sc->reader_loop, reader_stop, sc);
        sc->r->thread_join(sc->reader_thread);
    }
    if (sc->reader_loop)
        sc->r->loop_free(sc->reader_loop);
}

static void reader_free_conns(scenario *sc)
{
    while (sc->conns) {
        reader_conn *rc = sc->conns;
        sc->conns = rc->next;
        free(rc);
    }
}

/* The reader's side of the sink's connection on that port, or NULL. */
static const reader_conn *sink_conn(const scenario *sc, int port)
{
    for (const reader_conn *rc = sc->conns; rc; rc = rc->next)
        if (port >= 0 && rc->peer_port == port)
            return rc;
    return NULL;
}

/* Every sink connection accepted and read to its end. */
static bool reader_done(const scenario *sc)
{
    for (int i = 0; i < sc->n_sink_conns; i++) {
        const reader_conn *rc = sink_conn(sc, sc->sink_ports[i]);
        if (!rc || !rc->ended)
            return false;
    }
    return true;
}

static int reader_ended(const scenario *sc)
{
    int n = 0;
    for (int i = 0; i < sc->n_sink_conns; i++) {
        const reader_conn *rc = sink_conn(sc, sc->sink_ports[i]);
        n += rc && rc->ended;
    }
    return n;
}

/* ---- one iteration ---- */

/* After the reader's thread was joined: only the sink's connections count. */
static void judge(scenario *sc)
{
    size_t got = 0;
    int read_error = 0;
    for (int i = 0; i < sc->n_sink_conns; i++) {
        const reader_conn *rc = sink_conn(sc, sc->sink_ports[i]);
        if (!rc)
            continue;
        if (rc->mismatch) {
            ar_fail(AR_PANIC, "reader: byte %zu is 0x%02x, the message has 0x%02x there",
                    rc->mismatch_at, rc->mismatch_byte, rc->mismatch_want);
            return;
        }
        got += rc->got;
        if (rc->err && !read_error)
            read_error = rc->err;
    }
    if (got > sc->accepted)
        ar_fail(AR_PANIC, "reader: got %zu bytes, the stream accepted only %zu",
                got, sc->accepted);
    else if (got < sc->accepted)
        ar_fail(AR_LOST, "stream accepted %zu bytes (write() said ok), the reader got %zu "
                "before %s; shape %d: the receiver task %s when the stream was dropped",
                sc->accepted, got, read_error ? strerror(-read_error) : "EOF",
                sc->shape, progress_names[atomic_load(&sc->progress)]);
}

/* ---- forced mode: the receiver is the slow side ---- */

/* caller_yields opens each time the caller waits on the receiver (ready, the
 * flush reply, the join) or lets go of the stream; operational opens once the
 * receiver is parked on a connected sink. At a hold point the receiver waits
 * for caller_yields to have opened 1 + handoffs times, where handoffs counts
 * what it has given the caller to wait for (ready, "parked" in shape 2, a
 * flush reply): so it moves only while the caller waits on it. */
static void receiver_hold(scenario *sc)
{
    ar_gate_wait_count(&sc->caller_yields, 1 + atomic_load(&sc->handoffs));
}

static void forced(void *ctx, const ar_point *p, long arg)
{
    scenario *sc = ctx;
    if (p == &at_queued || p == &at_prepare_sink) {
        receiver_hold(sc);
    } else if (p == &at_ready || p == &at_flush_reply) {
        atomic_fetch_add(&sc->handoffs, 1);
    } else if (p == &at_parked) {
        if (sc->shape == 2 && arg == 0) {
            atomic_fetch_add(&sc->handoffs, 1);
            ar_gate_open(&sc->operational);
        }
        receiver_hold(sc);
    } else if (p == &at_write) {
        if (sc->shape == 2) {
            ar_gate_open(&sc->caller_yields);
            ar_gate_wait(&sc->operational);
        }
    } else if (p == &at_await_ready || p == &at_flush || p == &at_close || p == &at_dropped) {
        ar_gate_open(&sc->caller_yields);
    }
}

static bool receiver_gone(const void *arg) { return ((const scenario *)arg)->receiver_dropped; }
static bool reader_all_read(const void *arg) { return reader_done(arg); }

static void iteration(const ar_iter *it, void *ctx)
{
    scenario *sc = ctx;
    sc->r = it->runner;
    sc->design = it->variant->design;
    sc->shape = it->seed & 1 ? 2 : 1;
    sc->mode = it->mode;
    sc->run_us = it->run_us;
    sc->worker = it->workers - 1;
    sc->seed = it->seed;
    sc->len = 64 + (size_t)((it->seed >> 1) % 4033);
    ar_iteration_tag(sc->shape == 1 ? "shape 1" : "shape 2");
    ar_monitor_init(&sc->mon);
    ar_gate_init(&sc->operational, "the receiver parked on a connected sink");
    ar_gate_init(&sc->caller_yields, "the caller waits on the receiver or let go of the stream");

    const char *failed = reader_start(sc);
    if (failed) {
        ar_fail(AR_PANIC, "reader: %s failed: %s", failed, errno ? strerror(errno) : "?");
    } else {
        ar_rt *rt = ar_rt_new(sc->r, it->workers, it->variant->wake, it->variant->shutdown);
        caller *c = calloc(1, sizeof *c);
        if (!c) abort();
        c->sc = sc;
        ar_block_on(rt, caller_poll, caller_drop, c);
        /* An aborted task is dropped on its worker's next turn: let it. */
        if (!ar_monitor_wait(&sc->mon, receiver_gone, sc))
            ar_fail(AR_HANG, "the receiver task was not dropped before the deadline");
        ar_rt_shutdown(rt);
        if (!ar_monitor_wait(&sc->mon, reader_all_read, sc)) {
            ar_monitor_lock(&sc->mon);
            int ended = reader_ended(sc), made = sc->n_sink_conns;
            ar_monitor_unlock(&sc->mon);
            ar_fail(AR_HANG, "reader: %d of the sink's %d connections read to EOF at the deadline",
                    ended, made);
        }
    }
    reader_finish(sc);
    judge(sc);
    reader_free_conns(sc);
    ar_monitor_destroy(&sc->mon);
}

/* ---- the variants ---- */

static const ar_variant variants[] = {
    { .name = "buggy",
      .what = "new() returns at once; drop aborts the task whether or not it has started",
      .workers = 1, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ NO_READY, DROP }, .expect = AR_REPRODUCES(AR_LOST) },
    { .name = "partial",
      .what = "new() awaits a ready signal sent before the sink is prepared; drop aborts",
      .workers = 1, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ READY_BEFORE_SINK, DROP },
      .expect = AR_REPRODUCES(AR_LOST) },
    { .name = "handshake",
      .what = "the seed's handshake alone: ready sent once the sink is connected, awaited by "
              "new(); drop still aborts",
      .workers = 1, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ READY_AFTER_SINK, DROP },
      .expect = { [AR_NATURAL] = AR_FAILS_SOMETIMES(AR_LOST),
                  [AR_CHAOS] = AR_FAILS_SOMETIMES(AR_LOST),
                  [AR_FORCED] = AR_FAILS_SOMETIMES(AR_LOST),
                  [AR_EXHAUSTIVE] = AR_FAILS_SOMETIMES(AR_LOST) } },
    { .name = "fixed",
      .what = "the seed's close(): drop the sender and join the task, which drains every "
              "queued byte; no abort",
      .workers = 1, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ NO_READY, CLOSE }, .twin = "buggy",
      .expect = AR_NEVER_IN_ANY_MODE },
    { .name = "fixed_flush",
      .what = "upstream PR #6877: the caller awaits flush() before the drop aborts the task",
      .workers = 1, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ NO_READY, FLUSH_THEN_DROP }, .twin = "buggy",
      .expect = AR_NEVER_IN_ANY_MODE },
};

static const ar_case early_writer_drop = {
    .name = "early_writer_drop",
    .upstream = "bytecodealliance/wasmtime #6811 / PR #6877; wasip3-prototyping #81 / PR #88",
    .summary = "an async write stream dropped before its spawned receiver task wrote the "
               "accepted bytes: silent loss",
    .variants = variants,
    .n_variants = AR_ARRAY_LEN(variants),
    .points = (const ar_point *const[]){ &at_queued, &at_started, &at_prepare_sink, &at_ready,
        &at_sink_ready, &at_parked, &at_flush_reply, &at_before_write, &at_written,
        &at_await_ready, &at_write, &at_accepted, &at_flush, &at_close, &at_drop, &at_dropped,
        NULL },
    .scenario_size = sizeof(scenario),
    .iteration = iteration,
    .forced = forced,
    .default_run_us = 200,
};

int main(int argc, char **argv) { return ar_case_main(&early_writer_drop, argc, argv); }
