/* selftest.h - the two halves of clip_selftest, for programs of this
   repository only (not part of the API in clip.h).

   clip_selftest decodes its built-in data (a text encoding, compiled in)
   into an allocation and runs every check on that copy. A board keeps the
   decoded bytes in flash instead (baremetal/: a host tool writes them with
   clip_selftest_decode, the board's image carries them) and runs the checks
   on them where they are, so the weights are used in place and RAM holds
   only the activations. Built with -DCLIP_SELFTEST_NO_TEXT (as baremetal/
   is), the text encoding is left out and clip_selftest and
   clip_selftest_decode return -1. */
#ifndef CLIP_SELFTEST_H
#define CLIP_SELFTEST_H

#include <stddef.h>

/* The size of the decoded data in bytes (the size clip_selftest_decode
   fills and clip_selftest_run expects). */
size_t clip_selftest_data_size(void);

/* Where the weights file is within decoded data: its start, and its size
   in *size (for a board to say where its weights are). */
const unsigned char *clip_selftest_weights(const unsigned char *data, size_t *size);

/* Decodes the built-in data into out (size bytes, which must be
   clip_selftest_data_size()) and checks it against its checksum.
   Returns 0, or -1 with a message in err. */
int clip_selftest_decode(unsigned char *out, size_t size, char *err);

/* Every check of clip_selftest on decoded data: the same report lines (the
   first being the data's own: its size and checksum, verified here again),
   the same return value and err. data must be 4-byte aligned: the weights
   and the reference values (float32) are read through float pointers in
   place on a little-endian host, and an unaligned copy is refused rather
   than silently copied into RAM. data is never written. */
int clip_selftest_run(const unsigned char *data, size_t size, void (*report)(void *ctx, const char *line), void *ctx,
                      char *err);

#endif
