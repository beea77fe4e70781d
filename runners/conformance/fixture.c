/* fixture.c: the conformance fixture: one setup and teardown around every
 * test (fresh failure state, R->run, a resource snapshot before and after),
 * and the helpers every area shares. See conformance.h. */
#include "conformance.h"
#include "selftest.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const ar_runner *R;
double time_scale = 1.0;

static const char *current_test;
static ar_selftest results = { .program = "conformance" };
static const char *skip_reason;

/* ---- failures ---- */

/* The claim is atomic so any thread may fail; the text is read only after
 * R->run returned, when every thread of the test has been joined. */
static atomic_bool failure_claimed;
static char failure_text[512];

void conf_fail(const char *file, int line, const char *fmt, ...)
{
    if (atomic_exchange(&failure_claimed, true))
        return;
    int n = snprintf(failure_text, sizeof failure_text, "%s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure_text + n, sizeof failure_text - (size_t)n, fmt, ap);
    va_end(ap);
}

void conf_print_summary(void)
{
    results.subject = R->name;
    ar_selftest_summary(&results);
}

int conf_failures(void) { return results.failed; }

_Noreturn void conf_fatal(const char *file, int line, const char *what)
{
    char text[512];
    snprintf(text, sizeof text, "%s:%d: %s", file, line, what);
    ar_selftest_fail(&results, current_test, text);
    conf_print_summary();
    _exit(1);                   /* a stuck loop thread cannot be joined or freed */
}

void conf_skip(const char *why) { skip_reason = why; }

static const char *const op_text[] = { "==", "!=", "<", "<=", ">", ">=" };

bool conf_expect_cmp(const char *file, int line, const char *ea, conf_op op, const char *eb,
                     long long a, long long b)
{
    bool ok = op == EQ ? a == b : op == NE ? a != b : op == LT ? a < b
            : op == LE ? a <= b : op == GT ? a > b : a >= b;
    if (!ok)
        conf_fail(file, line, "`%s %s %s` (%lld %s %lld)", ea, op_text[op], eb, a, op_text[op], b);
    return ok;
}

bool conf_expect_true(const char *file, int line, const char *expr, bool value)
{
    if (!value)
        conf_fail(file, line, "`%s` (false)", expr);
    return value;
}

bool conf_expect_streq(const char *file, int line, const char *ea, const char *eb,
                       const char *a, const char *b)
{
    bool ok = strcmp(a, b) == 0;
    if (!ok)
        conf_fail(file, line, "`%s == %s` (\"%s\" == \"%s\")", ea, eb, a, b);
    return ok;
}

/* ---- one test: setup, run, teardown with the leak check ---- */

static void run_body(void *arg)
{
    const conf_test *t = arg;
    t->fn();                    /* every thread it started is joined when it returns */
}

conf_outcome conf_run(const conf_test *t)
{
    current_test = t->name;
    ar_selftest_run(&results, t->name);
    atomic_store(&failure_claimed, false);
    skip_reason = NULL;
    ar_resources before, after;
    R->resources(&before);
    uint64_t t0 = R->now_ns();
    R->run(run_body, (void *)t);
    long long took = ms_since(t0);
    R->resources(&after);
    char grown[200], leaks[256] = "";
    if (*ar_resources_grown(&before, &after, grown, sizeof grown))
        snprintf(leaks, sizeof leaks, "still open after the test: %s", grown);

    conf_outcome outcome = atomic_load(&failure_claimed) || leaks[0] ? CONF_FAIL
                         : skip_reason ? CONF_SKIP : CONF_PASS;
    char text[800];
    switch (outcome) {
    case CONF_FAIL:
        if (atomic_load(&failure_claimed))
            snprintf(text, sizeof text, "%s%s%s", failure_text, leaks[0] ? "; " : "", leaks);
        else
            snprintf(text, sizeof text, "%s", leaks);
        ar_selftest_fail(&results, t->name, text);
        break;
    case CONF_SKIP:
        ar_selftest_skip(&results, t->name, skip_reason);
        break;
    case CONF_PASS:
        ar_selftest_pass(&results, t->name, took);
        break;
    }
    return outcome;
}

/* ---- time, descriptors, listening ---- */

uint64_t scaled_ns(uint64_t ms) { return (uint64_t)((double)ms * 1e6 * time_scale); }
uint64_t deadline_in(uint64_t ms) { return R->now_ns() + scaled_ns(ms); }
long long ms_since(uint64_t t0_ns) { return (long long)((R->now_ns() - t0_ns) / 1000000u); }
void sleep_ms(unsigned ms) { R->sleep_ns((uint64_t)ms * 1000000u); }

bool has_descriptors(void)
{
    ar_resources r;
    R->resources(&r);
    return r.descriptors >= 0;
}

static long sockets_in_time_wait(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    long tw = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "TCP: inuse %*d orphan %*d tw %ld", &tw) == 1)
            break;
    if (f)
        fclose(f);
    return tw;
}

ar_tcp *conf_listen(const char *file, int line, ar_loop *loop, int backlog,
                    ar_accept_fn fn, void *arg, uint16_t *port)
{
    ar_tcp *l = R->tcp_listen(loop, backlog, fn, arg, port);
    if (!l)
        conf_fail(file, line, "tcp_listen on 127.0.0.1:0 returned NULL: %s "
                  "(%ld sockets in TIME_WAIT)", strerror(errno), sockets_in_time_wait());
    else
        conf_expect_cmp(file, line, "*port", NE, "0", *port, 0);
    return l;
}

ar_loop *conf_loop_new(void)
{
    ar_loop *loop = R->loop_new();
    if (!loop)
        FAILF("loop_new returned NULL");
    return loop;
}

/* ---- latches ---- */

void latch_init(latch *l)
{
    l->m = R->mutex_new();
    l->c = R->cond_new();
    l->count = 0;
    if (!l->m || !l->c)
        FATAL("mutex_new or cond_new returned NULL");
}

void latch_destroy(latch *l)
{
    R->cond_free(l->c);
    R->mutex_free(l->m);
}

void latch_add(latch *l)
{
    R->mutex_lock(l->m);
    l->count++;
    R->cond_broadcast(l->c);
    R->mutex_unlock(l->m);
}

long latch_count(latch *l)
{
    R->mutex_lock(l->m);
    long n = l->count;
    R->mutex_unlock(l->m);
    return n;
}

bool latch_wait(latch *l, long target, uint64_t deadline_ns)
{
    R->mutex_lock(l->m);
    while (l->count < target && R->now_ns() < deadline_ns)
        R->cond_wait_until(l->c, l->m, deadline_ns);
    bool reached = l->count >= target;
    R->mutex_unlock(l->m);
    return reached;
}

/* ---- loop threads and helper threads ---- */

static void loop_thread_main(void *arg)
{
    loop_thread *lt = arg;
    lt->locals = R->thread_locals();
    latch_add(&lt->started);
    R->loop_run(lt->loop);
    latch_add(&lt->returned);
}

void lt_start(loop_thread *lt, ar_loop *loop)
{
    lt->loop = loop;
    latch_init(&lt->started);
    latch_init(&lt->returned);
    lt->thread = R->thread_start(loop_thread_main, lt);
    if (!lt->thread)
        FATAL("thread_start returned NULL");
    if (!latch_wait(&lt->started, 1, deadline_in(5000)))
        FATAL("a loop thread did not start within 5 s");
}

void lt_join(loop_thread *lt)
{
    if (!latch_wait(&lt->returned, 1, deadline_in(5000)))
        FATAL("loop_run did not return within 5 s of loop_stop");
    R->thread_join(lt->thread);
    latch_destroy(&lt->started);
    latch_destroy(&lt->returned);
}

void lt_stop_join(loop_thread *lt)
{
    R->loop_stop(lt->loop);
    lt_join(lt);
}

bool on_this_thread(const void *locals) { return R->thread_locals() == locals; }
bool on_thread(const loop_thread *lt) { return on_this_thread(lt->locals); }

static void worker_main(void *p)
{
    worker *w = p;
    w->fn(w->arg);
    latch_add(&w->finished);
}

void worker_start(worker *w, ar_thread_fn fn, void *arg)
{
    w->fn = fn;
    w->arg = arg;
    latch_init(&w->finished);
    w->thread = R->thread_start(worker_main, w);
    if (!w->thread)
        FATAL("thread_start returned NULL");
}

void worker_join(worker *w)
{
    if (!latch_wait(&w->finished, 1, deadline_in(10000)))
        FATAL("a helper thread did not finish within 10 s");
    R->thread_join(w->thread);
    latch_destroy(&w->finished);
}

/* ---- a connected pair ---- */

static void pair_one_ready(tcp_pair *p)
{
    if (++p->ready == 2)
        p->on_ready(p);
}

static void pair_accepted(void *arg, ar_tcp *conn, int err)
{
    tcp_pair *p = arg;
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL) || !EXPECT_TRUE(p->server == NULL)) {
        if (conn)
            R->tcp_close(conn, NULL, NULL);
        return;
    }
    p->server = conn;
    pair_one_ready(p);
}

static void pair_connected(void *arg, ar_tcp *conn, int err)
{
    tcp_pair *p = arg;
    if (!EXPECT_EQ(err, 0) || !EXPECT_TRUE(conn != NULL))
        return;
    p->client = conn;
    pair_one_ready(p);
}

bool tcp_pair_start(tcp_pair *p, ar_loop *loop, void (*on_ready)(tcp_pair *))
{
    p->on_ready = on_ready;
    p->ready = 0;
    p->client = p->server = NULL;
    if (!(p->listener = LISTEN(loop, 4, pair_accepted, p, &p->port)))
        return false;
    R->tcp_connect(loop, p->port, pair_connected, p);
    return true;
}

void never_accept(void *arg, ar_tcp *conn, int err)
{
    FAILF("unexpected accept (err %d)", err);
    if (conn)
        R->tcp_close(conn, NULL, NULL);
}
