/* escapes.c: what a scheduler cannot order, done on purpose from a thread.
 *
 * Each --what makes one call that escapes a scheduler that switches threads
 * only at the calls it interposes: the kernel would act on its own time, or
 * another process would run. Under the preloaded scheduler each must end the
 * run as `uncontrolled`, naming the call, never run as if it were ordered
 * (runners/test_preload.py provokes every one). On its own the program just
 * makes the call and exits 0.
 *
 *   inline_syscall  clock_gettime by a `syscall` instruction of its own
 *   io_uring        io_uring_setup through syscall()
 *   signal          a SIGALRM handler, then alarm()
 *   fork            fork(), the child exits at once
 *   exec            execv("/bin/true") from a thread
 *   spawn           posix_spawn("/bin/true")
 */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void on_alarm(int sig) { (void)sig; }

static void *escape(void *what)
{
    if (!strcmp(what, "inline_syscall")) {
        struct timespec ts;
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_clock_gettime),
                         "D"((long)CLOCK_MONOTONIC), "S"(&ts) : "rcx", "r11", "memory");
    } else if (!strcmp(what, "io_uring")) {
        char params[120] = {0};                  /* struct io_uring_params */
        long fd = syscall(SYS_io_uring_setup, 8, params);
        if (fd >= 0)
            close((int)fd);
    } else if (!strcmp(what, "signal")) {
        signal(SIGALRM, on_alarm);
        alarm(1);
        alarm(0);
    } else if (!strcmp(what, "fork")) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(0);
        if (pid > 0)
            waitpid(pid, NULL, 0);
    } else if (!strcmp(what, "exec")) {
        char *argv[] = { "/bin/true", NULL };
        execv(argv[0], argv);
    } else if (!strcmp(what, "spawn")) {
        char *argv[] = { "/bin/true", NULL };
        pid_t pid;
        if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) == 0)
            waitpid(pid, NULL, 0);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const char *const known[] = { "inline_syscall", "io_uring", "signal", "fork",
                                         "exec", "spawn" };
    if (argc != 3 || strcmp(argv[1], "--what") != 0) {
        fprintf(stderr, "escapes: usage: escapes --what "
                "inline_syscall|io_uring|signal|fork|exec|spawn\n");
        return 2;
    }
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        ok = ok || !strcmp(argv[2], known[i]);
    if (!ok) {
        fprintf(stderr, "escapes: --what %s: unknown\n", argv[2]);
        return 2;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, escape, argv[2]) != 0 || pthread_join(t, NULL) != 0) {
        fprintf(stderr, "escapes: cannot run a thread\n");
        return 1;
    }
    return 0;
}
