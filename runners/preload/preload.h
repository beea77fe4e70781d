/* preload.h: the preloaded scheduler's parts (preload.c, points.c). */
#ifndef AR_PRELOAD_H
#define AR_PRELOAD_H

/* Bad configuration: one line on stderr, exit 2. */
_Noreturn void preload_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Scheduling points at the entries of the executable's functions whose
 * symbols contain one of these comma-separated names (NULL: none). */
void preload_points(const char *names);

#endif
