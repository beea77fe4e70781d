/* status.h: the status file (--status FILE), a fixed binary record the driver
 * reads while a program runs and after it died: progress a crash cannot take
 * away. Rewritten in place (mmap) after every iteration. --list prints its
 * layout from the table below, so the driver never keeps a copy of it. */
#ifndef ASYNCRACE_STATUS_H
#define ASYNCRACE_STATUS_H

#include "race.h"

#include <stddef.h>
#include <stdint.h>

#define AR_STATUS_MAGIC "ARSTAT1"
#define AR_STATUS_NO_FAILURE UINT64_MAX

typedef struct {
    char magic[8];
    uint64_t current;             /* the iteration running now (next to run, between them) */
    uint64_t done;                /* iterations finished in this process */
    uint64_t counts[AR_OUTCOME_COUNT];
    uint64_t first_failure_iteration;   /* AR_STATUS_NO_FAILURE for none */
    uint64_t first_failure_outcome;
    char first_failure_detail[256];
} ar_status_record;

typedef struct {
    const char *name;
    size_t offset;
    const char *type;             /* "char" or "u64" (little-endian) */
    size_t count;
} ar_status_field;

#define AR_STATUS_FIELD(f, t) { #f, offsetof(ar_status_record, f), t, \
    sizeof(((ar_status_record *)0)->f) / (t[0] == 'u' ? 8 : 1) }

static const ar_status_field ar_status_fields[] = {
    AR_STATUS_FIELD(magic, "char"),
    AR_STATUS_FIELD(current, "u64"),
    AR_STATUS_FIELD(done, "u64"),
    AR_STATUS_FIELD(counts, "u64"),
    AR_STATUS_FIELD(first_failure_iteration, "u64"),
    AR_STATUS_FIELD(first_failure_outcome, "u64"),
    AR_STATUS_FIELD(first_failure_detail, "char"),
};

#endif
