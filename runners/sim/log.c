/* log.c: the decision log, its hash, its compact string and its JSON. */
#include "log.h"
#include "grow.h"

#include <stdlib.h>
#include <string.h>

void sim_log_reset(sim_log *log)
{
    log->n = 0;
    log->n_ids = 0;
    log->steps = 0;
    log->status = 0;
}

void sim_log_free(sim_log *log)
{
    free(log->d);
    free(log->ids);
    memset(log, 0, sizeof *log);
}

void sim_log_add_task(sim_log *log, uint64_t step, const char *point, long arg, int task,
                      int point_kind, const int *enabled, int n, int chose)
{
    log->d = sim_grow(log->d, &log->cap, log->n + 1, sizeof *log->d);
    log->ids = sim_grow(log->ids, &log->cap_ids, log->n_ids + (size_t)n, sizeof *log->ids);
    for (int i = 0; i < n; i++)
        log->ids[log->n_ids + (size_t)i] = enabled[i];
    log->d[log->n++] = (sim_decision){
        .step = step, .point = point, .arg = arg, .task = task, .kind = SIM_DECISION_TASK,
        .point_kind = (uint8_t)point_kind, .n = (uint32_t)n, .off = (uint32_t)log->n_ids,
        .chose = (uint64_t)chose,
    };
    log->n_ids += (size_t)n;
}

void sim_log_add_value(sim_log *log, uint64_t step, const char *point, int task,
                       uint64_t range, uint64_t chose)
{
    log->d = sim_grow(log->d, &log->cap, log->n + 1, sizeof *log->d);
    log->d[log->n++] = (sim_decision){
        .step = step, .point = point, .task = task, .kind = SIM_DECISION_VALUE,
        .n = (uint32_t)(range > UINT32_MAX ? UINT32_MAX : range), .chose = chose,
    };
}

void sim_log_copy(sim_log *dst, const sim_log *src)
{
    sim_log_reset(dst);
    dst->d = sim_grow(dst->d, &dst->cap, src->n, sizeof *dst->d);
    dst->ids = sim_grow(dst->ids, &dst->cap_ids, src->n_ids, sizeof *dst->ids);
    if (src->n)
        memcpy(dst->d, src->d, src->n * sizeof *src->d);
    if (src->n_ids)
        memcpy(dst->ids, src->ids, src->n_ids * sizeof *src->ids);
    dst->n = src->n;
    dst->n_ids = src->n_ids;
    dst->steps = src->steps;
    dst->status = src->status;
}

/* ---- hashing ---- */

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 31);
}

static uint64_t text_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;    /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* Point names are string constants or interned copies: their address names
 * them for the process's lifetime, so a direct-mapped cache is exact. */
static uint64_t name_hash(const char *s)
{
    enum { SLOTS = 1024 };
    static struct { const char *s; uint64_t h; } cache[SLOTS];
    if (!s)
        return 0;
    size_t i = ((uintptr_t)s >> 3) % SLOTS;
    if (cache[i].s != s) {
        cache[i].s = s;
        cache[i].h = text_hash(s);
    }
    return cache[i].h;
}

uint64_t sim_log_hash(const sim_log *log)
{
    uint64_t h = 0x5eed5c4ed0000001ull;
    for (size_t i = 0; i < log->n; i++) {
        const sim_decision *d = &log->d[i];
        h = mix(h, d->kind);
        h = mix(h, (uint64_t)(int64_t)d->task);
        h = mix(h, name_hash(d->point));
        h = mix(h, (uint64_t)(int64_t)d->arg);    /* which object: a mutex, an fd */
        h = mix(h, d->n);
        if (d->kind == SIM_DECISION_TASK)
            for (uint32_t k = 0; k < d->n; k++)
                h = mix(h, (uint64_t)log->ids[d->off + k]);
        h = mix(h, d->chose);
    }
    h = mix(h, log->steps);
    return mix(h, (uint64_t)log->status);
}

/* ---- text ---- */

typedef struct {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t len)
{
    b->p = sim_grow(b->p, &b->cap, b->n + len + 1, 1);
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

char *sim_log_compact(const sim_log *log)
{
    buf b = { 0 };
    put(&b, "", 0);
    for (size_t i = 0; i < log->n;) {
        const sim_decision *d = &log->d[i];
        size_t k = i + 1;
        while (k < log->n && log->d[k].kind == d->kind && log->d[k].chose == d->chose)
            k++;
        char tok[48];
        int len = snprintf(tok, sizeof tok, "%s%s%llu", i ? "." : "",
                           d->kind == SIM_DECISION_VALUE ? "=" : "", (unsigned long long)d->chose);
        if (k - i > 1)
            len += snprintf(tok + len, sizeof tok - (size_t)len, "*%zu", k - i);
        put(&b, tok, (size_t)len);
        i = k;
    }
    return b.p;
}

void sim_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

void sim_log_write_json(FILE *out, const sim_log *log, const char *indent)
{
    fputs("[", out);
    for (size_t i = 0; i < log->n; i++) {
        const sim_decision *d = &log->d[i];
        fprintf(out, "%s\n%s{\"step\": %llu, \"task\": %d, ", i ? "," : "", indent,
                (unsigned long long)d->step, d->task);
        if (d->kind == SIM_DECISION_VALUE) {
            fputs("\"value\": ", out);
            sim_json_string(out, d->point);
            fprintf(out, ", \"range\": %u, \"chose\": %llu}", d->n, (unsigned long long)d->chose);
            continue;
        }
        fputs("\"point\": ", out);
        sim_json_string(out, d->point);
        fprintf(out, ", \"arg\": %ld, \"kind\": %u, \"enabled\": [", d->arg, d->point_kind);
        for (uint32_t k = 0; k < d->n; k++)
            fprintf(out, "%s%d", k ? ", " : "", log->ids[d->off + k]);
        fprintf(out, "], \"chose\": %llu}", (unsigned long long)d->chose);
    }
    fprintf(out, "%s]", log->n ? "\n" : "");
}

/* ---- interning ---- */

const char *sim_intern(const char *name, size_t len)
{
    enum { SLOTS = 4096 };
    static char *table[SLOTS];
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 0x100000001b3ull;
    for (size_t i = h % SLOTS, probes = 0; probes < SLOTS; i = (i + 1) % SLOTS, probes++) {
        if (!table[i]) {
            table[i] = malloc(len + 1);
            if (!table[i])
                break;
            memcpy(table[i], name, len);
            table[i][len] = '\0';
            return table[i];
        }
        if (strlen(table[i]) == len && memcmp(table[i], name, len) == 0)
            return table[i];
    }
    fputs("sim: too many distinct point names\n", stderr);
    abort();
}
