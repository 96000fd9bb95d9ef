/* board.h - what the bare-metal program needs of the board (board.c): the
   host's console and exit through semihosting, the RAM region of the
   allocation arena, and the stack's high-water mark. */
#ifndef CLIP_BAREMETAL_BOARD_H
#define CLIP_BAREMETAL_BOARD_H

#include <stddef.h>

/* Writes a NUL-terminated string to the host's console. */
void board_write(const char *s);

/* Stops the board: the emulator exits with status (0 pass, non-zero fail). */
void board_exit(int status)
#if defined(__GNUC__)
    __attribute__((noreturn))
#endif
    ;

/* The RAM region given to the allocation arena: its start and size. */
unsigned char *board_arena(size_t *size);

/* The flash region (code and read-only data): its start and size. */
const unsigned char *board_flash(size_t *size);

/* The most stack used so far, in bytes (the region is painted at reset). */
size_t board_stack_used(void);

/* The program's entry, called by the reset handler; its return is the exit status. */
int main(void);

#endif
