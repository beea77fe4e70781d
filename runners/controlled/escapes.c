/* escapes.c: a system call made by a `syscall` instruction outside libc (an
 * inline one, in a library or in the program) passes every definition of the
 * interposer, so nothing else here would see it. A seccomp filter, Shadow's
 * way, closes that hole: it lets through the system calls made from the code
 * of libc, the dynamic linker, the vDSO and the sanitizer runtimes, and traps
 * every other one (SIGSYS). In the handler, a task of a run ends the run as
 * `uncontrolled`, naming the call and where it was made; any other thread
 * (the harness, or a program outside its runs) gets the call made for it,
 * through libc, as if nothing had happened.
 *
 * Installed once, for the whole process (every thread, TSYNC), when a
 * controlled run is first configured. What it cannot do: a filter outlives
 * exec, and the new program's libc is elsewhere, so a controlled process
 * must not exec (ASan's symbolizer, started for a report, is killed: the
 * report comes unsymbolized). A trapped call that changes the thread's own
 * signal state or makes a thread (rt_sigprocmask, sigaltstack, clone) cannot
 * be made from a handler for someone else: the process stops, with one line.
 */
#include "interpose.h"
#include "sim/contexts.h"

#include <errno.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

enum { RANGES = 32 };

typedef struct { uintptr_t start, end; } range;   /* [start, end) */

static range allowed[RANGES];
static int n_allowed;

/* The objects whose own system calls are not a program's escape. */
static bool trusted(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    static const char *const names[] = { "libc.so", "ld-linux", "linux-vdso", "libasan.so",
                                         "libtsan.so", "libubsan.so", "liblsan.so" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strncmp(base, names[i], strlen(names[i])))
            return true;
    return false;
}

static int add_code(struct dl_phdr_info *info, size_t size, void *unused)
{
    (void)size, (void)unused;
    if (!info->dlpi_name || !trusted(info->dlpi_name))
        return 0;
    for (int i = 0; i < info->dlpi_phnum && n_allowed < RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && ph->p_memsz)
            allowed[n_allowed++] = (range){ info->dlpi_addr + ph->p_vaddr,
                                            info->dlpi_addr + ph->p_vaddr + ph->p_memsz };
    }
    return 0;
}

/* ---- the filter ---- */

enum { MAX_INSNS = 4 + 6 * 2 * RANGES + 1 };

#define IP_LO offsetof(struct seccomp_data, instruction_pointer)
#define IP_HI (IP_LO + 4)

static int filter(struct sock_filter *f)
{
    int n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    for (int i = 0; i < n_allowed; i++) {
        /* A range crossing a 4 GiB line is checked as two, one per high word. */
        for (uintptr_t start = allowed[i].start; start < allowed[i].end;) {
            uintptr_t line = (start | 0xffffffffu) + 1;
            uintptr_t end = allowed[i].end < line ? allowed[i].end : line;
            /* ip_hi == hi && lo_start <= ip_lo && ip_lo <= lo_last: allow; else on. */
            f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, IP_HI);
            f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(start >> 32), 0, 4);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, IP_LO);
            f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, (uint32_t)start, 0, 2);
            f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)(end - 1), 1, 0);
            f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
            start = end;
        }
    }
    f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP);
    return n;
}

/* ---- the trap ---- */

static _Atomic(long (*)(long, ...)) libc_syscall;

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    ucontext_t *uc = ctx;
    greg_t *r = uc->uc_mcontext.gregs;
    long nr = si->si_syscall;
    char where[200];
    sim_where(where, sizeof where, si->si_call_addr);
    if (sim_caller_is_task()) {
        sim_threads_ending_in_handler();
        sim_lost_control("an inline system call (%ld, %s) at %s, past the interposer: the "
                         "scheduler does not order it", nr, sim_syscall_name(nr), where);
    }
    if (nr == SYS_rt_sigprocmask || nr == SYS_sigaltstack || nr == SYS_clone ||
        nr == SYS_clone3 || nr == SYS_rt_sigreturn || nr == SYS_vfork) {
        char line[300];
        int len = snprintf(line, sizeof line, "asyncrace interposer: an inline system call "
                           "(%ld) at %s, which a handler cannot make for its caller\n", nr, where);
        if (write(STDERR_FILENO, line, (size_t)len) < 0)
            _exit(70);
        _exit(70);
    }
    long (*call)(long, ...) = atomic_load(&libc_syscall);
    long v = call(nr, r[REG_RDI], r[REG_RSI], r[REG_RDX], r[REG_R10], r[REG_R8], r[REG_R9]);
    r[REG_RAX] = v == -1 ? -errno : v;
}

int ar_trap_escapes(char *err, size_t n)
{
    static bool installed;
    if (installed)
        return 0;
    atomic_store(&libc_syscall, (long (*)(long, ...))ar_real("syscall"));
    dl_iterate_phdr(add_code, NULL);
    if (!n_allowed) {
        snprintf(err, n, "the seccomp filter found no libc code to allow");
        return -1;
    }
    struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO | SA_NODEFER };
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0) {
        snprintf(err, n, "SIGSYS handler: %s", strerror(errno));
        return -1;
    }
    static struct sock_filter insns[MAX_INSNS];
    struct sock_fprog prog = { .len = (unsigned short)filter(insns), .filter = insns };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0) {
        snprintf(err, n, "the seccomp filter for inline system calls: %s", strerror(errno));
        return -1;
    }
    installed = true;
    return 0;
}
