/* sim_runner.h: the sim runner's loops and handles, between sim.c (loops,
 * timers, threads, locks) and net.c (the in-memory loopback). Runner side:
 * this is where runner.h meets the core. */
#ifndef SIM_RUNNER_H
#define SIM_RUNNER_H

#include "runner.h"
#include "sched.h"

typedef struct post_node post_node;

struct ar_loop {
    long id;
    bool running, stop;
    sim_waitq waiter;           /* the loop's thread, while it waits for work */
    post_node *posts, *posts_tail;
    ar_timer *timers;           /* by (deadline, seq) */
    uint64_t timer_seq;
    ar_tcp *handles;            /* open handles */
    ar_tcp *ready_head, *ready_tail; /* handles with something to do, by turn */
    uint64_t gen;               /* the turn number: handles marked in a turn wait for the next */
    ar_tcp *closing_head, *closing_tail; /* closed: callbacks and free still due */
    char *read_buf;
};

/* Resource counts (sim's own; threads are the core's live tasks). */
typedef enum { SIM_RES_LOOP, SIM_RES_TCP, SIM_RES_TIMER, SIM_RES_MUTEX,
               SIM_RES_COND, SIM_RES_KINDS } sim_res_kind;
void sim_count(sim_res_kind kind, int delta);

/* The loop has something to do: wake its thread if it waits. */
void sim_loop_wake(ar_loop *loop);

/* net.c, on the loop's thread: */
bool sim_net_has_work(const ar_loop *loop);
void sim_net_run_ready(ar_loop *loop);       /* one snapshot of the ready handles */
void sim_net_finish_closes(ar_loop *loop);   /* close callbacks due, then free */
void sim_net_close_all(ar_loop *loop);       /* loop_free: closes every open handle */

ar_tcp *sim_tcp_listen(ar_loop *, int backlog, ar_accept_fn fn, void *arg, uint16_t *port);
void sim_tcp_connect(ar_loop *, uint16_t port, ar_connect_fn fn, void *arg);
int sim_tcp_read_start(ar_tcp *, ar_read_fn fn, void *arg);
int sim_tcp_read_stop(ar_tcp *);
int sim_tcp_write(ar_tcp *, const void *buf, size_t len, ar_write_fn fn, void *arg);
void sim_tcp_close(ar_tcp *, ar_close_fn fn, void *arg);
int sim_tcp_port(ar_tcp *, bool peer);
void sim_tcp_reset_on_close(ar_tcp *);

#endif
