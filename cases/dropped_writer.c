/* dropped_writer.c: an accepted connection's writer is destroyed unfinished
 * because the serving task was cancelled with the connection still queued in
 * its accept stream ("Deinited NIOAsyncWriter without calling finish()").
 *
 * Refs: awslabs/swift-aws-lambda-runtime #635 / PR #636; apple/swift-nio
 *       #2637, #2813, #3481. Intermittent upstream, "more likely on fast
 *       multi-core machines"; a related report trapped every time with 64
 *       connections then a cancel on an idle machine, and with two under load.
 *
 * A real TCP server on 127.0.0.1. Worker 0 is the server's event loop (the
 * listener, the accepts, every connection's I/O); worker 1 is the task pool
 * (the serving task, the per-connection handlers); worker 2 is the clients'
 * loop, which connects a burst of 1, 2 or 64 connections. Every accepted
 * connection carries a writer that must be finished exactly once (finish =
 * flush the response, then close); one destroyed unfinished is `fatal`. The
 * server is shut down at a seeded moment:
 *
 *   worker 0 (server loop)                  worker 1 (serving task)
 *   ------------------------------------    ------------------------------------
 *                                           for await conn in stream: empty,
 *                                           parked                server.parked
 *   accept: conn + writer made, queued in
 *   the stream, serving task woken
 *                           server.accepted
 *   main: [partial: close the listener, wait]; cancel the serving task (the
 *         task group's cancelAll)                             server.cancel
 *                                           next turn: cancelled, so never
 *                                           polled again; dropped, and the
 *                                           stream's receiver with it: the
 *                                           queued conn is destroyed with its
 *                                           writer unfinished: fatal
 *
 *   buggy    the async accept stream; shutdown = cancel the serving task
 *   partial  the maintainers' advice: close the listener gracefully (and wait
 *            for it), then cancel. No new accepts, but the connections already
 *            queued are still dropped unread: the window stays open (the seed's
 *            "why graceful shutdown doesn't help")
 *   fixed    PR #636: the accept callback hands each connection straight to
 *            its own detached handler task, which owns the writer and runs
 *            executeThenClose; no stream to drop. Shutdown cancels the
 *            serving task, as buggy's does: it only awaited the listener's
 *            close, and the handlers are not cancelled with it. The only
 *            difference from buggy is the hand-off (closing the listener first
 *            as well, like partial, changes nothing: measured). (A handler
 *            dropped before it ran would drop its writer unfinished: fatal,
 *            like the stream's. Main waits for every client's answer before
 *            the runtime goes, so none is: finishing on that path would be a
 *            line no iteration reaches, not part of the fix.)
 *
 * Handlers are spawned detached in every variant: in the task group they
 * would be cancelled with the serving task, but a started handler is inside
 * executeThenClose and finishes its writer anyway, so only the queue matters.
 * Each client sends its request (the runtime's "GET .../invocation/next") and
 * reads until it has the whole response, EOF or a reset (bytes that are not
 * the response end it too), then closes. The server drains its input and
 * answers when the writer is finished, whatever it read (the request is not
 * what races here); it closes on the client's EOF, with a reset
 * (tcp_reset_on_close): the client's side, which closed first, is waiting
 * for that FIN and ends without TIME_WAIT, so up to 64 connections an
 * iteration leave nothing behind. Main waits for every connection to close.
 *
 * forced mode imposes the timeline above: the serving task parks on the
 * stream (fixed: on the listener's close) and holds worker 1 there until the
 * cancel has landed; the clients connect only once it is parked; main shuts
 * the server down once one connection has been accepted (queued in the stream,
 * or handed to its handler). buggy and partial then drop it unread; fixed's
 * handler runs when worker 1 is released after the cancel, the moment buggy's
 * queued connection is dropped.
 *
 * The burst (1, 2 or 64) and the shutdown moment (0..--run-us us after the
 * clients have issued their connects) are drawn from the iteration seed; in
 * exhaustive mode (sim) the shutdown comes at once, on the burst, and every
 * schedule within the bound is tried.
 */
#include "asyncrace.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A variant's design: how the server hands accepted connections on and shuts down. */
enum handoff { ACCEPT_STREAM, HANDLER_PER_CONN };   /* where an accepted connection goes */
enum server_shutdown { CANCEL, CLOSE_THEN_CANCEL };  /* how the server is stopped */
struct design { enum handoff handoff; enum server_shutdown shutdown; };

enum { SERVER_LOOP, POOL, CLIENTS };                             /* worker roles */
enum { WRITER_OPEN, WRITER_FINISHED, WRITER_DESTROYED };

#define MAX_CONNS 64
static const int bursts[] = { 1, 2, 64 };
static const char request[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
                             "host: 127.0.0.1\r\n\r\n";
static const char response[] = "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";

/* Where this case's threads race (the runtime's own points are in points.h). */
static const ar_point at_server_parked = AR_POINT("server.parked",
    "the serving task awaits the next connection (fixed: the listener's close) (arg: 0)");
static const ar_point at_accepted = AR_POINT("server.accepted",
    "a connection was accepted and queued in the stream (fixed: handed to its handler) "
    "(arg: its id)");
static const ar_point at_stream_read = AR_POINT("server.stream_read",
    "the serving task took a connection from the stream and spawns its handler (arg: its id)");
static const ar_point at_server_closed = AR_POINT("server.closed",
    "the listener was closed (arg: connections accepted so far)");
static const ar_point at_shutdown = AR_POINT("server.shutdown",
    "main starts the server's shutdown (arg: the burst)");
static const ar_point at_cancel = AR_POINT("server.cancel",
    "main cancelled the serving task, the task group's cancelAll() (arg: 0)");
static const ar_point at_handle = AR_POINT("conn.handle",
    "a connection's handler runs: executeThenClose (arg: its id)");
static const ar_point at_finish = AR_POINT("conn.finish",
    "a connection's writer is finished: its response is posted (arg: its id)");
static const ar_point at_client_connect = AR_POINT("client.connect",
    "the clients are about to issue the burst's connects (arg: the burst)");
static const ar_point at_client_eof = AR_POINT("client.eof",
    "a client read the whole response, or EOF, and closes (arg: bytes read)");
static const ar_point at_client_reset = AR_POINT("client.reset",
    "a client's connect or read failed, or the connection was reset (arg: bytes read)");
static const ar_point at_client_garbage = AR_POINT("client.garbage",
    "a client read bytes that are not our server's response (arg: bytes read before)");

typedef struct server server;

/* An accepted connection and its writer (the NIOAsyncWriter analogue). */
typedef struct {
    server *s;
    int id;
    ar_tcp *tcp;                  /* server loop only; NULL once closed */
    bool flushed, peer_done;      /* server loop only */
    _Atomic int writer;
} conn;

struct server {
    const ar_runner *r;
    ar_rt *rt;
    struct design design;
    ar_loop *loop;                /* the server loop's */
    int pool;                     /* the worker of the serving task and handlers */
    /* Server loop only. */
    ar_tcp *listener;
    ar_oneshot_tx *port_tx;
    ar_oneshot_tx *close_done_tx; /* the graceful close's answer to main */
    ar_oneshot_tx *all_closed_tx; /* to main: listener and every connection closed */
    ar_oneshot_rx *all_closed_rx; /* main's */
    ar_sender *accept_tx;         /* buggy, partial: the accept stream */
    ar_sender *closed_tx;         /* fixed: dropped when the listener closes */
    int accepted, closed;
    int listen_errno;             /* when tcp_listen failed */
    conn conns[MAX_CONNS];
    ar_gate serving_parked, accepted_one, cancelled;   /* forced mode */
};

/* ---- the writer: finish exactly once, or it is fatal ---- */

/* Server loop: tells main once the listener and every connection are closed. */
static void server_check_done(server *s)
{
    if (!s->listener && s->closed == s->accepted && s->all_closed_tx) {
        ar_oneshot_send(s->all_closed_tx, (void *)(uintptr_t)1);
        s->all_closed_tx = NULL;
    }
}

static void conn_close(conn *c)  /* server loop */
{
    c->s->r->tcp_close(c->tcp, NULL, NULL);
    c->tcp = NULL;
    c->s->closed++;
    server_check_done(c->s);
}

/* The response is out: close once the client has closed its side (it has
 * the whole response, "connection: close"). */
static void on_flushed(void *arg, int status)
{
    conn *c = arg;
    if (status == -ECANCELED)
        c->tcp = NULL;            /* loop_free is closing it (we never close mid-write) */
    else if (status < 0 || c->peer_done)
        conn_close(c);
    else
        c->flushed = true;        /* close on the client's EOF */
}

/* The channel reads on its own (NIO's auto-read), draining the request, so a
 * close is a FIN and not a reset for unread input. */
static void conn_on_read(void *arg, const void *data, ssize_t n)
{
    conn *c = arg;
    if (n > 0)
        return;
    c->peer_done = true;          /* EOF or reset: reading has stopped */
    if (c->flushed)
        conn_close(c);
}

static void flush_and_close(void *arg, bool cancelled)
{
    conn *c = arg;
    if (cancelled)
        return;                   /* the loop is being freed: it closes the handle */
    if (c->s->r->tcp_write(c->tcp, response, sizeof response - 1, on_flushed, c) != 0)
        conn_close(c);
}

/* finish(): any thread; the I/O happens on the connection's loop. */
static void writer_finish(conn *c)
{
    int open = WRITER_OPEN;
    if (!atomic_compare_exchange_strong(&c->writer, &open, WRITER_FINISHED))
        return;
    ar_race_point(&at_finish, c->id);
    c->s->r->post(c->s->loop, flush_and_close, c);
}

static void close_unfinished(void *arg, bool cancelled)
{
    if (!cancelled)
        conn_close(arg);
}

/* The writer's deinit without finish(): the trap. The descriptor is still
 * closed, so the fatal is the outcome and not also a leak. */
static void writer_destroy(conn *c, const char *why)
{
    int open = WRITER_OPEN;
    if (!atomic_compare_exchange_strong(&c->writer, &open, WRITER_DESTROYED))
        return;
    ar_fail(AR_FATAL, "Deinited NIOAsyncWriter without calling finish(): connection %d %s",
            c->id, why);
    c->s->r->post(c->s->loop, close_unfinished, c);
}

/* The accept stream's item_drop: a connection still queued when the receiver goes. */
static void conn_dropped_from_stream(void *item)
{
    writer_destroy(item, "was accepted and queued in the accept stream, then dropped unread "
                   "with the cancelled serving task");
}

/* ---- the handler: executeThenClose ---- */

typedef struct {
    conn *c;
} handler_task;

static ar_poll handler_poll(void *p, ar_cx *cx)
{
    handler_task *h = p;
    ar_race_point(&at_handle, h->c->id);
    writer_finish(h->c);          /* write the response, then close */
    return AR_READY;
}

/* Dropped: after its poll the writer is finished; before it, the writer goes
 * with the handler, unfinished. */
static void handler_drop(void *p)
{
    handler_task *h = p;
    writer_destroy(h->c, "was handed to its handler task, which was dropped before it ran");
    free(h);
}

static void spawn_handler(server *s, conn *c)
{
    handler_task *h = malloc(sizeof *h);
    if (!h) abort();
    h->c = c;
    ar_spawn(s->rt, s->pool, handler_poll, handler_drop, h);
}

/* ---- the listener, on the server loop ---- */

static void on_accept(void *arg, ar_tcp *tcp, int err)
{
    server *s = arg;
    if (err < 0)
        return;
    if (!s->listener || s->accepted == MAX_CONNS) {
        s->r->tcp_close(tcp, NULL, NULL);  /* a stray connection: not ours */
        return;
    }
    conn *c = &s->conns[s->accepted];
    c->s = s;
    c->id = s->accepted++;
    c->tcp = tcp;
    atomic_store(&c->writer, WRITER_OPEN);
    s->r->tcp_reset_on_close(tcp);
    s->r->tcp_read_start(tcp, conn_on_read, c);
    if (s->design.handoff == HANDLER_PER_CONN)
        spawn_handler(s, c);      /* PR #636: straight to its own handler */
    else if (!ar_send(s->accept_tx, c))
        writer_destroy(c, "was accepted after the accept stream's reader was gone");
    ar_race_point(&at_accepted, c->id);
}

/* Closing the listener ends the accept stream after what is queued (and
 * fixed's serving task, which awaits this). With loop_alive false the loop
 * is being freed and closes the handle itself. */
static void listener_close(server *s, bool loop_alive)
{
    if (s->listener && loop_alive) {
        s->r->tcp_close(s->listener, NULL, NULL);
        ar_race_point(&at_server_closed, s->accepted);
    }
    s->listener = NULL;
    if (s->accept_tx) {
        ar_sender_drop(s->accept_tx);
        s->accept_tx = NULL;
    }
    if (s->closed_tx) {
        ar_sender_drop(s->closed_tx);
        s->closed_tx = NULL;
    }
    if (loop_alive)
        server_check_done(s);
    else if (s->all_closed_tx) {
        ar_sender_drop(s->all_closed_tx);
        s->all_closed_tx = NULL;
    }
}

static void listen_on_loop(void *arg, bool cancelled)
{
    server *s = arg;
    uint16_t port = 0;
    /* With the machine short of ports (TIME_WAITs of other runs), an
     * ephemeral bind can fail with EADDRINUSE: another try will do. */
    for (int tries = 0; !cancelled && !s->listener && tries < 8; tries++) {
        s->listener = s->r->tcp_listen(s->loop, 128, on_accept, s, &port);
        if (!s->listener && errno != EADDRINUSE)
            break;
    }
    if (!s->listener) {
        s->listen_errno = cancelled ? ECANCELED : errno;
        port = 0;
    }
    ar_oneshot_send(s->port_tx, (void *)(uintptr_t)port);
    s->port_tx = NULL;
}

static void graceful_close(void *arg, bool cancelled)
{
    server *s = arg;
    listener_close(s, !cancelled);
    ar_oneshot_send(s->close_done_tx, (void *)(uintptr_t)1);
    s->close_done_tx = NULL;
}

static void close_on_exit(void *arg, bool cancelled)
{
    listener_close(arg, !cancelled);
}

/* ---- the serving task, on the pool ---- */

typedef struct {
    server *s;
    ar_receiver *stream;          /* buggy, partial: the accept stream */
    ar_receiver *closed;          /* fixed: ends when the listener closes */
} serving_task;

/* buggy, partial: for try await conn in stream { group.addTask { handle(conn) } }
 * fixed:          try await serverChannel.closeFuture */
static ar_poll serving_poll(void *p, ar_cx *cx)
{
    serving_task *t = p;
    void *item;
    for (;;) {
        switch (ar_recv(t->stream ? t->stream : t->closed, cx, &item)) {
        case AR_RECV_ITEM: {
            conn *c = item;
            ar_race_point(&at_stream_read, c->id);
            spawn_handler(t->s, c);
            break;
        }
        case AR_RECV_PENDING:
            ar_race_point(&at_server_parked, 0);
            return AR_PENDING;
        case AR_RECV_CLOSED:
            return AR_READY;
        }
    }
}

/* Completed or cancelled: the server channel's executeThenClose closes the
 * listener on the way out, and the stream's receiver goes with the task. */
static void serving_drop(void *p)
{
    serving_task *t = p;
    t->s->r->post(t->s->loop, close_on_exit, t->s);
    if (t->stream)
        ar_receiver_drop(t->stream);  /* drops what is still queued */
    if (t->closed)
        ar_receiver_drop(t->closed);
    free(t);
}

/* ---- the clients, on their own loop ---- */

typedef struct client client;
typedef struct {
    client *cl;
    ar_tcp *tcp;
    size_t got;
} client_conn;

struct client {
    const ar_runner *r;
    ar_loop *loop;
    uint16_t port;
    int burst, done;
    bool started;
    ar_oneshot_tx *connecting_tx; /* tells main every connect is issued */
    ar_waker *waker;
    client_conn conns[MAX_CONNS];
};

static void client_conn_done(client_conn *cc, bool reset)
{
    client *cl = cc->cl;
    if (cc->tcp) {
        cl->r->tcp_close(cc->tcp, NULL, NULL);
        cc->tcp = NULL;
    }
    ar_race_point(reset ? &at_client_reset : &at_client_eof, (long)cc->got);
    if (++cl->done == cl->burst && cl->waker)
        ar_wake_by_ref(cl->waker);
}

static void client_on_read(void *arg, const void *data, ssize_t n)
{
    client_conn *cc = arg;
    if (n <= 0) {
        client_conn_done(cc, n < 0);  /* EOF, or reset */
    } else if (cc->got + (size_t)n > sizeof response - 1 ||
               memcmp(data, response + cc->got, (size_t)n) != 0) {
        ar_race_point(&at_client_garbage, (long)cc->got);  /* not our server's answer */
        client_conn_done(cc, true);
    } else if ((cc->got += (size_t)n) == sizeof response - 1) {
        client_conn_done(cc, false);  /* the whole response: close first */
    }
}

static void client_on_written(void *arg, int status) {}  /* a failure shows as a reset */

static void client_on_connect(void *arg, ar_tcp *tcp, int err)
{
    client_conn *cc = arg;
    if (err < 0) {
        client_conn_done(cc, true);   /* refused: the listener was already closed */
        return;
    }
    cc->tcp = tcp;
    /* Send the request: a connection the kernel dropped as the listener
     * closed (handshake done on this side only) answers it with a reset,
     * where a silent client would wait forever. */
    if (cc->cl->r->tcp_read_start(tcp, client_on_read, cc) != 0 ||
        cc->cl->r->tcp_write(tcp, request, sizeof request - 1, client_on_written, cc) != 0)
        client_conn_done(cc, true);
}

static ar_poll client_poll(void *p, ar_cx *cx)
{
    client *cl = p;
    if (!cl->started) {
        cl->started = true;
        ar_race_point(&at_client_connect, cl->burst);
        for (int i = 0; i < cl->burst; i++) {
            cl->conns[i].cl = cl;
            cl->r->tcp_connect(cl->loop, cl->port, client_on_connect, &cl->conns[i]);
        }
        /* Every SYN is out to a live listener: the shutdown clock may start.
         * (A connect issued after the listener closed could pick the freed
         * port as its own source port and connect to itself.) */
        ar_oneshot_send(cl->connecting_tx, (void *)(uintptr_t)1);
        cl->connecting_tx = NULL;
    }
    if (cl->done == cl->burst)
        return AR_READY;
    ar_waker_register(&cl->waker, cx);
    return AR_PENDING;
}

static void client_drop(void *p)
{
    client *cl = p;               /* owned by the iteration: its callbacks may outlive the task */
    if (cl->connecting_tx) {
        ar_sender_drop(cl->connecting_tx);
        cl->connecting_tx = NULL;
    }
    if (cl->waker) {
        ar_waker_drop(cl->waker);
        cl->waker = NULL;
    }
}

/* ---- main's waits ---- */

/* Posts fn to the server loop and waits for its answer on a fresh oneshot. */
static uintptr_t call_on_server_loop(server *s, ar_oneshot_tx **slot, ar_post_fn fn)
{
    ar_oneshot_rx *rx;
    ar_oneshot_new(s->rt, NULL, slot, &rx);
    s->r->post(s->loop, fn, s);
    void *answer = NULL;
    ar_block_on_recv(s->rt, rx, &answer);
    return (uintptr_t)answer;
}

/* ---- forced mode: the timeline above, with gates ---- */

static void forced(void *ctx, const ar_point *p, long arg)
{
    server *s = ctx;
    if (p == &at_server_parked) {
        ar_gate_open(&s->serving_parked);
        ar_gate_wait(&s->cancelled);  /* holds the pool: nothing is read before the cancel */
    } else if (p == &at_client_connect) {
        ar_gate_wait(&s->serving_parked);
    } else if (p == &at_accepted) {
        ar_gate_open(&s->accepted_one);
    } else if (p == &at_cancel) {
        ar_gate_open(&s->cancelled);
    }
}

/* ---- one iteration: serve a burst, shut the server down at a seeded moment ---- */

static int role(const ar_iter *it, int r) { return r < it->workers ? r : it->workers - 1; }

/* The server is listening: serve a burst, then shut down at the seeded moment. */
static void serve(const ar_iter *it, server *s, serving_task *st, client *cl,
                  uint16_t port, uint64_t shutdown_at_us)
{
    ar_join *serving = ar_spawn_join(s->rt, s->pool, serving_poll, serving_drop, st);
    cl->r = it->runner;
    cl->loop = ar_rt_loop(s->rt, role(it, CLIENTS));
    cl->port = port;
    ar_oneshot_rx *connecting;
    ar_oneshot_new(s->rt, NULL, &cl->connecting_tx, &connecting);
    ar_join *clients = ar_spawn_join(s->rt, role(it, CLIENTS), client_poll, client_drop, cl);

    void *ignored;
    ar_block_on_recv(s->rt, connecting, &ignored);
    if (it->mode == AR_FORCED)
        ar_gate_wait(&s->accepted_one);
    else
        ar_sleep_us(shutdown_at_us);
    ar_race_point(&at_shutdown, cl->burst);
    if (s->design.shutdown == CLOSE_THEN_CANCEL)  /* shut down gracefully first */
        call_on_server_loop(s, &s->close_done_tx, graceful_close);
    ar_join_abort(serving);       /* the task group's cancelAll() */
    ar_race_point(&at_cancel, 0);

    /* Every client reads to the end, EOF or reset, and the server closes
     * everything: bounded by the deadline. */
    ar_block_on_join(s->rt, serving);
    ar_block_on_join(s->rt, clients);
    ar_block_on_recv(s->rt, s->all_closed_rx, &ignored);
    ar_join_drop(serving);
    ar_join_drop(clients);
}

static void iteration(const ar_iter *it, void *ctx)
{
    const ar_variant *v = it->variant;
    const struct design *d = v->design;
    server *s = ctx;
    /* Drawn first, on this thread, before any worker exists: replayable. */
    int burst = bursts[ar_rand() % AR_ARRAY_LEN(bursts)];
    uint64_t shutdown_at_us = ar_rand() % (it->run_us + 1);
    if (it->mode == AR_EXHAUSTIVE)
        shutdown_at_us = 0;       /* the timeline: the shutdown lands on the burst */
    char tag[16];
    snprintf(tag, sizeof tag, "burst %d", burst);
    ar_iteration_tag(tag);

    ar_rt *rt = ar_rt_new(it->runner, it->workers, v->wake, v->shutdown);
    client *cl = calloc(1, sizeof *cl);
    serving_task *st = calloc(1, sizeof *st);
    if (!cl || !st) abort();
    s->r = it->runner;
    s->rt = rt;
    s->design = *d;
    s->loop = ar_rt_loop(rt, role(it, SERVER_LOOP));
    s->pool = role(it, POOL);
    ar_gate_init(&s->serving_parked, "serving task parked");
    ar_gate_init(&s->accepted_one, "a connection accepted");
    ar_gate_init(&s->cancelled, "serving task cancelled");
    st->s = s;
    cl->burst = burst;
    if (s->design.handoff == HANDLER_PER_CONN)
        ar_chan_new(rt, NULL, &s->closed_tx, &st->closed);
    else
        ar_chan_new(rt, conn_dropped_from_stream, &s->accept_tx, &st->stream);
    ar_oneshot_new(rt, NULL, &s->all_closed_tx, &s->all_closed_rx);

    uint16_t port = (uint16_t)call_on_server_loop(s, &s->port_tx, listen_on_loop);
    if (port) {
        serve(it, s, st, cl, port, shutdown_at_us);
    } else {
        ar_fail(AR_PANIC, "server: cannot listen on 127.0.0.1: %s", strerror(s->listen_errno));
        serving_drop(st);
        ar_receiver_drop(s->all_closed_rx);
    }

    ar_rt_shutdown(rt);           /* joins the workers: their writes are visible below */
    listener_close(s, false);     /* only if a cancelled post left it */
    for (int i = 0; i < s->accepted && !ar_failed(); i++) {
        if (atomic_load(&s->conns[i].writer) == WRITER_OPEN)
            ar_fail(AR_LEAK, "connection %d: its writer was never finished nor destroyed", i);
        else if (s->conns[i].tcp)
            ar_fail(AR_LEAK, "connection %d: never closed by the server", i);
    }
    free(cl);
}

/* ---- the variants ---- */

static const ar_variant variants[] = {
    { .name = "buggy",
      .what = "accepted connections queued in an async accept stream; shutdown cancels the "
              "serving task, dropping what is still queued",
      .workers = 3, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ ACCEPT_STREAM, CANCEL }, .expect = AR_REPRODUCES(AR_FATAL),
      /* The real libuv under the scheduler runs about 900 schedules/s here, and the
       * search reaches the bug deep in the first program. */
      .rarely = (const ar_rarely[]){
          { "libuv_ctl", AR_EXHAUSTIVE, "the delay-bound search finds it at schedule 17,573 "
            "(24 s); quick's search budget (3 s) ends near 2,700" },
          { "libevent_ctl", AR_EXHAUSTIVE, "the delay-bound search did not reach it in 60,000 "
            "schedules (194 s); natural and chaos show it" },
          { "epoll_ctl", AR_EXHAUSTIVE, "the delay-bound search finds it at schedule 23,716 "
            "(63 s, under load); quick's search budget (3 s) ends near 1,100" },
          { "libev_ctl", AR_EXHAUSTIVE, "the delay-bound search finds it at schedule 17,875 "
            "(72 s, under load); quick's search budget (3 s) ends near 1,400" },
          { NULL } } },
    { .name = "partial",
      .what = "the accept stream, shut down gracefully: close the listener and wait, then "
              "cancel; connections already queued are still dropped",
      .workers = 3, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ ACCEPT_STREAM, CLOSE_THEN_CANCEL }, .expect = AR_REPRODUCES(AR_FATAL),
      .rarely = (const ar_rarely[]){
          { "libuv_ctl", AR_EXHAUSTIVE, "the delay-bound search finds it at schedule 23,904 "
            "(24 s); quick's search budget (3 s) ends near 2,700" },
          { "libevent_ctl", AR_EXHAUSTIVE, "the delay-bound search did not reach it in 60,000 "
            "schedules (145 s); natural and chaos show it" },
          { "epoll_ctl", AR_EXHAUSTIVE, "the delay-bound search finds it at schedule 30,610 "
            "(118 s, under load); quick's search budget (3 s) ends near 1,300" },
          { "libev_ctl", AR_EXHAUSTIVE, "the delay-bound search finds it at schedule 23,185 "
            "(102 s, under load); quick's search budget (3 s) ends near 1,550" },
          { NULL } } },
    { .name = "fixed",
      .what = "PR #636: the accept callback hands each connection to its own detached "
              "handler task (executeThenClose); no stream; shutdown cancels the serving task",
      .workers = 3, .wake = AR_WAKE_DEFERRED, .shutdown = AR_SHUTDOWN_STOP_THEN_DROP,
      .design = &(const struct design){ HANDLER_PER_CONN, CANCEL }, .twin = "buggy",
      .expect = AR_NEVER_IN_ANY_MODE },
};

static const ar_case dropped_writer = {
    .name = "dropped_writer",
    .upstream = "awslabs/swift-aws-lambda-runtime #635 / PR #636; apple/swift-nio #2637, #2813, #3481",
    .summary = "a connection queued in the async accept stream is dropped with the cancelled "
               "serving task: \"Deinited NIOAsyncWriter without calling finish()\"",
    .variants = variants,
    .n_variants = AR_ARRAY_LEN(variants),
    .points = (const ar_point *const[]){ &at_server_parked, &at_accepted, &at_stream_read,
        &at_server_closed, &at_shutdown, &at_cancel, &at_handle, &at_finish,
        &at_client_connect, &at_client_eof, &at_client_reset, &at_client_garbage, NULL },
    .scenario_size = sizeof(server),
    .iteration = iteration,
    .forced = forced,
    .default_run_us = 300,
};

int main(int argc, char **argv) { return ar_case_main(&dropped_writer, argc, argv); }
