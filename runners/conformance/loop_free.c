/* loop_free.c: what loop_free does with what is left: on a loop that never
 * ran, everything completes on the calling thread; on a stopped loop, every
 * write, connect and close callback comes before the first cancelled post. */
#include "conformance.h"

#include <errno.h>
#include <string.h>

/* ---- loop_free on a loop that never ran completes everything on the caller ---- */

static struct {
    void *main_locals;          /* the test thread's thread_locals() */
    int cancels, posts_run, timer_fired, connects, connect_err, closes;
    bool connect_conn, off_main;
} unrun;

static void unrun_note_thread(void) { unrun.off_main |= !on_this_thread(unrun.main_locals); }

static void unrun_post(void *arg, bool cancelled)
{
    unrun_note_thread();
    if (cancelled)
        unrun.cancels++;
    else
        unrun.posts_run++;
}

static void unrun_timer(void *arg) { unrun.timer_fired++; }

static void unrun_connected(void *arg, ar_tcp *conn, int err)
{
    unrun_note_thread();
    unrun.connects++;
    unrun.connect_err = err;
    unrun.connect_conn = conn != NULL;
}

static void unrun_closed(void *arg)
{
    unrun_note_thread();
    unrun.closes++;
}

static void test_free_never_run(void)
{
    memset(&unrun, 0, sizeof unrun);
    unrun.main_locals = R->thread_locals();
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
    for (int i = 0; i < 3; i++)
        R->post(loop, unrun_post, NULL);
    R->timer_start(loop, 1, unrun_timer, NULL);
    uint16_t port = 0, other_port = 0;
    ar_tcp *listener = LISTEN(loop, 4, never_accept, NULL, &port);
    ar_tcp *closed = LISTEN(loop, 4, never_accept, NULL, &other_port);
    if (listener && closed) {
        R->tcp_connect(loop, port, unrun_connected, NULL);
        R->tcp_close(closed, unrun_closed, NULL);
    }
    sleep_ms(5);                /* the 1 ms timer is due: it still must not fire */
    R->loop_free(loop);
    REQUIRE(listener && closed);
    EXPECT_EQ(unrun.cancels, 3);
    EXPECT_EQ(unrun.posts_run, 0);
    EXPECT_EQ(unrun.timer_fired, 0);
    EXPECT_EQ(unrun.connects, 1);
    EXPECT_TRUE(!unrun.connect_conn);
    EXPECT_EQ(unrun.connect_err, -ECANCELED);
    EXPECT_EQ(unrun.closes, 1);
    EXPECT_TRUE(!unrun.off_main);
out:;
}

/* ---- loop_free completes every handle before it cancels any post ---- */

enum { ORDER_LOG = 64, ORDER_BIG_WRITE = 8 << 20 };
static struct {
    loop_thread lt;
    tcp_pair pair;
    ar_tcp *spare;              /* a listener a pending connect goes to */
    uint16_t spare_port;
    char log[ORDER_LOG];        /* 'w' write, 'c' close, 'k' connect, 'p' cancelled post, 'R' ran */
    int n_log, write_status[2], connect_err;
    bool chained, connect_conn;
} order;

static void order_note(char c)
{
    if (order.n_log < ORDER_LOG - 1)
        order.log[order.n_log++] = c;
}

static void order_post(void *arg, bool cancelled)
{
    order_note(cancelled ? 'p' : 'R');
    if (cancelled && !order.chained) { /* a cancelled post's own post is cancelled too */
        order.chained = true;
        R->post(order.lt.loop, order_post, NULL);
    }
}

static void order_wrote(void *arg, int status)
{
    order.write_status[(intptr_t)arg] = status;
    order_note('w');
    R->post(order.lt.loop, order_post, NULL);
}

static void order_closed(void *arg)
{
    order_note('c');
    R->post(order.lt.loop, order_post, NULL);
}

static void order_connected(void *arg, ar_tcp *conn, int err)
{
    order.connect_err = err;
    order.connect_conn = conn != NULL;
    order_note('k');
    R->post(order.lt.loop, order_post, NULL);
}

static void order_spare_accepted(void *arg, ar_tcp *conn, int err)
{
    if (conn)                   /* not under test: the loop should have stopped first */
        R->tcp_close(conn, NULL, NULL);
}

/* On the loop's thread, in one callback: posts before, between and after
 * close requests, writes that cannot drain (the server never reads), a
 * connect that cannot finish, then a stop, so all of it is pending when run
 * returns. */
static void order_arrange(tcp_pair *p)
{
    static char big[ORDER_BIG_WRITE];
    ar_loop *loop = order.lt.loop;
    R->post(loop, order_post, NULL);
    EXPECT_EQ(R->tcp_write(p->client, big, sizeof big, order_wrote, (void *)0), 0);
    EXPECT_EQ(R->tcp_write(p->client, "tail", 4, order_wrote, (void *)1), 0);
    R->tcp_close(p->server, order_closed, NULL);
    R->post(loop, order_post, NULL);
    R->tcp_connect(loop, order.spare_port, order_connected, NULL);
    R->tcp_close(p->listener, order_closed, NULL);
    R->post(loop, order_post, NULL);
    R->loop_stop(loop);
}

static void test_loop_free_order(void)
{
    memset(&order, 0, sizeof order);
    ar_loop *loop = conf_loop_new();
    REQUIRE(loop);
    order.lt.loop = loop;
    order.spare = LISTEN(loop, 4, order_spare_accepted, NULL, &order.spare_port);
    if (order.spare && tcp_pair_start(&order.pair, loop, order_arrange)) {
        lt_start(&order.lt, loop);
        if (!latch_wait(&order.lt.returned, 1, deadline_in(5000))) {
            FAILF("the connection was not made within 5 s");
            R->loop_stop(loop);
        }
        lt_join(&order.lt);
        R->post(loop, order_post, NULL); /* queued after the close requests, from another thread */
    }
    R->loop_free(loop);
    REQUIRE(order.pair.server);
    /* 2 writes, 2 requested closes, 1 connect; 4 posts, 5 from those callbacks, 1 chained. */
    size_t completions = strspn(order.log, "wck");
    if (strspn(order.log + completions, "p") != strlen(order.log + completions))
        FAILF("loop_free ran \"%s\" ('w' write, 'c' close, 'k' connect, 'p' cancelled post, "
              "'R' post run): a completion after a cancelled post", order.log);
    EXPECT_EQ(completions, 5);
    EXPECT_EQ(strlen(order.log), 15);
    EXPECT_TRUE(order.write_status[0] == 0 || order.write_status[0] == -ECANCELED);
    EXPECT_EQ(order.write_status[1], -ECANCELED);
    EXPECT_EQ(order.connect_err, -ECANCELED);
    EXPECT_TRUE(!order.connect_conn);
out:;
}

const conf_test conf_free_tests[] = {
    { "free_never_run", test_free_never_run },
    { "loop_free_order", test_loop_free_order },
    { NULL, NULL },
};
