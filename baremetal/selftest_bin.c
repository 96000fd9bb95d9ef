/* selftest_bin.c - a host tool of the bare-metal build: writes the
   self-check's built-in data, decoded, to a file (`selftest_bin OUT`).

   The board's image carries these bytes in flash (selftest_data.S) and runs
   the checks on them there, so its RAM never holds a copy of the weights.
   Decoding on the host with the library's own decoder (which verifies the
   checksum) gives the board exactly the bytes the native build checks. */
#include <stdio.h>
#include <stdlib.h>

#include "../clip.h"
#include "../selftest/selftest.h"

int main(int argc, char **argv)
{
    char err[CLIP_ERR_SIZE];
    size_t size = clip_selftest_data_size();
    unsigned char *data;
    FILE *f;
    int ok;
    if (argc != 2) {
        fprintf(stderr, "usage: selftest_bin OUT\n");
        return 2;
    }
    data = (unsigned char *)malloc(size);
    if (!data) {
        fprintf(stderr, "selftest_bin: out of memory\n");
        return 1;
    }
    if (clip_selftest_decode(data, size, err)) {
        fprintf(stderr, "selftest_bin: the built-in data: %s\n", err);
        free(data);
        return 1;
    }
    f = fopen(argv[1], "wb");
    ok = f && fwrite(data, 1, size, f) == size;
    if (f && fclose(f)) ok = 0;
    free(data);
    if (!ok) {
        fprintf(stderr, "selftest_bin: cannot write %s\n", argv[1]);
        remove(argv[1]); /* no half-written file for make to take as done */
        return 1;
    }
    return 0;
}
