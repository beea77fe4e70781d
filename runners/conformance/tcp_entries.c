/* tcp_entries.c: tcp_port and tcp_reset_on_close. */
#include "conformance.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Runs one connected pair on a loop of its own: on_ready (on the loop's
 * thread) starts the scenario, which ends when done reaches 3. */
static struct {
    loop_thread lt;
    tcp_pair pair;
    latch done;
} scene;

static void scene_done(void *arg) { latch_add(&scene.done); }

static void run_scene(void (*on_ready)(tcp_pair *))
{
    memset(&scene, 0, sizeof scene);
    ar_loop *loop = conf_loop_new();
    if (!loop)
        return;
    latch_init(&scene.done);
    if (tcp_pair_start(&scene.pair, loop, on_ready)) {
        lt_start(&scene.lt, loop);
        EXPECT_TRUE(latch_wait(&scene.done, 3, deadline_in(5000)));
        lt_stop_join(&scene.lt);
    }
    R->loop_free(loop);
    latch_destroy(&scene.done);
}

static void close_all(tcp_pair *p)
{
    R->tcp_close(p->client, scene_done, NULL);
    R->tcp_close(p->server, scene_done, NULL);
    R->tcp_close(p->listener, scene_done, NULL);
}

/* ---- tcp_port: each end sees the other's port ---- */

static void ports_ready(tcp_pair *p)
{
    int client_port = R->tcp_port(p->client, false);
    EXPECT_GT(client_port, 0);
    EXPECT_NE(client_port, p->port);
    EXPECT_EQ(R->tcp_port(p->server, true), client_port);
    EXPECT_EQ(R->tcp_port(p->client, true), p->port);
    EXPECT_EQ(R->tcp_port(p->server, false), p->port);
    EXPECT_EQ(R->tcp_port(p->listener, false), p->port);
    EXPECT_EQ(R->tcp_port(p->listener, true), -1); /* a listener has no peer */
    close_all(p);
}

static void test_tcp_port(void) { run_scene(ports_ready); }

/* ---- tcp_reset_on_close: the peer reads a reset, and no TIME_WAIT is left ---- */

static int socket_state(int local, int remote);

static struct {
    bool reset;                 /* the client resets instead of closing */
    bool probe;                 /* look the client's socket up as the server reads */
    int client_port;
    ssize_t server_read;        /* what the server's read saw; 1 = nothing yet */
    int client_state_at_read;   /* socket_state of each end then */
    int server_state_at_read;
} rst;

static void rst_server_read(void *arg, const void *data, ssize_t n)
{
    rst.server_read = n;
    if (n > 0)                  /* nothing is sent: bytes here are a failure, seen above */
        return;
    if (rst.probe) {
        rst.client_state_at_read = socket_state(rst.client_port, scene.pair.port);
        rst.server_state_at_read = socket_state(scene.pair.port, rst.client_port);
    }
    R->tcp_close(scene.pair.server, scene_done, NULL);
    R->tcp_close(scene.pair.listener, scene_done, NULL);
}

static void rst_ready(tcp_pair *p)
{
    rst.client_port = R->tcp_port(p->client, false);
    EXPECT_EQ(R->tcp_read_start(p->server, rst_server_read, NULL), 0);
    if (rst.reset)
        R->tcp_reset_on_close(p->client);
    R->tcp_close(p->client, scene_done, NULL);
}

static void run_close(bool reset, bool probe)
{
    memset(&rst, 0, sizeof rst);
    rst.reset = reset;
    rst.probe = probe;
    rst.server_read = 1;
    run_scene(rst_ready);
}

static void test_tcp_reset_on_close(void)
{
    run_close(false, false);    /* the control: a plain close is an EOF */
    EXPECT_EQ(rst.server_read, 0);
    run_close(true, false);
    EXPECT_EQ(rst.server_read, -ECONNRESET);
}

/* The TCP state of the socket 127.0.0.1:local -> 127.0.0.1:remote, by an
 * exact sock_diag lookup (TIME_WAIT included); -1 when the kernel has none.
 * /proc/net/tcp says the same, but reading it takes seconds on a host that
 * holds a hundred thousand sockets in TIME_WAIT, as this one does. */
static int socket_state(int local, int remote)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) {
        FAILF("socket(NETLINK_SOCK_DIAG): %s", strerror(errno));
        return -2;
    }
    struct {
        struct nlmsghdr nh;
        struct inet_diag_req_v2 req;
    } ask = {
        .nh = { .nlmsg_len = sizeof ask, .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                .nlmsg_flags = NLM_F_REQUEST },
        .req = { .sdiag_family = AF_INET, .sdiag_protocol = IPPROTO_TCP, .idiag_states = ~0u,
                 .id = { .idiag_sport = htons((uint16_t)local), .idiag_dport = htons((uint16_t)remote),
                         .idiag_src = { htonl(INADDR_LOOPBACK) }, .idiag_dst = { htonl(INADDR_LOOPBACK) },
                         .idiag_cookie = { INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE } } },
    };
    long reply[1024];           /* aligned for nlmsghdr */
    int state = -2;
    ssize_t n = -1;
    if (send(fd, &ask, sizeof ask, 0) == (ssize_t)sizeof ask)
        n = recv(fd, reply, sizeof reply, 0);
    struct nlmsghdr *nh = (struct nlmsghdr *)reply;
    if (n < 0 || !NLMSG_OK(nh, (size_t)n))
        FAILF("sock_diag lookup of 127.0.0.1:%d -> :%d: no answer (%s)", local, remote,
              n < 0 ? strerror(errno) : "short");
    else if (nh->nlmsg_type == NLMSG_ERROR)
        state = ((struct nlmsgerr *)NLMSG_DATA(nh))->error == -ENOENT ? -1 : -2;
    else
        state = ((struct inet_diag_msg *)NLMSG_DATA(nh))->idiag_state;
    if (state == -2 && n >= 0)
        FAILF("sock_diag lookup of 127.0.0.1:%d -> :%d failed", local, remote);
    close(fd);
    return state;
}

enum { TCP_TIME_WAIT = 6, TCP_CLOSE_WAIT = 8 };

/* TcpExt TCPTimeWaitOverflow of /proc/net/netstat: how many sockets the
 * kernel destroyed instead of keeping them in TIME_WAIT, because it already
 * held tcp_max_tw_buckets of them (a busy host, this one, often does); -1
 * when unknown. */
static long time_wait_overflows(void)
{
    FILE *f = fopen("/proc/net/netstat", "r");
    static char names[8192], values[8192];
    long found = -1;
    while (f && found < 0 && fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
        if (strncmp(names, "TcpExt:", 7) != 0)
            continue;
        char *name_at, *value_at;
        char *name = strtok_r(names, " \n", &name_at), *value = strtok_r(values, " \n", &value_at);
        while (name && value && strcmp(name, "TCPTimeWaitOverflow") != 0) {
            name = strtok_r(NULL, " \n", &name_at);
            value = strtok_r(NULL, " \n", &value_at);
        }
        if (name && value)
            found = strtol(value, NULL, 10);
    }
    if (f)
        fclose(f);
    return found;
}

static void test_tcp_reset_leaves_no_time_wait(void)
{
    if (!has_descriptors())
        SKIP("no kernel sockets: nothing for the kernel to keep in TIME_WAIT");
    /* The control: after a plain close the server's end waits in CLOSE_WAIT
     * (the lookup sees the connection), and the client's end ends in
     * TIME_WAIT unless the kernel had no room left for it (its overflow count
     * rose: an orphan waiting for a FIN lives in that same table). */
    long overflows = time_wait_overflows();
    run_close(false, true);
    EXPECT_EQ(rst.server_state_at_read, TCP_CLOSE_WAIT);
    int state = socket_state(rst.client_port, scene.pair.port);
    if (state != -1 || overflows < 0 || time_wait_overflows() == overflows)
        EXPECT_EQ(state, TCP_TIME_WAIT);
    /* A reset: the client's end is gone before the server even reads, and
     * nothing of the connection is left once both ends closed. */
    run_close(true, true);
    EXPECT_EQ(rst.client_state_at_read, -1);
    int client = socket_state(rst.client_port, scene.pair.port);
    int server = socket_state(scene.pair.port, rst.client_port);
    if (client != -1 || server != -1)
        FAILF("after a reset, 127.0.0.1:%d <-> :%d is still known to the kernel "
              "(client side state %d, server side %d; 6 is TIME_WAIT)",
              rst.client_port, scene.pair.port, client, server);
}

const conf_test conf_tcp_entry_tests[] = {
    { "tcp_port", test_tcp_port },
    { "tcp_reset_on_close", test_tcp_reset_on_close },
    { "tcp_reset_leaves_no_time_wait", test_tcp_reset_leaves_no_time_wait },
    { NULL, NULL },
};
