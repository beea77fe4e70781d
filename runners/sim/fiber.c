/* fiber.c: the context switch, stacks and the sanitizers' fiber hooks (see fiber.h). */
#include "contexts.h"

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SIM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SIM_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SIM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SIM_TSAN 1
#endif
#endif

#ifdef SIM_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef SIM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if defined(__x86_64__) && !defined(SIM_FIBER_UCONTEXT)
#define SIM_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

/* Sanitizers' frames are larger; the pool keeps stacks, so only touched pages cost. */
#if defined(SIM_ASAN) || defined(SIM_TSAN)
#define STACK_SIZE ((size_t)1 << 20)
#else
#define STACK_SIZE ((size_t)256 << 10)
#endif

static void die(const char *what)
{
    fprintf(stderr, "sim: %s: %s\n", what, strerror(errno));
    abort();
}

/* ---- the switch ---- */

#ifdef SIM_ASM_SWITCH
/* sim_ctx_swap(void **save_sp, void *load_sp): pushes rbp, rbx, r12-r15, the
 * x87 control word and MXCSR (the ABI's callee-saved state), stores rsp in
 * *save_sp, loads load_sp and pops the same frame from there. A new fiber's
 * first frame returns into sim_ctx_boot, which calls r12(r13). */
void sim_ctx_swap(void **save_sp, void *load_sp);
void sim_ctx_boot(void);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl sim_ctx_swap\n"
    ".hidden sim_ctx_swap\n"
    ".type sim_ctx_swap,@function\n"
    "sim_ctx_swap:\n"
    "    .cfi_startproc\n"
    "    pushq %rbp\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %rbx\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r12\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r13\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r14\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    pushq %r15\n"
    "    .cfi_adjust_cfa_offset 8\n"
    "    subq $16, %rsp\n"
    "    .cfi_adjust_cfa_offset 16\n"
    "    stmxcsr 8(%rsp)\n"
    "    fnstcw (%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    fldcw (%rsp)\n"
    "    ldmxcsr 8(%rsp)\n"
    "    addq $16, %rsp\n"
    "    .cfi_adjust_cfa_offset -16\n"
    "    popq %r15\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %r14\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %r13\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %r12\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %rbx\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    popq %rbp\n"
    "    .cfi_adjust_cfa_offset -8\n"
    "    ret\n"
    "    .cfi_endproc\n"
    ".size sim_ctx_swap, .-sim_ctx_swap\n"
    ".p2align 4\n"
    ".globl sim_ctx_boot\n"
    ".hidden sim_ctx_boot\n"
    ".type sim_ctx_boot,@function\n"
    "sim_ctx_boot:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined rip\n"     /* the bottom frame: unwinders stop here */
    "    movq %r13, %rdi\n"
    "    callq *%r12\n"
    "    ud2\n"
    "    .cfi_endproc\n"
    ".size sim_ctx_boot, .-sim_ctx_boot\n");
#endif

const char *sim_fiber_kind(void)
{
#ifdef SIM_ASM_SWITCH
    return "x86-64 switch";
#else
    return "ucontext";
#endif
}

/* ---- fibers ---- */

struct sim_fiber {
    void *sp;                 /* saved stack pointer while switched out */
    void *ucontext;           /* the fallback's ucontext_t */
    char *stack;              /* lowest usable byte; NULL for the host */
    const void *asan_bottom;  /* the stack ASan is told about (host: learnt on first switch) */
    size_t asan_size;
    void *asan_fake;          /* ASan's fake stack while switched out */
    void *tsan;               /* TSan's fiber */
    sim_fiber_entry entry;
    void *arg;
    int saved_errno;          /* errno is per OS thread: each fiber keeps its own */
    bool in_entry;            /* suspended inside entry (not parked, not fresh) */
    bool unwinding;           /* abandoned: on resume, jump back to the boot frame */
    jmp_buf boot;             /* the boot frame, between entries */
    sim_fiber *unwind_to;     /* where an unwound fiber goes */
    sim_fiber *next;          /* the parked pool */
};

static sim_fiber host;
static bool host_ready;
static sim_fiber *parked;     /* fibers whose entry returned, waiting for the next */

/* ---- sanitizers ---- */

static sim_fiber *switching_from;   /* set by the fiber that starts a switch */

/* Inlined: a call returning after __tsan_switch_to_fiber would pop a frame
 * off the new fiber's shadow stack and leave one on the old one's. */
static inline __attribute__((always_inline)) void switch_begin(sim_fiber *from, sim_fiber *to)
{
    switching_from = from;
    from->saved_errno = errno;
#ifdef SIM_ASAN
    __sanitizer_start_switch_fiber(&from->asan_fake, to->asan_bottom, to->asan_size);
#endif
#ifdef SIM_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);  /* 0: the switch is a happens-before edge */
#endif
    (void)to;
}

/* On the fiber that was resumed (me), right after its switch returned. */
static void switch_end(sim_fiber *me)
{
#ifdef SIM_ASAN
    const void *bottom = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(me->asan_fake, &bottom, &size);
    if (switching_from && !switching_from->asan_bottom) {   /* the host: learnt here */
        switching_from->asan_bottom = bottom;
        switching_from->asan_size = size;
    }
#endif
    errno = me->saved_errno;
}

/* ---- stacks, each with a guard page below it ---- */

static char *map_stack(void)
{
    static size_t page_size;
    if (!page_size)
        page_size = (size_t)sysconf(_SC_PAGESIZE);
    char *base = mmap(NULL, STACK_SIZE + page_size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mprotect(base, page_size, PROT_NONE) != 0)
        die("mprotect(stack guard)");
    return base + page_size;
}

/* ---- fibers ---- */

static void switch_raw(sim_fiber *from, sim_fiber *to)
{
#ifdef SIM_ASM_SWITCH
    sim_ctx_swap(&from->sp, to->sp);
#else
    if (swapcontext(from->ucontext, to->ucontext) != 0)
        die("swapcontext");
#endif
}

static void park(sim_fiber *f)
{
    f->entry = NULL;
    f->in_entry = false;
    f->unwinding = false;
    f->next = parked;
    parked = f;
}

/* Runs entry after entry; parks between them. An abandoned fiber comes back
 * here by _longjmp (ASan and TSan follow it: redzones and shadow stack). */
static void fiber_boot(void *p)
{
    sim_fiber *f = p;
    switch_end(f);
    for (;;) {
        sim_fiber *to;
        if (_setjmp(f->boot) == 0) {
            f->in_entry = true;
            to = f->entry(f->arg);
        } else {
            to = f->unwind_to;
        }
        park(f);
        sim_fiber_switch(f, to);
    }
}

#ifndef SIM_ASM_SWITCH
static void fiber_boot_ucontext(unsigned hi, unsigned lo)
{
    fiber_boot((void *)((uintptr_t)hi << 32 | (uintptr_t)lo));
}
#endif

sim_fiber *sim_fiber_host(void)
{
    if (!host_ready) {
        host_ready = true;
#ifdef SIM_TSAN
        host.tsan = __tsan_get_current_fiber();
#endif
#ifndef SIM_ASM_SWITCH
        host.ucontext = calloc(1, sizeof(ucontext_t));
        if (!host.ucontext)
            die("calloc(ucontext)");
#endif
    }
    return &host;
}

sim_fiber *sim_fiber_start(sim_fiber_entry entry, void *arg)
{
    sim_fiber *f = parked;
    if (f) {
        parked = f->next;
        f->entry = entry;
        f->arg = arg;
        return f;
    }
    if (!(f = calloc(1, sizeof *f)))
        return NULL;
    if (!(f->stack = map_stack())) {
        free(f);
        return NULL;
    }
    f->asan_bottom = f->stack;
    f->asan_size = STACK_SIZE;
    f->entry = entry;
    f->arg = arg;
#ifdef SIM_ASM_SWITCH
    /* The frame sim_ctx_swap pops: fpcw, mxcsr, r15, r14, r13 = f, r12 = boot,
     * rbx, rbp, return address. sim_ctx_boot then calls with rsp 16-aligned. */
    uintptr_t top = ((uintptr_t)f->stack + STACK_SIZE) & ~(uintptr_t)15;
    uint64_t *frame = (uint64_t *)(top - 24 - 64);
    memset(frame, 0, 24 + 64);
    uint16_t fpcw;
    uint32_t mxcsr;
    __asm__ volatile("fnstcw %0" : "=m"(fpcw));
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    memcpy(&frame[0], &fpcw, sizeof fpcw);
    memcpy(&frame[1], &mxcsr, sizeof mxcsr);
    frame[4] = (uint64_t)(uintptr_t)f;            /* r13 */
    frame[5] = (uint64_t)(uintptr_t)fiber_boot;   /* r12 */
    frame[8] = (uint64_t)(uintptr_t)sim_ctx_boot; /* return address */
    f->sp = frame;
#else
    ucontext_t *uc = calloc(1, sizeof *uc);
    if (!uc || getcontext(uc) != 0)
        die("getcontext");
    uc->uc_stack.ss_sp = f->stack;
    uc->uc_stack.ss_size = STACK_SIZE;
    uc->uc_link = NULL;
    makecontext(uc, (void (*)(void))fiber_boot_ucontext, 2,
                (unsigned)((uintptr_t)f >> 32), (unsigned)(uintptr_t)f);
    f->ucontext = uc;
#endif
#ifdef SIM_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
    return f;
}

void sim_fiber_switch(sim_fiber *from, sim_fiber *to)
{
    switch_begin(from, to);
    switch_raw(from, to);
    switch_end(from);
    if (from->unwinding)
        _longjmp(from->boot, 1);
}

void sim_fiber_abandon(sim_fiber *f)
{
    if (!f->in_entry) {         /* fresh, or parked and never resumed: nothing to unwind */
        park(f);
        return;
    }
    f->unwinding = true;
    f->unwind_to = &host;       /* abandon runs on the host */
    sim_fiber_switch(&host, f);
}

const sim_contexts sim_fibers = { "fibers", sim_fiber_host, sim_fiber_start, sim_fiber_switch,
                                  sim_fiber_abandon, NULL, NULL, NULL };
