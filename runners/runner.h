/* runner.h: the one table of functions an event-loop backend exports.
 *
 * A runner is one file (libuv.c, libevent.c, epoll.c, ...) that fills an
 * ar_runner. The harness and the cases only ever call through this table, so
 * the same reproducer runs on every backend, and a deterministic runner (sim)
 * takes over threads, locks, time and the schedule by exporting the same table.
 *
 * Threading contract:
 *  - A loop is run by exactly one thread (its "own" thread) at a time.
 *  - post() may be called from any thread, including before loop_run() and
 *    after the loop stopped; it never blocks on the loop.
 *  - Everything else that takes an ar_loop or a handle made from it (timers,
 *    TCP) is called on the loop's own thread, or before the loop runs.
 *  - Deadlines (cond_wait_until) and timer durations are on now_ns()'s clock.
 *
 * Clarifications every runner honours (runners/conformance/ checks them):
 *  - A turn is one wait-and-dispatch round of the loop: ready I/O, due timers
 *    and at most one snapshot of the post queue. Posts made after that
 *    snapshot (from a posted callback or from any thread) run on a later turn,
 *    so a callback that re-posts itself never starves I/O, timers or a stop.
 *  - loop_stop() sets a flag that loop_run() consumes: run returns at the end
 *    of the turn that saw it, and a stop made while the loop is not running
 *    makes the next loop_run() return at once without running anything. The
 *    loop may be run again afterwards. A stop seen before a turn took its
 *    post snapshot leaves the queue as it is: the next run or loop_free has it.
 *  - No callback is ever called from inside the call that requested it
 *    (tcp_connect, tcp_write, tcp_close, post, timer_start with 0 ms).
 *  - loop_free() runs on any thread once run returned; post() and loop_stop()
 *    must not race with it. On the calling thread it: closes every open TCP
 *    handle (no close callback unless tcp_close asked for one), fails pending
 *    writes with -ECANCELED, fails pending connects with (NULL, -ECANCELED),
 *    runs close callbacks already requested, drops timers unfired, then calls
 *    every queued post with cancelled = true (also posts those callbacks make).
 *    Callbacks it runs may post(), but must not start timers or TCP on it.
 */
#ifndef ASYNCRACE_RUNNER_H
#define ASYNCRACE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ar_loop ar_loop;
typedef struct ar_timer ar_timer;
typedef struct ar_tcp ar_tcp;
typedef struct ar_thread ar_thread;
typedef struct ar_mutex ar_mutex;
typedef struct ar_cond ar_cond;
typedef struct ar_scheduler ar_scheduler;   /* scheduler.h */

/* What a process holds open, for the leak check: each count goes up when the
 * runner makes one and down when it is freed; descriptors is -1 where the
 * runner has none of its own (sim). */
typedef struct ar_resources {
    long loops, tcp, timers, threads, mutexes, conds;
    long descriptors;
} ar_resources;

/* The bytes thread_locals() hands each thread: the harness keeps its
 * per-thread state there (a static assert checks it fits). */
#define AR_THREAD_LOCALS_BYTES 256

/* A posted callback. cancelled is true when the loop is freed before the
 * callback ran: the callback must then only release what arg owns. */
typedef void (*ar_post_fn)(void *arg, bool cancelled);
typedef void (*ar_timer_fn)(void *arg);
/* conn is a connected stream owned by the callee, or NULL with err = -errno. */
typedef void (*ar_accept_fn)(void *arg, ar_tcp *conn, int err);
typedef void (*ar_connect_fn)(void *arg, ar_tcp *conn, int err);
/* n > 0: data[0..n) valid only during the call; n == 0: EOF; n < 0: -errno. */
typedef void (*ar_read_fn)(void *arg, const void *data, ssize_t n);
/* status 0 when every byte was handed to the kernel, else -errno. */
typedef void (*ar_write_fn)(void *arg, int status);
typedef void (*ar_close_fn)(void *arg);
typedef void (*ar_thread_fn)(void *arg);

typedef struct ar_runner {
    const char *name;
    const char *(*version)(void); /* e.g. "libuv 1.44.2" */

    /* Loops. */
    ar_loop *(*loop_new)(void);             /* NULL on failure */
    void (*loop_run)(ar_loop *);            /* until loop_stop(); on the calling thread */
    void (*loop_stop)(ar_loop *);           /* any thread; run returns after the current turn */
    void (*loop_free)(ar_loop *);           /* after run returned or never ran: cancels
                                               pending posts (fn(arg, true)) and timers,
                                               closes every handle, frees everything */
    void (*post)(ar_loop *, ar_post_fn fn, void *arg); /* any thread, FIFO, wakes the loop */

    /* One-shot timers, ms measured from the call (not from a cached loop
     * time); freed after firing or cancel. Earlier deadlines fire first. */
    ar_timer *(*timer_start)(ar_loop *, uint64_t ms, ar_timer_fn fn, void *arg);
    void (*timer_cancel)(ar_timer *);       /* only before it fired */

    /* TCP on 127.0.0.1. A listener and a stream are both an ar_tcp. Streams
     * have TCP_NODELAY; writes never raise SIGPIPE. backlog <= 0 means
     * SOMAXCONN. An accepted stream reads nothing until tcp_read_start. After a
     * read callback with n <= 0 reading has stopped. On a handle that is
     * closing, read_start and write return -EBADF; on a listener, -ENOTCONN;
     * read_start while reading returns -EALREADY. */
    ar_tcp *(*tcp_listen)(ar_loop *, int backlog, ar_accept_fn fn, void *arg,
                          uint16_t *port);  /* ephemeral port written to *port; NULL
                                               with errno set on error */
    void (*tcp_connect)(ar_loop *, uint16_t port, ar_connect_fn fn, void *arg);
    int (*tcp_read_start)(ar_tcp *, ar_read_fn fn, void *arg); /* 0 or -errno */
    int (*tcp_read_stop)(ar_tcp *);
    /* Copies buf; callbacks come in the order of the writes. 0 or -errno. */
    int (*tcp_write)(ar_tcp *, const void *buf, size_t len, ar_write_fn fn, void *arg);
    /* Closes the descriptor now, stops reads, fails pending writes with
     * -ECANCELED, then calls fn (may be NULL) on a later turn and frees.
     * Write callbacks (0 for writes already handed over) all come before fn.
     * "Later" means after the calling callback returned: libuv runs close
     * callbacks at the end of the same loop iteration. */
    void (*tcp_close)(ar_tcp *, ar_close_fn fn, void *arg);
    /* The local (or, with peer, the remote) port of a stream; -1 when unknown. */
    int (*tcp_port)(ar_tcp *, bool peer);
    /* From now on closing this stream (tcp_close or loop_free) resets it
     * instead of sending a FIN: nothing is left in TIME_WAIT. For test
     * fixtures that make thousands of connections a minute. */
    void (*tcp_reset_on_close)(ar_tcp *);

    /* Threads and locks: through the runner so a deterministic runner can own them. */
    ar_thread *(*thread_start)(ar_thread_fn fn, void *arg); /* NULL on failure */
    void (*thread_join)(ar_thread *);       /* joins and frees */
    ar_mutex *(*mutex_new)(void);           /* non-recursive */
    void (*mutex_lock)(ar_mutex *);
    bool (*mutex_trylock)(ar_mutex *);      /* true when taken; false when held,
                                               also by the calling thread */
    void (*mutex_unlock)(ar_mutex *);
    void (*mutex_free)(ar_mutex *);
    ar_cond *(*cond_new)(void);
    void (*cond_broadcast)(ar_cond *);
    /* Waits until signalled or now_ns() reaches deadline_ns; false on
     * timeout. Spurious wake-ups are possible: callers loop on their predicate. */
    bool (*cond_wait_until)(ar_cond *, ar_mutex *, uint64_t deadline_ns);
    void (*cond_free)(ar_cond *);

    /* Time, pauses and per-thread state: through the runner so that sim, whose
     * threads are fibers of one OS thread on a virtual clock, can own them. */
    uint64_t (*now_ns)(void);               /* the clock of timers and deadlines:
                                               CLOCK_MONOTONIC on a real loop */
    void (*sleep_ns)(uint64_t ns);          /* blocks the calling thread */
    void (*yield)(void);                    /* lets another thread run; every spin calls it */
    void *(*thread_locals)(void);           /* AR_THREAD_LOCALS_BYTES zeroed bytes, the
                                               calling thread's own */
    void (*resources)(ar_resources *out);   /* what is open now (see ar_resources) */
    /* NULL on a real loop. On sim: a scheduling point, named for the decision log. */
    void (*race_point)(const char *name, long arg);
    /* NULL: now_ns. The race log's time stamps: on sim a read that the
     * program does not act on, so no step depends on it (sleep sets). */
    uint64_t (*log_now_ns)(void);
    /* Runs fn(arg) on the calling thread and returns when it has returned. A
     * real loop just calls it; sim runs it as the first thread of its
     * scheduler, with every thread it starts, and returns when all have ended.
     * The harness runs each iteration (and conformance each test) through it. */
    void (*run)(void (*fn)(void *), void *arg);
    /* NULL on a real loop. On sim: the strategy, seeds, results and schedule
     * files the case plumbing drives each run with (scheduler.h). */
    const ar_scheduler *scheduler;
} ar_runner;

/* Every built runner (runners/backends.list), NULL-terminated, in that order. */
extern const ar_runner *const ar_runners[];
/* NULL when no runner has that name. */
const ar_runner *ar_runner_find(const char *name);
/* "libuv, libevent, epoll, ...": for error messages. */
const char *ar_runner_names(void);
/* What grew from before to after, into buf ("1 loops, 3 descriptors"; the
 * leak checks of the case plumbing and of the self-tests); "" when nothing
 * did. A count of -1 (sim has no descriptors) is not compared. */
const char *ar_resources_grown(const ar_resources *before, const ar_resources *after,
                               char *buf, size_t n);
/* CLOCK_MONOTONIC in nanoseconds: the host's clock, for real runners' own use
 * (the harness asks its runner's now_ns, which on sim is virtual). */
uint64_t ar_host_now_ns(void);

#endif
