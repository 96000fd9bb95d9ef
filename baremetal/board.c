/* board.c - the start of a Cortex-M4 program on Arm's MPS2 AN386 board (as
   QEMU emulates it, `-M mps2-an386`): the vector table, the reset handler
   (copy .data, clear .bss, switch the FPU on, paint the stack), the fault
   handlers, and the host's console and exit over semihosting.

   Semihosting is called here directly (a BKPT 0xAB with the operation in
   r0 and its argument in r1) rather than through newlib's rdimon: the
   program needs three operations (write a string, exit with a status), and
   rdimon would bring its own start-up code, stdio buffers and a malloc heap
   of its own beside the arena. Without it, newlib gives only the string
   and math functions, and every allocation is visibly the arena's
   (_sbrk below refuses, so a hidden malloc could not quietly succeed).

   The memory regions are the linker script's (mps2-an386.ld). */
#include "board.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------------
   Semihosting */

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define SYS_EXIT_EXTENDED 0x20
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUNTIME_ERROR 0x20023

static int semihost(int op, const void *arg)
{
    int ret;
    __asm__ __volatile__("mov r0, %1\n\tmov r1, %2\n\tbkpt 0xab\n\tmov %0, r0"
                         : "=r"(ret)
                         : "r"(op), "r"(arg)
                         : "r0", "r1", "memory");
    return ret;
}

void board_write(const char *s)
{
    semihost(SYS_WRITE0, s);
}

void board_exit(int status)
{
    /* SYS_EXIT_EXTENDED carries the status itself; where the host lacks
       it, plain SYS_EXIT can still tell success from failure */
    uint32_t block[2];
    block[0] = ADP_STOPPED_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    semihost(SYS_EXIT_EXTENDED, block);
    semihost(SYS_EXIT, (const void *)(uintptr_t)(status ? ADP_STOPPED_RUNTIME_ERROR : ADP_STOPPED_APPLICATION_EXIT));
    for (;;) continue;
}

/* ------------------------------------------------------------------------
   Memory regions (mps2-an386.ld) */

extern unsigned char __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern unsigned char __stack_limit[], __stack_top[], __arena_start[], __arena_end[], __flash_start[], __flash_end[];

#define STACK_PAINT 0xA5C3E10Fu

unsigned char *board_arena(size_t *size)
{
    *size = (size_t)(__arena_end - __arena_start);
    return __arena_start;
}

const unsigned char *board_flash(size_t *size)
{
    *size = (size_t)(__flash_end - __flash_start);
    return __flash_start;
}

size_t board_stack_used(void)
{
    const uint32_t *w = (const uint32_t *)(void *)__stack_limit;
    while ((const unsigned char *)w < __stack_top && *w == STACK_PAINT) w++;
    return (size_t)(__stack_top - (const unsigned char *)w);
}

/* ------------------------------------------------------------------------
   The system calls newlib's C library is linked against

   Its stdio and abort() refer to these, though the library never reaches
   them on this board (platform.c's bare-metal branch refuses files, and
   nothing prints through stdio). Each fails; _exit stops the board.
   newlib's malloc (its printf keeps one for floating-point conversions
   the library never asks for) would grow a heap through _sbrk: there is
   none, every allocation goes to the arena. */

struct stat;
void *_sbrk(ptrdiff_t incr);
int _close(int fd);
int _fstat(int fd, struct stat *st);
int _isatty(int fd);
long _lseek(int fd, long offset, int whence);
int _read(int fd, char *buf, int n);
int _write(int fd, const char *buf, int n);
int _kill(int pid, int sig);
int _getpid(void);
void _exit(int status);

static int no_system(void)
{
    errno = ENOSYS;
    return -1;
}

void *_sbrk(ptrdiff_t incr)
{
    (void)incr;
    errno = ENOMEM;
    return (void *)-1;
}
int _close(int fd) { (void)fd; return no_system(); }
int _fstat(int fd, struct stat *st) { (void)fd; (void)st; return no_system(); }
int _isatty(int fd) { (void)fd; return 0; }
long _lseek(int fd, long offset, int whence) { (void)fd; (void)offset; (void)whence; return no_system(); }
int _read(int fd, char *buf, int n) { (void)fd; (void)buf; (void)n; return no_system(); }
int _write(int fd, const char *buf, int n) { (void)fd; (void)buf; (void)n; return no_system(); }
int _kill(int pid, int sig) { (void)pid; (void)sig; return no_system(); }
int _getpid(void) { return 1; }
void _exit(int status)
{
    board_exit(status ? status : 1); /* abort() exits 1: never a pass */
}

/* ------------------------------------------------------------------------
   Reset and faults */

#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)

static void hex(char *out, uint32_t x)
{
    int i;
    for (i = 0; i < 8; i++) out[i] = "0123456789abcdef"[x >> (28 - 4 * i) & 15];
    out[8] = '\0';
}

/* A fault is a bug, never an answer: say which exception, where, and why,
   then exit with status 3 (the selftest itself exits 0 or 1). frame is the
   stack the exception pushed (r0-r3, r12, lr, pc, xpsr). */
void fault_report(const uint32_t *frame);
void fault_report(const uint32_t *frame)
{
    uint32_t ipsr;
    char h[9];
    __asm__ __volatile__("mrs %0, ipsr" : "=r"(ipsr));
    board_write("FAIL fault: exception ");
    hex(h, ipsr & 0x1FF);
    board_write(h);
    board_write(" at pc 0x");
    hex(h, frame[6]);
    board_write(h);
    board_write(", CFSR 0x");
    hex(h, SCB_CFSR);
    board_write(h);
    board_write(", HFSR 0x");
    hex(h, SCB_HFSR);
    board_write(h);
    board_write("\n");
    board_exit(3);
}

/* The entry of every fault and unexpected exception: hands the stacked
   frame (on the main stack, the only one used) to fault_report. */
__attribute__((naked)) static void fault_handler(void)
{
    __asm__ __volatile__("mrs r0, msp\n\tb fault_report");
}

void reset_handler(void);
void reset_handler(void)
{
    unsigned char *p, *sp;
    /* .data from its copy in flash, .bss cleared */
    memcpy(__data_start, __data_load, (size_t)(__data_end - __data_start));
    memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));
    /* full access to the FPU (coprocessors 10 and 11) before any float
       instruction runs; a board without one ignores the write */
    SCB_CPACR |= 0xFu << 20;
    __asm__ __volatile__("dsb\n\tisb" ::: "memory");
    /* paint the free stack below this frame, for board_stack_used */
    __asm__ __volatile__("mov %0, sp" : "=r"(sp));
    for (p = __stack_limit; p + 4 <= sp - 64; p += 4) *(volatile uint32_t *)(void *)p = STACK_PAINT;
    board_exit(main());
}

/* The vector table (the linker script puts .vectors at address 0): the
   initial stack pointer, then the handlers of exceptions 1 to 15. No
   interrupt is enabled, so none of the device interrupts follows. */
typedef void (*handler)(void);
static const struct {
    void *initial_sp;
    handler exceptions[15];
} vectors __attribute__((section(".vectors"), used)) = {
    __stack_top,
    {reset_handler,  /* 1 reset */
     fault_handler,  /* 2 NMI */
     fault_handler,  /* 3 hard fault */
     fault_handler,  /* 4 memory management */
     fault_handler,  /* 5 bus fault */
     fault_handler,  /* 6 usage fault */
     0, 0, 0, 0,     /* 7-10 reserved */
     fault_handler,  /* 11 SVCall */
     fault_handler,  /* 12 debug monitor */
     0,              /* 13 reserved */
     fault_handler,  /* 14 PendSV */
     fault_handler}  /* 15 SysTick */
};
