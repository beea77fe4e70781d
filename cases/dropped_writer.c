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
 *            its own handler task, which owns the writer and finishes it on
 *            every exit path (executeThenClose, also when the handler is
 *            dropped at runtime shutdown); no stream to drop. Shutdown closes
 *            the listener, then cancels the serving task, which only awaited
 *            that close; the handlers are not cancelled with it.
 *
 * Handlers are spawned detached in every variant: in the task group they
 * would be cancelled with the serving task, but a started handler is inside
 * executeThenClose and finishes its writer anyway, so only the queue matters.
 * Each client sends its request (the runtime's "GET .../invocation/next") and
 * reads until it has the whole response, EOF or a reset (bytes that are not
 * the response end it too), then closes. The server drains its input and
 * answers when the writer is finished, whatever it read (the request is not
 * what races here); it closes on the client's EOF, so that TIME_WAIT lands on
 * the client's side and not on listener ports, which thousands of iterations
 * a minute would exhaust. Main waits for every connection to be closed.
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
 * clients have issued their connects) are drawn from the iteration seed.
 */
#include "asyncrace.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { STREAM_CANCEL, GRACEFUL_THEN_CANCEL, HANDLER_PER_CONN };  /* variant knob */
enum { SERVER_LOOP, POOL, CLIENTS };                             /* worker roles */
enum { WRITER_OPEN, WRITER_FINISHED, WRITER_DESTROYED };

#define MAX_CONNS 64
static const int bursts[] = { 1, 2, 64 };
static const char request[] = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n"
                             "host: 127.0.0.1\r\n\r\n";
static const char response[] = "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";

typedef struct server server;

/* main's wait for an answer from the server loop; kept in the server, since a
 * block_on that timed out leaves its task to be dropped at runtime shutdown */
typedef struct {
    ar_oneshot_rx *rx;
    uintptr_t value;
} await_oneshot;

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
    int design;
    ar_loop *loop;                /* the server loop's */
    int pool;                     /* the worker of the serving task and handlers */
    /* Server loop only. */
    ar_tcp *listener;
    ar_oneshot_tx *port_tx;
    ar_oneshot_tx *close_done_tx; /* the graceful close's answer to main */
    ar_oneshot_tx *all_closed_tx; /* to main: listener and every connection closed */
    ar_sender *accept_tx;         /* buggy, partial: the accept stream */
    ar_sender *closed_tx;         /* fixed: dropped when the listener closes */
    int accepted, closed;
    int listen_errno;             /* when tcp_listen failed */
    conn conns[MAX_CONNS];
    await_oneshot await_port, await_close, await_all_closed;   /* main's */
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
 * the whole response, "connection: close"), so TIME_WAIT lands on its side. */
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
    ar_race_point("conn.finish", c->id);
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
    ar_race_point("conn.handle", h->c->id);
    writer_finish(h->c);          /* write the response, then close */
    return AR_READY;
}

/* Every exit path finishes, also a drop before the first poll. */
static void handler_drop(void *p)
{
    handler_task *h = p;
    writer_finish(h->c);
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
    s->r->tcp_read_start(tcp, conn_on_read, c);
    if (s->design == HANDLER_PER_CONN)
        spawn_handler(s, c);      /* PR #636: straight to its own handler */
    else if (!ar_send(s->accept_tx, c))
        writer_destroy(c, "was accepted after the accept stream's reader was gone");
    ar_race_point("server.accepted", c->id);
}

/* Closing the listener ends the accept stream after what is queued (and
 * fixed's serving task, which awaits this). With loop_alive false the loop
 * is being freed and closes the handle itself. */
static void listener_close(server *s, bool loop_alive)
{
    if (s->listener && loop_alive) {
        s->r->tcp_close(s->listener, NULL, NULL);
        ar_race_point("server.closed", s->accepted);
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
            ar_race_point("server.stream_read", c->id);
            spawn_handler(t->s, c);
            break;
        }
        case AR_RECV_PENDING:
            ar_race_point("server.parked", 0);
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
    await_oneshot await_connecting;  /* main's */
};

static void client_conn_done(client_conn *cc, bool reset)
{
    client *cl = cc->cl;
    if (cc->tcp) {
        cl->r->tcp_close(cc->tcp, NULL, NULL);
        cc->tcp = NULL;
    }
    ar_race_point(reset ? "client.reset" : "client.eof", (long)cc->got);
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
        ar_race_point("client.garbage", (long)cc->got);  /* not our server's answer */
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
        ar_race_point("client.connect", cl->burst);
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
    if (!cl->waker || !ar_waker_will_wake(cl->waker, cx->waker)) {
        if (cl->waker) ar_waker_drop(cl->waker);
        cl->waker = ar_waker_clone(cx->waker);
    }
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

/* ---- main's awaits, through block_on ---- */

static ar_poll await_oneshot_poll(void *p, ar_cx *cx)
{
    await_oneshot *a = p;
    void *item;
    switch (ar_recv(a->rx, cx, &item)) {
    case AR_RECV_PENDING: return AR_PENDING;
    case AR_RECV_ITEM: a->value = (uintptr_t)item; return AR_READY;
    case AR_RECV_CLOSED: return AR_READY;
    }
    return AR_READY;
}

static void await_oneshot_drop(void *p)
{
    await_oneshot *a = p;
    ar_receiver_drop(a->rx);
}

/* Posts fn to the server loop and waits for its answer on a fresh oneshot. */
static uintptr_t call_on_server_loop(server *s, ar_oneshot_tx **slot, await_oneshot *a,
                                     ar_post_fn fn)
{
    ar_oneshot_new(s->rt, NULL, slot, &a->rx);
    s->r->post(s->loop, fn, s);
    ar_block_on(s->rt, await_oneshot_poll, await_oneshot_drop, a);
    return a->value;
}

static ar_poll await_join_poll(void *p, ar_cx *cx)
{
    return ar_join_poll(p, cx) ? AR_READY : AR_PENDING;
}

static void no_drop(void *p) { (void)p; }

/* ---- forced mode: the timeline above, with gates ---- */

enum { SERVING_PARKED, ACCEPTED, CANCELLED };

static void forced(const char *point, long arg)
{
    if (!strcmp(point, "server.parked")) {
        ar_gate_open(SERVING_PARKED);
        ar_gate_wait(CANCELLED);  /* holds the pool: nothing is read before the cancel */
    } else if (!strcmp(point, "client.connect")) {
        ar_gate_wait(SERVING_PARKED);
    } else if (!strcmp(point, "server.accepted")) {
        ar_gate_open(ACCEPTED);
    } else if (!strcmp(point, "server.cancel")) {
        ar_gate_open(CANCELLED);
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
    ar_oneshot_new(s->rt, NULL, &cl->connecting_tx, &cl->await_connecting.rx);
    ar_join *clients = ar_spawn_join(s->rt, role(it, CLIENTS), client_poll, client_drop, cl);

    ar_block_on(s->rt, await_oneshot_poll, await_oneshot_drop, &cl->await_connecting);
    if (it->mode == AR_FORCED)
        ar_gate_wait(ACCEPTED);
    else
        ar_sleep_us(shutdown_at_us);
    ar_race_point("server.shutdown", cl->burst);
    if (s->design != STREAM_CANCEL)  /* shut down gracefully first */
        call_on_server_loop(s, &s->close_done_tx, &s->await_close, graceful_close);
    ar_join_abort(serving);       /* the task group's cancelAll() */
    ar_race_point("server.cancel", 0);

    /* Every client reads to the end, EOF or reset, and the server closes
     * everything: bounded by the deadline. */
    ar_block_on(s->rt, await_join_poll, no_drop, serving);
    ar_block_on(s->rt, await_join_poll, no_drop, clients);
    ar_block_on(s->rt, await_oneshot_poll, await_oneshot_drop, &s->await_all_closed);
    ar_join_drop(serving);
    ar_join_drop(clients);
}

/* A runner may open process-wide descriptors on its first loop (libuv's
 * signal pipe): make that happen before the first count, so that every
 * iteration, the first of a replay too, is leak-checked. */
static void warm_up(const ar_runner *r)
{
    static bool warm;
    if (warm)
        return;
    warm = true;
    ar_loop *loop = r->loop_new();
    if (loop)
        r->loop_free(loop);
}

static void iteration(const ar_iter *it)
{
    const ar_variant *v = it->variant;
    /* Drawn first, on this thread, before any worker exists: replayable. */
    int burst = bursts[ar_rand() % AR_ARRAY_LEN(bursts)];
    uint64_t shutdown_at_us = ar_rand() % (it->run_us + 1);
    warm_up(it->runner);
    int fds_before = ar_count_fds();

    ar_rt *rt = ar_rt_new(it->runner, it->workers, v->wake, v->shutdown);
    server *s = calloc(1, sizeof *s);
    client *cl = calloc(1, sizeof *cl);
    serving_task *st = calloc(1, sizeof *st);
    if (!s || !cl || !st) abort();
    s->r = it->runner;
    s->rt = rt;
    s->design = v->knob;
    s->loop = ar_rt_loop(rt, role(it, SERVER_LOOP));
    s->pool = role(it, POOL);
    st->s = s;
    cl->burst = burst;
    if (s->design == HANDLER_PER_CONN)
        ar_chan_new(rt, NULL, &s->closed_tx, &st->closed);
    else
        ar_chan_new(rt, conn_dropped_from_stream, &s->accept_tx, &st->stream);
    ar_oneshot_new(rt, NULL, &s->all_closed_tx, &s->await_all_closed.rx);

    uint16_t port = (uint16_t)call_on_server_loop(s, &s->port_tx, &s->await_port, listen_on_loop);
    if (port) {
        serve(it, s, st, cl, port, shutdown_at_us);
    } else {
        ar_fail(AR_PANIC, "server: cannot listen on 127.0.0.1: %s", strerror(s->listen_errno));
        serving_drop(st);
        ar_receiver_drop(s->await_all_closed.rx);
    }

    ar_rt_shutdown(rt);           /* joins the workers: their writes are visible below */
    listener_close(s, false);     /* only if a cancelled post left it */
    for (int i = 0; i < s->accepted && !ar_failed(); i++) {
        if (atomic_load(&s->conns[i].writer) == WRITER_OPEN)
            ar_fail(AR_LEAK, "connection %d: its writer was never finished nor destroyed", i);
        else if (s->conns[i].tcp)
            ar_fail(AR_LEAK, "connection %d: never closed by the server", i);
    }
    free(s);
    free(cl);
    int fds_after = ar_count_fds();
    if (fds_after > fds_before)
        ar_fail(AR_LEAK, "%d descriptors before the iteration, %d after (burst %d)",
                fds_before, fds_after, burst);
}

static const ar_variant variants[] = {
    { "buggy", "accepted connections queued in an async accept stream; shutdown cancels "
      "the serving task, dropping what is still queued",
      3, AR_WAKE_DEFERRED, AR_SHUTDOWN_STOP_THEN_DROP, STREAM_CANCEL,
      { AR_EXPECT_SOMETIMES(AR_FATAL), AR_EXPECT_SOMETIMES(AR_FATAL), AR_EXPECT_ALWAYS(AR_FATAL) } },
    { "partial", "the accept stream, shut down gracefully: close the listener and wait, "
      "then cancel; connections already queued are still dropped",
      3, AR_WAKE_DEFERRED, AR_SHUTDOWN_STOP_THEN_DROP, GRACEFUL_THEN_CANCEL,
      { AR_EXPECT_SOMETIMES(AR_FATAL), AR_EXPECT_SOMETIMES(AR_FATAL), AR_EXPECT_ALWAYS(AR_FATAL) } },
    { "fixed", "PR #636: the accept callback hands each connection to its own handler task "
      "that always finishes its writer; no stream; close, then cancel",
      3, AR_WAKE_DEFERRED, AR_SHUTDOWN_STOP_THEN_DROP, HANDLER_PER_CONN,
      { AR_EXPECT_NEVER, AR_EXPECT_NEVER, AR_EXPECT_NEVER } },
};

static const ar_case dropped_writer = {
    .name = "dropped_writer",
    .upstream = "awslabs/swift-aws-lambda-runtime #635 / PR #636; apple/swift-nio #2637, #2813, #3481",
    .summary = "a connection queued in the async accept stream is dropped with the cancelled "
               "serving task: \"Deinited NIOAsyncWriter without calling finish()\"",
    .variants = variants,
    .n_variants = AR_ARRAY_LEN(variants),
    .iteration = iteration,
    .forced = forced,
    .default_run_us = 300,
};

int main(int argc, char **argv) { return ar_case_main(&dropped_writer, argc, argv); }
