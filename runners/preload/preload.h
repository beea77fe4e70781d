/* preload.h: the preloaded scheduler's parts (preload.c, points.c). */
#ifndef AR_PRELOAD_H
#define AR_PRELOAD_H

/* Bad configuration: one line on stderr, exit 2. */
_Noreturn void preload_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Scheduling points at the entries of the executable's functions whose
 * symbols contain one of these comma-separated names (NULL: none). */
void preload_points(const char *names);
/* The points' traps so far, and how many of them single-stepped the function's first
 * instruction (the others carried it out in the trap). */
void preload_point_counts(unsigned long *trapped, unsigned long *stepped);

/* How a run ended: "ok", "exit", "signal", "deadlock", "step_bound", "uncontrolled". */
typedef struct {
    const char *outcome;
    const char *detail;
    int code, sig;
} verdict;

struct sim_schedule;
/* explain.c: cuts the failing schedule down to the decisions its failure turns
 * on, each try a forked child (preload_try); writes PREFIX.minimal.json and
 * PREFIX.explain.json. The process's exit status: 0, or 1 with one line. */
int preload_explain(const char *prefix, const struct sim_schedule *failing,
                    const char *failing_path, const char *program);
/* In a try's child: runs the program once, its schedule written to schedule,
 * how it ended and what the shrink learned sent to report_fd (preload_report). */
_Noreturn void preload_try(int report_fd, const char *schedule);
void preload_report(int fd, const verdict *v);

#endif
