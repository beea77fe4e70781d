/* loopback.h: the socket details the libevent and epoll runners share (both
 * drive raw nonblocking sockets; libuv does this itself). */
#ifndef ASYNCRACE_LOOPBACK_H
#define ASYNCRACE_LOOPBACK_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <sys/socket.h>

/* 127.0.0.1:port; port 0 asks the kernel for an ephemeral one. */
static inline struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* The contract's streams have TCP_NODELAY. 0 or -errno. */
static inline int set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) ? -errno : 0;
}

#endif
