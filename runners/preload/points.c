/* points.c: scheduling points at functions the user names
 * (ASYNCRACE_POINTS), for code that runs a long way without a system call.
 *
 * The scheduler switches tasks only where a task calls into the interposer.
 * A tokio worker that polls two tasks which wake each other through an
 * in-memory channel makes no system call for as long as they go on: to the
 * watchdog it spins, and the rest of the program (main, whose sleep would end
 * on the virtual clock) never gets a turn. Naming a function that such code
 * calls at every step (tokio's RawTask::poll: every poll of every task) makes
 * its entry a scheduling point, in the unmodified binary:
 *
 *   - each function of the executable whose symbol contains one of the names
 *     gets an int3 at its first byte;
 *   - the trap, on a task of the run, is a scheduling point named after the
 *     function; then the original byte goes back, the one instruction is
 *     single-stepped (the trap flag), and the int3 is put back. Only the
 *     baton's holder runs program code, so no other task passes the function
 *     while its byte is the original one;
 *   - a call is a call in every schedule: the points are as deterministic as
 *     the program between them.
 */
#include "controlled/interpose.h"
#include "preload.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

enum { MAX_POINTS = 64 };

/* A function's first instruction, when it is one the trap can carry out itself (then
 * a point costs one signal, not two: no single step, no re-arming). Where a point is
 * a thunk (tokio's raw::poll is a jmp to Harness::poll) or starts by moving or pushing
 * a register, which covers tokio's; anything else is stepped. */
typedef enum { RUN_STEP, RUN_JMP, RUN_MOV, RUN_PUSH } first_kind;

typedef struct {
    unsigned char *at;
    unsigned char saved;
    first_kind kind;
    unsigned char len, src, dst;  /* RUN_MOV, RUN_PUSH; registers: rax 0 ... r15 15 */
    unsigned char *target;        /* RUN_JMP */
    char name[96];
} point;

static point points[MAX_POINTS];
static int n_points;
static _Thread_local point *stepping;     /* re-armed at the single-step trap */
static _Atomic unsigned long traps, steps; /* the result's point_traps, point_steps */

static const int greg_of[16] = { REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP,
                                 REG_RSI, REG_RDI, REG_R8, REG_R9, REG_R10, REG_R11,
                                 REG_R12, REG_R13, REG_R14, REG_R15 };

static void decode_first(point *p)
{
    const unsigned char *c = p->at;
    p->kind = RUN_STEP;
    if (c[0] == 0xE9) {                                   /* jmp rel32 */
        int32_t rel;
        memcpy(&rel, c + 1, 4);
        p->kind = RUN_JMP;
        p->target = p->at + 5 + rel;
    } else if ((c[0] & 0xF8) == 0x48 && c[1] == 0x89 && (c[2] >> 6) == 3) {
        p->kind = RUN_MOV;                                /* mov r64, r64 */
        p->len = 3;
        p->src = (unsigned char)(((c[2] >> 3) & 7) | (c[0] & 4 ? 8 : 0));
        p->dst = (unsigned char)((c[2] & 7) | (c[0] & 1 ? 8 : 0));
    } else if ((c[0] & 0xF8) == 0x50) {                   /* push r64 */
        p->kind = RUN_PUSH;
        p->len = 1;
        p->src = c[0] & 7;
    } else if (c[0] == 0x41 && (c[1] & 0xF8) == 0x50) {   /* push r8..r15 */
        p->kind = RUN_PUSH;
        p->len = 2;
        p->src = (unsigned char)(8 | (c[1] & 7));
    }
}

/* Carries out p's first instruction on the trapped context; false: it must be stepped. */
static bool run_first(const point *p, greg_t *r)
{
    switch (p->kind) {
    case RUN_JMP:
        r[REG_RIP] = (greg_t)p->target;
        return true;
    case RUN_MOV:
        r[greg_of[p->dst]] = r[greg_of[p->src]];
        break;
    case RUN_PUSH: {
        greg_t v = r[greg_of[p->src]];   /* read first: push %rsp pushes the old value */
        r[REG_RSP] -= 8;                  /* below it is the red zone the kernel skipped */
        *(greg_t *)r[REG_RSP] = v;
        break;
    }
    case RUN_STEP:
        return false;
    }
    r[REG_RIP] = (greg_t)(p->at + p->len);
    return true;
}

static void arm(point *p, bool on)
{
    *(volatile unsigned char *)p->at = on ? 0xCC : p->saved;
    __builtin___clear_cache((char *)p->at, (char *)p->at + 1);
}

static void on_trap(int sig, siginfo_t *si, void *ctx)
{
    (void)sig, (void)si;
    greg_t *r = ((ucontext_t *)ctx)->uc_mcontext.gregs;
    if (stepping) {               /* the original instruction ran: put the int3 back */
        arm(stepping, true);
        stepping = NULL;
        r[REG_EFL] &= ~0x100;
        return;
    }
    unsigned char *hit = (unsigned char *)r[REG_RIP] - 1;
    for (int i = 0; i < n_points; i++) {
        point *p = &points[i];
        if (p->at != hit)
            continue;
        atomic_fetch_add_explicit(&traps, 1, memory_order_relaxed);
        if (sim_caller_is_task())
            sim_point(p->name, 0, SIM_POINT_PLAIN);
        if (run_first(p, r))
            return;
        atomic_fetch_add_explicit(&steps, 1, memory_order_relaxed);
        arm(p, false);
        stepping = p;
        r[REG_RIP] = (greg_t)hit;
        r[REG_EFL] |= 0x100;          /* trap after one instruction */
        return;
    }
    signal(SIGTRAP, SIG_DFL);         /* not ours: the program's own int3 */
    raise(SIGTRAP);
}

/* The executable's symbol table (.symtab, or .dynsym when stripped). */
static void *map_exe(size_t *size)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    *size = (size_t)st.st_size;
    return m == MAP_FAILED ? NULL : m;
}

static uintptr_t exe_base(void)
{
    struct link_map *lm = _r_debug.r_map;    /* the first entry is the executable */
    return lm ? (uintptr_t)lm->l_addr : 0;
}

static void add(const char *sym, uintptr_t addr, const char *want)
{
    for (int i = 0; i < n_points; i++)
        if (points[i].at == (unsigned char *)addr)
            return;               /* aliases (identical code folded) */
    if (n_points == MAX_POINTS)
        preload_bad("ASYNCRACE_POINTS=%s: more than 64 functions match", want);
    point *p = &points[n_points++];
    p->at = (unsigned char *)addr;
    decode_first(p);
    p->saved = *p->at;
    snprintf(p->name, sizeof p->name, "at.%s", sym);
}

/* "tokio::runtime::task::raw::poll" -> "5tokio7runtime4task3raw4poll": how Rust's
 * legacy and C++'s Itanium manglings spell a path, so a path finds its
 * symbols; any other name is looked for as it is. */
static void mangled(const char *name, char *out, size_t n)
{
    if (!strstr(name, "::")) {
        snprintf(out, n, "%s", name);
        return;
    }
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = name; *p && len < n;) {
        const char *end = strstr(p, "::");
        size_t seg = end ? (size_t)(end - p) : strlen(p);
        len += (size_t)snprintf(out + len, n - len, "%zu%.*s", seg, (int)seg, p);
        p += seg + (end ? 2 : 0);
    }
}

void preload_points(const char *names)
{
    if (!names)
        return;
    size_t size;
    unsigned char *elf = map_exe(&size);
    if (!elf)
        preload_bad("ASYNCRACE_POINTS=%s: cannot read the executable", names);
    Elf64_Ehdr *eh = (Elf64_Ehdr *)elf;
    Elf64_Shdr *sh = (Elf64_Shdr *)(elf + eh->e_shoff);
    uintptr_t base = exe_base();
    char list[512];
    snprintf(list, sizeof list, "%s", names);
    for (char *save, *given = strtok_r(list, ",", &save); given; given = strtok_r(NULL, ",", &save)) {
        char want[256];
        mangled(given, want, sizeof want);
        int before = n_points;
        for (int s = 0; s < eh->e_shnum; s++) {
            if (sh[s].sh_type != SHT_SYMTAB && sh[s].sh_type != SHT_DYNSYM)
                continue;
            Elf64_Sym *sym = (Elf64_Sym *)(elf + sh[s].sh_offset);
            const char *str = (const char *)(elf + sh[sh[s].sh_link].sh_offset);
            for (size_t i = 0; i < sh[s].sh_size / sizeof *sym; i++)
                if (ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC && sym[i].st_value &&
                    strstr(str + sym[i].st_name, want))
                    add(given, base + sym[i].st_value, names);
        }
        if (n_points == before)
            preload_bad("ASYNCRACE_POINTS=%s: no function of the executable has '%s' in its name",
                        names, want);
    }
    munmap(elf, size);
    struct sigaction sa = { .sa_sigaction = on_trap, .sa_flags = SA_SIGINFO | SA_NODEFER };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTRAP, &sa, NULL);
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < n_points; i++) {
        uintptr_t start = (uintptr_t)points[i].at & ~(uintptr_t)(page - 1);
        if (mprotect((void *)start, (size_t)page * 2, PROT_READ | PROT_WRITE | PROT_EXEC) != 0)
            preload_bad("ASYNCRACE_POINTS=%s: cannot make the code writable (%s)", names,
                        strerror(errno));
        arm(&points[i], true);
    }
}

void preload_point_counts(unsigned long *trapped, unsigned long *stepped)
{
    *trapped = atomic_load(&traps);
    *stepped = atomic_load(&steps);
}
