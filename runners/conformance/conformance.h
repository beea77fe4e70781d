/* conformance.h: what every conformance test file shares: the runner under
 * test, expectations, the fixture's skip, bounded waits, loop threads.
 *
 * A test is a void function in an area file, listed in that file's
 * conf_*_tests table (main.c runs the tables in order). The fixture (fixture.c)
 * runs each one through R->run with the resource counts checked before and
 * after. A test body touches threads, locks, condition variables, the clock
 * and sleeps only through R, never pthread_* or clock_gettime: on sim every
 * thread is a fiber of one OS thread, where a raw pthread lock deadlocks.
 */
#ifndef ASYNCRACE_CONFORMANCE_H
#define ASYNCRACE_CONFORMANCE_H

#include "runner.h"

#include <stdbool.h>
#include <stdint.h>

extern const ar_runner *R;
extern double time_scale;       /* ASYNCRACE_TIMEOUT_MULTIPLIER, at least 1 */

typedef struct conf_test {
    const char *name;
    void (*fn)(void);
} conf_test;

/* One table per area file, each ended by { NULL, NULL }. */
extern const conf_test conf_post_tests[], conf_timer_tests[], conf_tcp_tests[],
    conf_tcp_entry_tests[], conf_free_tests[], conf_thread_tests[], conf_entry_tests[];

/* ---- expectations: the first failure of a test is kept, from any thread ---- */

void conf_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Ends the program with this test's FAIL line and the summary: for a thread
 * that cannot be joined (a stuck loop_run). */
_Noreturn void conf_fatal(const char *file, int line, const char *what);
/* This test does not apply to the runner: the driver prints "SKIP name: why"
 * and counts it neither passed nor failed. why must be a literal. */
void conf_skip(const char *why);

typedef enum { EQ, NE, LT, LE, GT, GE } conf_op;
bool conf_expect_cmp(const char *file, int line, const char *ea, conf_op op, const char *eb,
                     long long a, long long b);
bool conf_expect_true(const char *file, int line, const char *expr, bool value);
bool conf_expect_streq(const char *file, int line, const char *ea, const char *eb,
                       const char *a, const char *b);

#define EXPECT_CMP(a, op, b) \
    conf_expect_cmp(__FILE__, __LINE__, #a, op, #b, (long long)(a), (long long)(b))
#define EXPECT_EQ(a, b) EXPECT_CMP(a, EQ, b)
#define EXPECT_NE(a, b) EXPECT_CMP(a, NE, b)
#define EXPECT_LT(a, b) EXPECT_CMP(a, LT, b)
#define EXPECT_LE(a, b) EXPECT_CMP(a, LE, b)
#define EXPECT_GT(a, b) EXPECT_CMP(a, GT, b)
#define EXPECT_GE(a, b) EXPECT_CMP(a, GE, b)
#define EXPECT_TRUE(c) conf_expect_true(__FILE__, __LINE__, #c, (c))
#define EXPECT_STREQ(a, b) conf_expect_streq(__FILE__, __LINE__, #a, #b, (a), (b))
#define FAILF(...) conf_fail(__FILE__, __LINE__, __VA_ARGS__)
#define REQUIRE(expectation) do { if (!(expectation)) goto out; } while (0)
#define FATAL(what) conf_fatal(__FILE__, __LINE__, what)
#define SKIP(why) do { conf_skip(why); return; } while (0)

/* ---- time, and what the host shows ---- */

uint64_t scaled_ns(uint64_t ms);    /* ms, stretched by time_scale */
uint64_t deadline_in(uint64_t ms);  /* now_ns() + scaled_ns(ms) */
long long ms_since(uint64_t t0_ns);
void sleep_ms(unsigned ms);         /* R->sleep_ns */
/* The runner has descriptors of its own (resources().descriptors >= 0). */
bool has_descriptors(void);

/* tcp_listen with the reason in the failure (port 0 finds no free port when
 * other programs leave the ephemeral range full of TIME_WAIT sockets). */
#define LISTEN(loop, backlog, fn, arg, port) \
    conf_listen(__FILE__, __LINE__, loop, backlog, fn, arg, port)
ar_tcp *conf_listen(const char *file, int line, ar_loop *loop, int backlog,
                    ar_accept_fn fn, void *arg, uint16_t *port);
/* loop_new, or a failure recorded and NULL. */
ar_loop *conf_loop_new(void);

/* ---- latches, loop threads and helper threads, on R's mutex and cond ---- */

typedef struct {
    ar_mutex *m;
    ar_cond *c;
    long count;
} latch;

void latch_init(latch *l);
void latch_destroy(latch *l);
void latch_add(latch *l);
long latch_count(latch *l);
bool latch_wait(latch *l, long target, uint64_t deadline_ns); /* false on timeout */

/* A thread that runs one loop. on_thread tells its callbacks apart: each
 * thread has its own R->thread_locals() block. */
typedef struct {
    ar_loop *loop;
    ar_thread *thread;
    void *locals;               /* the loop thread's, written before loop_run */
    latch started, returned;
} loop_thread;

void lt_start(loop_thread *lt, ar_loop *loop); /* returns once the thread runs */
void lt_join(loop_thread *lt);                 /* after a stop: waits for run to return */
void lt_stop_join(loop_thread *lt);
bool on_thread(const loop_thread *lt);
bool on_this_thread(const void *locals);       /* locals from R->thread_locals() */

/* A helper thread whose join is bounded: it signals a latch as it ends. */
typedef struct {
    ar_thread *thread;
    ar_thread_fn fn;
    void *arg;
    latch finished;
} worker;

void worker_start(worker *w, ar_thread_fn fn, void *arg);
void worker_join(worker *w);

/* ---- a connected pair on one loop ---- */

typedef struct tcp_pair tcp_pair;
struct tcp_pair {
    ar_tcp *listener, *client, *server;
    uint16_t port;              /* what tcp_listen returned */
    int ready;
    void (*on_ready)(tcp_pair *); /* on the loop's thread, once both ends exist */
};

/* Listens on loop and connects to it; on_ready runs from the loop once the
 * client is connected and the server accepted. false (failure recorded)
 * when the listen failed. The listener stays open: the test closes it. */
bool tcp_pair_start(tcp_pair *p, ar_loop *loop, void (*on_ready)(tcp_pair *));
/* An accept callback for a listener that must see no connection. */
void never_accept(void *arg, ar_tcp *conn, int err);

/* ---- the driver, for main.c ---- */

typedef enum { CONF_PASS, CONF_FAIL, CONF_SKIP } conf_outcome;
/* Runs t through R->run between two resource snapshots and prints its line:
 * "PASS name Nms", "FAIL name: why" (a leak is a failure that names what
 * leaked) or "SKIP name: why". */
conf_outcome conf_run(const conf_test *t);
/* "conformance <runner>: N passed, M failed", then ", K skipped" when K > 0. */
void conf_print_summary(void);
int conf_failures(void);

#endif
