/* tcp.c: TCP on loopback: a 1 MiB echo on one loop and on two, a refused
 * connect, closing with writes queued, and reads that wait for read_start. */
#include "conformance.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- 1 MiB echo over loopback, on one loop or two ---- */

#define ECHO_BYTES ((size_t)1 << 20)
static const size_t echo_chunks[] = { 1, 7, 1000, 4096, 65549, 3, 333, 16384, 100000, 2, 8191 };
static struct {
    loop_thread server_lt, client_lt;
    loop_thread *client_thread; /* &server_lt when both ends share a loop */
    ar_tcp *listener, *server, *client;
    size_t received, echoed;
    long client_writes, client_written, server_writes, server_written;
    uint8_t *source;
    latch closed;
} echo;

static uint8_t pattern_at(size_t i) { return (uint8_t)((i * 2654435761u) >> 11 ^ i); }

static void echo_closed(void *arg) { latch_add(&echo.closed); }

static void echo_server_wrote(void *arg, int status)
{
    EXPECT_EQ(status, 0);
    EXPECT_EQ((intptr_t)arg, echo.server_written);
    echo.server_written++;
}

static void echo_server_read(void *arg, const void *data, ssize_t n)
{
    EXPECT_TRUE(on_thread(&echo.server_lt));
    if (n > 0) {
        echo.echoed += (size_t)n;
        void *index = (void *)(intptr_t)echo.server_writes++;
        EXPECT_EQ(R->tcp_write(echo.server, data, (size_t)n, echo_server_wrote, index), 0);
        return;
    }
    EXPECT_EQ(n, 0);            /* EOF: the client closed after reading everything */
    R->tcp_close(echo.server, echo_closed, NULL);
}

static void echo_accepted(void *arg, ar_tcp *conn, int err)
{
    EXPECT_TRUE(on_thread(&echo.server_lt));
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL))
        return;
    echo.server = conn;
    EXPECT_EQ(R->tcp_read_start(conn, echo_server_read, NULL), 0);
    R->tcp_close(echo.listener, echo_closed, NULL);
}

static void echo_client_wrote(void *arg, int status)
{
    EXPECT_EQ(status, 0);
    EXPECT_EQ((intptr_t)arg, echo.client_written);
    echo.client_written++;
}

static void echo_client_read(void *arg, const void *data, ssize_t n)
{
    EXPECT_TRUE(on_thread(echo.client_thread));
    if (!EXPECT_GT(n, 0)) {     /* EOF or error before every byte came back */
        R->tcp_close(echo.client, echo_closed, NULL);
        return;
    }
    const uint8_t *bytes = data;
    for (size_t i = 0; i < (size_t)n; i++) {
        size_t at = echo.received + i;
        if (bytes[i] != pattern_at(at)) {
            FAILF("echoed byte %zu: expected %u, got %u", at, pattern_at(at), bytes[i]);
            break;
        }
    }
    echo.received += (size_t)n;
    EXPECT_LE(echo.received, ECHO_BYTES);
    if (echo.received == ECHO_BYTES)
        R->tcp_close(echo.client, echo_closed, NULL);
}

static void echo_connected(void *arg, ar_tcp *conn, int err)
{
    EXPECT_TRUE(on_thread(echo.client_thread));
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL))
        return;
    echo.client = conn;
    EXPECT_EQ(R->tcp_read_start(conn, echo_client_read, NULL), 0);
    size_t n_chunks = sizeof echo_chunks / sizeof *echo_chunks;
    for (size_t off = 0, i = 0; off < ECHO_BYTES; i++) {
        size_t len = echo_chunks[i % n_chunks];
        len = len < ECHO_BYTES - off ? len : ECHO_BYTES - off;
        EXPECT_EQ(R->tcp_write(conn, echo.source + off, len, echo_client_wrote, (void *)i), 0);
        echo.client_writes++;
        off += len;
    }
    memset(echo.source, 0, ECHO_BYTES); /* tcp_write copied: the wire must not see this */
}

static void run_echo(bool two_loops)
{
    memset(&echo, 0, sizeof echo);
    ar_loop *server_loop = NULL, *client_loop = NULL;
    echo.source = malloc(ECHO_BYTES);
    REQUIRE(EXPECT_TRUE(echo.source != NULL));
    for (size_t i = 0; i < ECHO_BYTES; i++)
        echo.source[i] = pattern_at(i);
    latch_init(&echo.closed);
    REQUIRE((server_loop = conf_loop_new()));
    REQUIRE((client_loop = two_loops ? conf_loop_new() : server_loop));
    uint16_t port = 0;
    REQUIRE((echo.listener = LISTEN(server_loop, 16, echo_accepted, NULL, &port)));
    R->tcp_connect(client_loop, port, echo_connected, NULL);
    echo.client_thread = two_loops ? &echo.client_lt : &echo.server_lt;
    lt_start(&echo.server_lt, server_loop);
    if (two_loops)
        lt_start(&echo.client_lt, client_loop);
    EXPECT_TRUE(latch_wait(&echo.closed, 3, deadline_in(30000)));
    lt_stop_join(&echo.server_lt);
    if (two_loops)
        lt_stop_join(&echo.client_lt);
    if (two_loops)
        R->loop_free(client_loop);
    R->loop_free(server_loop);
    client_loop = server_loop = NULL;
    EXPECT_EQ(echo.received, ECHO_BYTES);
    EXPECT_EQ(echo.echoed, ECHO_BYTES);
    EXPECT_EQ(echo.client_written, echo.client_writes);
    EXPECT_EQ(echo.server_written, echo.server_writes);
    EXPECT_EQ(latch_count(&echo.closed), 3);
out:
    if (client_loop && client_loop != server_loop)
        R->loop_free(client_loop);
    if (server_loop)
        R->loop_free(server_loop);
    if (echo.closed.m)
        latch_destroy(&echo.closed);
    free(echo.source);
}

static void test_tcp_echo_1mib(void) { run_echo(false); }
static void test_tcp_echo_1mib_two_loops(void) { run_echo(true); }

/* ---- connecting to a closed port reports -ECONNREFUSED, later ---- */

static struct {
    loop_thread lt;
    bool in_call, got_conn;
    int calls, err;
    latch done;
} refused;

static void refused_cb(void *arg, ar_tcp *conn, int err)
{
    EXPECT_TRUE(!refused.in_call);
    EXPECT_TRUE(on_thread(&refused.lt));
    refused.calls++;
    refused.err = err;
    refused.got_conn = conn != NULL;
    if (conn)
        R->tcp_close(conn, NULL, NULL);
    latch_add(&refused.done);
}

static void test_tcp_connect_refused(void)
{
    memset(&refused, 0, sizeof refused);
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
    latch_init(&refused.done);
    uint16_t port = 0;
    ar_tcp *listener = LISTEN(loop, 1, never_accept, NULL, &port);
    if (listener) {
        R->tcp_close(listener, NULL, NULL); /* closes the descriptor now: the port is free */
        refused.in_call = true;
        R->tcp_connect(loop, port, refused_cb, NULL);
        refused.in_call = false;
        lt_start(&refused.lt, loop);
        EXPECT_TRUE(latch_wait(&refused.done, 1, deadline_in(5000)));
        lt_stop_join(&refused.lt);
        EXPECT_EQ(refused.calls, 1);
        EXPECT_TRUE(!refused.got_conn);
        EXPECT_EQ(refused.err, -ECONNREFUSED);
    }
    R->loop_free(loop);
    latch_destroy(&refused.done);
out:;
}

/* ---- closing with writes queued: write callbacks, then close, then nothing ---- */

enum { BIG_WRITE = 8 << 20 }; /* over the 4 MiB wmem max plus the unread receive window */
static struct {
    loop_thread lt;
    tcp_pair pair;
    char events[8];             /* '1' big write, '2' small write, 'C' close, '.' 50 ms later */
    int n_events;
    int status[3];
    bool in_close;
    latch done;
} cancel;

static void cancel_log(char c)
{
    if (cancel.n_events < (int)sizeof cancel.events - 1)
        cancel.events[cancel.n_events++] = c;
}

static void cancel_wrote(void *arg, int status)
{
    int i = (int)(intptr_t)arg;
    EXPECT_TRUE(!cancel.in_close);
    cancel.status[i] = status;
    cancel_log((char)('0' + i));
}

static void cancel_closed(void *arg)
{
    EXPECT_TRUE(!cancel.in_close);
    cancel_log('C');
}

static void cancel_server_closed(void *arg) { latch_add(&cancel.done); }

static void cancel_after(void *arg)
{
    cancel_log('.');
    R->tcp_close(cancel.pair.server, cancel_server_closed, NULL);
}

/* The server never reads: the big write cannot drain. */
static void cancel_ready(tcp_pair *p)
{
    R->tcp_close(p->listener, NULL, NULL);
    char *big = malloc(BIG_WRITE);
    if (!EXPECT_TRUE(big != NULL))
        return;
    memset(big, 'x', BIG_WRITE);
    EXPECT_EQ(R->tcp_write(p->client, big, BIG_WRITE, cancel_wrote, (void *)1), 0);
    EXPECT_EQ(R->tcp_write(p->client, "tail", 4, cancel_wrote, (void *)2), 0);
    free(big);
    ar_resources before, after;
    R->resources(&before);
    cancel.in_close = true;
    R->tcp_close(p->client, cancel_closed, NULL);
    cancel.in_close = false;
    R->resources(&after);
    if (before.descriptors >= 0)    /* the descriptor went at once (sim has none) */
        EXPECT_EQ(after.descriptors, before.descriptors - 1);
    R->timer_start(cancel.lt.loop, 50, cancel_after, NULL);
}

static void test_tcp_close_cancels_writes(void)
{
    memset(&cancel, 0, sizeof cancel);
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
    latch_init(&cancel.done);
    cancel.lt.loop = loop;
    if (tcp_pair_start(&cancel.pair, loop, cancel_ready)) {
        lt_start(&cancel.lt, loop);
        EXPECT_TRUE(latch_wait(&cancel.done, 1, deadline_in(10000)));
        lt_stop_join(&cancel.lt);
        EXPECT_STREQ(cancel.events, "12C.");
        for (int i = 1; i <= 2; i++)
            if (cancel.status[i] != 0)
                EXPECT_EQ(cancel.status[i], -ECANCELED);
        if (cancel.status[1] != 0)  /* in order: nothing after a cancelled write was sent */
            EXPECT_EQ(cancel.status[2], -ECANCELED);
    }
    R->loop_free(loop);
    latch_destroy(&cancel.done);
out:;
}

/* ---- an accepted stream reads nothing until read_start ---- */

static const char lazy_message[] = "bytes that wait in the kernel for read_start";
static struct {
    loop_thread lt;
    tcp_pair pair;
    char got[sizeof lazy_message];
    size_t n_got;
    int write_status;
    latch done;
} lazy;

static void lazy_closed(void *arg) { latch_add(&lazy.done); }
static void lazy_wrote(void *arg, int status) { lazy.write_status = status; }

static void lazy_read(void *arg, const void *data, ssize_t n)
{
    if (!EXPECT_GT(n, 0) || !EXPECT_LE(lazy.n_got + (size_t)n, sizeof lazy_message - 1))
        return;
    memcpy(lazy.got + lazy.n_got, data, (size_t)n);
    lazy.n_got += (size_t)n;
    if (lazy.n_got == sizeof lazy_message - 1) {
        R->tcp_close(lazy.pair.server, lazy_closed, NULL);
        R->tcp_close(lazy.pair.client, lazy_closed, NULL);
    }
}

static void lazy_start_reading(void *arg)
{
    EXPECT_EQ(R->tcp_read_start(lazy.pair.server, lazy_read, NULL), 0);
    EXPECT_EQ(R->tcp_read_start(lazy.pair.server, lazy_read, NULL), -EALREADY);
}

static void lazy_ready(tcp_pair *p)
{
    R->tcp_close(p->listener, NULL, NULL);
    EXPECT_EQ(R->tcp_write(p->client, lazy_message, sizeof lazy_message - 1, lazy_wrote, NULL), 0);
    R->timer_start(lazy.lt.loop, 30, lazy_start_reading, NULL);
}

static void test_tcp_accept_reads_only_after_read_start(void)
{
    memset(&lazy, 0, sizeof lazy);
    lazy.write_status = 1;
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
    latch_init(&lazy.done);
    lazy.lt.loop = loop;
    if (tcp_pair_start(&lazy.pair, loop, lazy_ready)) {
        ar_tcp *listener = lazy.pair.listener;
        EXPECT_EQ(R->tcp_read_start(listener, lazy_read, NULL), -ENOTCONN);
        EXPECT_EQ(R->tcp_write(listener, "x", 1, lazy_wrote, NULL), -ENOTCONN);
        lt_start(&lazy.lt, loop);
        EXPECT_TRUE(latch_wait(&lazy.done, 2, deadline_in(5000)));
        lt_stop_join(&lazy.lt);
        EXPECT_EQ(lazy.write_status, 0);
        EXPECT_EQ(lazy.n_got, sizeof lazy_message - 1);
        EXPECT_EQ(memcmp(lazy.got, lazy_message, sizeof lazy_message - 1), 0);
    }
    R->loop_free(loop);
    latch_destroy(&lazy.done);
out:;
}

const conf_test conf_tcp_tests[] = {
    { "tcp_echo_1mib", test_tcp_echo_1mib },
    { "tcp_echo_1mib_two_loops", test_tcp_echo_1mib_two_loops },
    { "tcp_connect_refused", test_tcp_connect_refused },
    { "tcp_close_cancels_writes", test_tcp_close_cancels_writes },
    { "tcp_accept_reads_only_after_read_start", test_tcp_accept_reads_only_after_read_start },
    { NULL, NULL },
};
