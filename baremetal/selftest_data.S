/* selftest_data.S - the self-check's decoded data (selftest_data.bin,
   written by selftest_bin on the host) as read-only data of the board's
   image: the linker script puts .rodata in flash, and main.c runs the
   checks on it there (clip_selftest_run), the weights used in place.

   Aligned: the library reads the weights and the reference values in
   place only at a multiple of 4 (64 costs nothing and would suit a port
   with wider vector loads). The assembler looks for the file from make's
   directory, the repository's root. */
    .section .rodata.selftest_flash, "a"
    .balign 64
    .global selftest_flash_data
    .type selftest_flash_data, %object
selftest_flash_data:
    .incbin "baremetal/selftest_data.bin"
    .global selftest_flash_end
selftest_flash_end:
    .size selftest_flash_data, selftest_flash_end - selftest_flash_data
