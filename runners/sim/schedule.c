/* schedule.c: schedule files: written from the last run's log, read back
 * with every check sim.h promises, and the build id they are tied to. */
#include "sim_private.h"
#include "sched.h"

#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* 2: the program's parameters ("program") are recorded; a /1 file did not say
 * with which workers, run time and deadline it ran, so it cannot be replayed. */
#define FORMAT "asyncrace-sim-schedule/2"

struct sim_schedule {
    char *case_name, *variant, *mode, *runner, *build, *strategy, *outcome;
    uint64_t iteration, seed, step_ns, step_bound, hash;
    struct { char *name; uint64_t value; } params[SIM_PARAMS_MAX];
    size_t n_params;
    sim_log log;
};

const sim_log *sim_schedule_log(const sim_schedule *s) { return &s->log; }
const char *sim_schedule_strategy(const sim_schedule *s) { return s->strategy; }
uint64_t sim_schedule_step_ns(const sim_schedule *s) { return s->step_ns; }
uint64_t sim_schedule_step_bound(const sim_schedule *s) { return s->step_bound; }
uint64_t sim_schedule_hash(const sim_schedule *s) { return s->hash; }
uint64_t sim_schedule_steps(const sim_schedule *s) { return s->log.steps; }
uint64_t sim_schedule_iteration(const sim_schedule *s) { return s->iteration; }
uint64_t sim_schedule_seed(const sim_schedule *s) { return s->seed; }
const char *sim_schedule_outcome(const sim_schedule *s) { return s->outcome; }

bool sim_schedule_param(const sim_schedule *s, const char *name, uint64_t *value)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (!strcmp(s->params[i].name, name)) {
            *value = s->params[i].value;
            return true;
        }
    return false;
}

/* ---- the build id ---- */

static int find_build_id(struct dl_phdr_info *info, size_t size, void *out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const char *name = p + sizeof *nh;
            const unsigned char *desc = (const unsigned char *)name + ((nh->n_namesz + 3) & ~3u);
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
                char *hex = out;
                for (unsigned k = 0; k < nh->n_descsz && k < 32; k++)
                    sprintf(hex + 2 * k, "%02x", desc[k]);
                return 1;
            }
            p = (const char *)desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    return 1;                   /* the first object is the executable: stop there */
}

const char *sim_build_id(void)
{
    static char id[80];
    if (id[0])
        return id;
    dl_iterate_phdr(find_build_id, id);
    if (!id[0]) {               /* no note: a hash of the executable's bytes */
        uint64_t h = 0xcbf29ce484222325ull;
        FILE *f = fopen("/proc/self/exe", "rb");
        for (int c; f && (c = getc(f)) != EOF;)
            h = (h ^ (unsigned char)c) * 0x100000001b3ull;
        if (f)
            fclose(f);
        snprintf(id, sizeof id, "exe-%016llx", (unsigned long long)h);
    }
    return id;
}

/* ---- writing ---- */

static void field(FILE *f, const char *key, const char *value)
{
    fprintf(f, "  \"%s\": ", key);
    sim_json_string(f, value ? value : "");
    fputs(",\n", f);
}

static void number(FILE *f, const char *key, uint64_t v)
{
    fprintf(f, "  \"%s\": %llu,\n", key, (unsigned long long)v);
}

int sim_schedule_write(const char *path, const sim_schedule_id *id, uint64_t iteration,
                       uint64_t seed, const char *outcome, const char *detail,
                       char *err, size_t n)
{
    const sim_log *log = sim_sched_log();
    const sim_result *r = sim_last_result();
    const sim_options *o = sim_api_options();
    if (!r) {
        snprintf(err, n, "no schedule has run");
        return -1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, n, "cannot write '%s': %s", tmp, strerror(errno));
        return -1;
    }
    char *compact = sim_log_compact(log);
    char hash[20];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)r->hash);
    fputs("{\n", f);
    field(f, "format", FORMAT);
    field(f, "case", id->case_name);
    field(f, "variant", id->variant);
    field(f, "mode", id->mode);
    field(f, "runner", id->runner ? id->runner : "sim");
    field(f, "build", id->build ? id->build : sim_build_id());
    fputs("  \"program\": {", f);
    for (size_t i = 0; i < id->n_params && i < SIM_PARAMS_MAX; i++) {
        fputs(i ? ", " : "", f);
        sim_json_string(f, id->params[i].name);
        fprintf(f, ": %llu", (unsigned long long)id->params[i].value);
    }
    fputs("},\n", f);
    field(f, "strategy", sim_api_last_strategy());
    number(f, "pct_depth", (uint64_t)o->pct_depth);
    number(f, "pct_steps", o->pct_steps);
    number(f, "dfs_bound", (uint64_t)o->dfs_bound);
    number(f, "step_ns", sim_api_last_step_ns());
    number(f, "step_bound", sim_api_last_step_bound());
    number(f, "iteration", iteration);
    number(f, "seed", seed);
    field(f, "outcome", outcome);
    field(f, "detail", detail);
    field(f, "status", sim_status_names[r->status]);
    number(f, "steps", log->steps);
    number(f, "decision_count", log->n);
    field(f, "hash", hash);
    field(f, "compact", compact);
    fputs("  \"decisions\": ", f);
    sim_log_write_json(f, log, "    ");
    fputs("\n}\n", f);
    free(compact);
    bool ok = !ferror(f);
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, n, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* ---- a small JSON reader: objects, arrays, strings, integers, literals ---- */

typedef enum { J_NULL, J_BOOL, J_INT, J_STR, J_ARR, J_OBJ } jtype;
typedef struct jv {
    jtype t;
    long long i;                /* J_INT, J_BOOL */
    char *s;                    /* J_STR */
    size_t len;
    struct jv *items;           /* J_ARR, J_OBJ (values) */
    char **keys;                /* J_OBJ */
    size_t n;
} jv;

typedef struct {
    const char *p, *start, *end;
    const char *err;            /* what went wrong, at p */
} jp;

static void jfree(jv *v)
{
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static void ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static bool fail(jp *j, const char *what)
{
    if (!j->err)
        j->err = what;
    return false;
}

static bool jvalue(jp *j, jv *v, int depth);

static bool jstring(jp *j, char **out, size_t *len)
{
    j->p++;                     /* the opening quote */
    size_t cap = 16, n = 0;
    char *s = malloc(cap);
    if (!s)
        return fail(j, "out of memory");
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) {
            free(s);
            return fail(j, "a control character in a string");
        }
        if (c == '\\') {
            if (j->p >= j->end)
                break;
            char e = *j->p++;
            if (e == 'u') {
                if (j->end - j->p < 4) {
                    j->p = j->end;
                    break;
                }
                unsigned code;
                if (sscanf(j->p, "%4x", &code) != 1 || code > 0x7f) {
                    free(s);
                    return fail(j, "a \\u escape sim does not write");
                }
                c = (char)code;
                j->p += 4;
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
                const char *k = strchr(from, e);
                if (!k || !e) {
                    free(s);
                    return fail(j, "a bad escape in a string");
                }
                c = to[k - from];
            }
        }
        if (n + 2 > cap && !(s = realloc(s, cap *= 2)))
            return fail(j, "out of memory");
        s[n++] = c;
    }
    if (j->p >= j->end) {
        free(s);
        return fail(j, "the text ends inside a string");
    }
    j->p++;
    s[n] = '\0';
    *out = s;
    *len = n;
    return true;
}

static bool jlist(jp *j, jv *v, bool object, int depth)
{
    char close = object ? '}' : ']';
    j->p++;
    size_t cap = 0;
    ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        if (v->n == cap) {
            cap = cap ? 2 * cap : 8;
            v->items = realloc(v->items, cap * sizeof *v->items);
            if (object)
                v->keys = realloc(v->keys, cap * sizeof *v->keys);
            if (!v->items || (object && !v->keys))
                return fail(j, "out of memory");
        }
        jv *item = &v->items[v->n];
        memset(item, 0, sizeof *item);
        ws(j);
        if (object) {
            size_t klen;
            if (j->p >= j->end || *j->p != '"')
                return fail(j, "expected a key");
            if (!jstring(j, &v->keys[v->n], &klen))
                return false;
            ws(j);
            if (j->p >= j->end || *j->p != ':') {
                free(v->keys[v->n]);
                return fail(j, "expected ':'");
            }
            j->p++;
        }
        v->n++;
        if (!jvalue(j, item, depth + 1))
            return false;
        ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        return fail(j, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool jvalue(jp *j, jv *v, int depth)
{
    ws(j);
    if (depth > 16)
        return fail(j, "nested too deep");
    if (j->p >= j->end)
        return fail(j, "expected a value");
    char c = *j->p;
    if (c == '{' || c == '[') {
        v->t = c == '{' ? J_OBJ : J_ARR;
        return jlist(j, v, c == '{', depth);
    }
    if (c == '"') {
        v->t = J_STR;
        return jstring(j, &v->s, &v->len);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        char *e;
        errno = 0;
        v->t = J_INT;
        v->i = c == '-' ? strtoll(j->p, &e, 10) : (long long)strtoull(j->p, &e, 10);
        if (errno || e == j->p)
            return fail(j, "a bad number");
        if (e < j->end && (*e == '.' || *e == 'e' || *e == 'E'))
            return fail(j, "a number that is not an integer");
        j->p = e;
        return true;
    }
    static const struct { const char *word; jtype t; long long i; } lits[] = {
        { "true", J_BOOL, 1 }, { "false", J_BOOL, 0 }, { "null", J_NULL, 0 },
    };
    for (size_t k = 0; k < 3; k++) {
        size_t len = strlen(lits[k].word);
        if ((size_t)(j->end - j->p) >= len && !memcmp(j->p, lits[k].word, len)) {
            v->t = lits[k].t;
            v->i = lits[k].i;
            j->p += len;
            return true;
        }
        if ((size_t)(j->end - j->p) < len && !memcmp(j->p, lits[k].word, (size_t)(j->end - j->p)))
            return fail(j, "the text ends inside a literal");
    }
    return fail(j, "an unexpected character");
}

static const jv *get(const jv *o, const char *key, jtype t)
{
    for (size_t i = 0; o && o->t == J_OBJ && i < o->n; i++)
        if (!strcmp(o->keys[i], key))
            return o->items[i].t == t ? &o->items[i] : NULL;
    return NULL;
}

/* ---- loading ---- */

typedef struct {
    char *err;
    size_t n;
    const char *path;
} errbuf;

static sim_schedule *reject(errbuf *e, sim_schedule *s, const char *kind, const char *fmt, ...)
{
    int k = snprintf(e->err, e->n, "schedule '%s': %s: ", e->path, kind);
    va_list ap;
    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < e->n)
        vsnprintf(e->err + k, e->n - (size_t)k, fmt, ap);
    va_end(ap);
    sim_schedule_free(s);
    return NULL;
}

static char *dup_field(const jv *root, const char *key)
{
    const jv *v = get(root, key, J_STR);
    return v ? strdup(v->s) : NULL;
}

static bool read_decision(const jv *d, sim_log *log)
{
    const jv *step = get(d, "step", J_INT), *task = get(d, "task", J_INT);
    const jv *chose = get(d, "chose", J_INT);
    if (!step || !task || !chose)
        return false;
    const jv *value = get(d, "value", J_STR);
    if (value) {
        const jv *range = get(d, "range", J_INT);
        if (!range || range->i < 1)
            return false;
        sim_log_add_value(log, (uint64_t)step->i, sim_intern(value->s, value->len), (int)task->i,
                          (uint64_t)range->i, (uint64_t)chose->i);
        return true;
    }
    const jv *point = get(d, "point", J_STR), *arg = get(d, "arg", J_INT);
    const jv *kind = get(d, "kind", J_INT), *en = get(d, "enabled", J_ARR);
    if (!point || !arg || !kind || !en || en->n < 1 || en->n > 65536)
        return false;
    int ids[en->n];
    for (size_t i = 0; i < en->n; i++) {
        if (en->items[i].t != J_INT)
            return false;
        ids[i] = (int)en->items[i].i;
    }
    sim_log_add_task(log, (uint64_t)step->i, sim_intern(point->s, point->len), arg->i,
                     (int)task->i, (int)kind->i, ids, (int)en->n, (int)chose->i);
    return true;
}

static sim_schedule *parse(errbuf *e, const char *text, size_t len, const sim_schedule_id *expect)
{
    jp j = { text, text, text + len, NULL };
    jv root = { 0 };
    bool ok = jvalue(&j, &root, 0);
    if (ok) {
        ws(&j);
        if (j.p != j.end)
            ok = fail(&j, "text after the closing brace");
    }
    if (!ok) {
        size_t at = (size_t)(j.p - text);
        jfree(&root);
        if (j.p >= j.end)
            return reject(e, NULL, "truncated", "the JSON ends at byte %zu before it is complete", len);
        return reject(e, NULL, "corrupt", "%s at byte %zu", j.err, at);
    }
    sim_schedule *s = calloc(1, sizeof *s);
    const jv *format = get(&root, "format", J_STR);
    static const char *const required[] = { "case", "variant", "mode", "build", "strategy",
                                            "outcome", "status", "hash", "compact" };
    static const char *const numbers[] = { "step_ns", "step_bound", "iteration", "seed", "steps",
                                           "decision_count" };
    const char *missing = NULL;
    for (size_t i = 0; i < sizeof required / sizeof *required && !missing; i++)
        if (!get(&root, required[i], J_STR))
            missing = required[i];
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers && !missing; i++)
        if (!get(&root, numbers[i], J_INT))
            missing = numbers[i];
    if (!missing && !get(&root, "decisions", J_ARR))
        missing = "decisions";
    const jv *program = get(&root, "program", J_OBJ);
    if (!missing && !program)
        missing = "program";
    for (size_t i = 0; program && !missing && i < program->n; i++)
        if (program->items[i].t != J_INT || i >= SIM_PARAMS_MAX)
            missing = "program";
    if (s && format && !strcmp(format->s, "asyncrace-sim-schedule/1")) {
        jfree(&root);
        return reject(e, s, "too old", "written by an earlier asyncrace (format 1), which did not "
                      "record the program's parameters (workers, run time, deadline): record it "
                      "again");
    }
    if (!s || !format || strcmp(format->s, FORMAT) != 0) {
        jfree(&root);
        return reject(e, s, "corrupt", "not an asyncrace sim schedule (format '%s', expected '%s')",
                      format ? format->s : "none", FORMAT);
    }
    if (missing) {
        jfree(&root);
        return reject(e, s, "corrupt", "the '%s' field is missing or of the wrong type", missing);
    }
    s->case_name = dup_field(&root, "case");
    s->variant = dup_field(&root, "variant");
    s->mode = dup_field(&root, "mode");
    s->runner = get(&root, "runner", J_STR) ? dup_field(&root, "runner") : strdup("sim");
    s->build = dup_field(&root, "build");
    s->strategy = dup_field(&root, "strategy");
    s->outcome = dup_field(&root, "outcome");
    s->step_ns = (uint64_t)get(&root, "step_ns", J_INT)->i;
    s->step_bound = (uint64_t)get(&root, "step_bound", J_INT)->i;
    s->iteration = (uint64_t)get(&root, "iteration", J_INT)->i;
    s->seed = (uint64_t)get(&root, "seed", J_INT)->i;
    s->log.steps = (uint64_t)get(&root, "steps", J_INT)->i;
    for (size_t i = 0; i < program->n; i++) {
        s->params[i].name = strdup(program->keys[i]);
        s->params[i].value = (uint64_t)program->items[i].i;
        s->n_params++;
    }
    const char *status = get(&root, "status", J_STR)->s;
    s->log.status = -1;
    for (int k = 0; k < 3; k++)
        if (!strcmp(status, sim_status_names[k]))
            s->log.status = k;
    s->hash = strtoull(get(&root, "hash", J_STR)->s, NULL, 16);
    char compact_file[64];
    snprintf(compact_file, sizeof compact_file, "%s", get(&root, "compact", J_STR)->s);
    size_t compact_len = get(&root, "compact", J_STR)->len;
    char *compact_copy = strdup(get(&root, "compact", J_STR)->s);
    long long count = get(&root, "decision_count", J_INT)->i;
    const jv *decisions = get(&root, "decisions", J_ARR);
    size_t bad = SIZE_MAX;
    for (size_t i = 0; i < decisions->n && bad == SIZE_MAX; i++)
        if (!read_decision(&decisions->items[i], &s->log))
            bad = i;
    size_t n_read = decisions->n;
    jfree(&root);

    const struct { const char *what, *want, *got; } ids[] = {
        { "case", expect ? expect->case_name : NULL, s->case_name },
        { "variant", expect ? expect->variant : NULL, s->variant },
        { "mode", expect ? expect->mode : NULL, s->mode },
        { "runner", expect ? (expect->runner ? expect->runner : "sim") : NULL, s->runner },
        { "build", expect ? (expect->build ? expect->build : sim_build_id()) : NULL, s->build },
    };
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if (ids[i].want && strcmp(ids[i].want, ids[i].got) != 0) {
            free(compact_copy);
            return reject(e, s, "wrong program", "recorded for %s '%s', this is %s '%s'",
                          ids[i].what, ids[i].got, ids[i].what, ids[i].want);
        }
    sim_schedule *result = s;
    char *compact = NULL;
    if (bad != SIZE_MAX)
        result = reject(e, s, "corrupt", "decision %zu lacks a field or has a bad one", bad);
    else if (s->log.status < 0)
        result = reject(e, s, "corrupt", "unknown status '%s'", status);
    else if ((long long)n_read != count)
        result = reject(e, s, "corrupt", "%zu decisions, the header says %lld", n_read, count);
    else if (sim_log_hash(&s->log) != s->hash)
        result = reject(e, s, "corrupt", "the decisions hash to %016llx, the header says %016llx",
                        (unsigned long long)sim_log_hash(&s->log), (unsigned long long)s->hash);
    else if ((compact = sim_log_compact(&s->log)) && (strlen(compact) != compact_len ||
                                                      strcmp(compact, compact_copy) != 0))
        result = reject(e, s, "corrupt", "the compact string '%s...' does not match the decisions",
                        compact_file);
    free(compact);
    free(compact_copy);
    return result;
}

sim_schedule *sim_schedule_load(const char *path, const sim_schedule_id *expect, char *err, size_t n)
{
    errbuf e = { err, n, path };
    FILE *f = fopen(path, "rb");
    if (!f)
        return reject(&e, NULL, errno == ENOENT ? "missing" : "unreadable", "%s", strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    for (size_t got; text && (got = fread(text + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap && !(text = realloc(text, cap *= 2)))
            break;
    }
    bool read_error = ferror(f);
    fclose(f);
    if (!text || read_error) {
        free(text);
        return reject(&e, NULL, "unreadable", "%s", text ? "read error" : "out of memory");
    }
    if (len == 0) {
        free(text);
        return reject(&e, NULL, "truncated", "the file is empty");
    }
    sim_schedule *s = parse(&e, text, len, expect);
    free(text);
    return s;
}

void sim_schedule_free(sim_schedule *s)
{
    if (!s)
        return;
    free(s->case_name);
    free(s->variant);
    free(s->mode);
    free(s->runner);
    free(s->build);
    free(s->strategy);
    free(s->outcome);
    for (size_t i = 0; i < s->n_params; i++)
        free(s->params[i].name);
    sim_log_free(&s->log);
    free(s);
}
