/* inflate.h - zlib's inflate (RFC 1950 / 1951), as png.c needs it.

   Internal to the library: not installed, not part of the stable API. */
#ifndef CLIP_INFLATE_H
#define CLIP_INFLATE_H

#include <stddef.h>

/* Inflate the zlib stream in[0 .. size) into exactly out_size bytes of out.
   The output is never larger than out_size, whatever the stream says.

   Errors and the checks of the stream's end are those zlib's inflate()
   reports when a caller (Pillow's PNG decoder) hands it the stream in
   pieces and stops as soon as the output is full: the stream ending early
   or running out of input before out is full is an error; once out is
   full, inflate looks on only as far as the end of the piece it was
   reading (invalid codes or block headers there, and a wrong Adler-32 if
   the whole trailer is there, are errors; anything further is ignored).
   The pieces: the stream is the concatenation of chunks ending at
   chunk_ends[0 .. nchunks) (ascending, the last one is size), each handed
   over in pieces of at most `piece` bytes.

   *stop: the end of the piece where the output became full (where the
   reading stopped). Returns 0, or -1 with a message "clip: <what>: ..." in err. */
int clip_inflate_zlib(const unsigned char *in, size_t size, const size_t *chunk_ends, size_t nchunks, size_t piece,
                      unsigned char *out, size_t out_size, size_t *stop, const char *what, char *err);

/* Python's zlib.decompressobj().decompress(in, max_out), as Pillow inflates
   its text chunks and ICC profiles: at most max_out bytes into out, their
   number in *produced, and *state: 0 decoded (a stream cut short is no
   error there), 1 max_out bytes out with input left over (Pillow refuses
   the chunk: "Decompressed Data Too Large"), 2 invalid (zlib.error).
   Returns 0, or -1 (out of memory) with err set. */
int clip_inflate_text(const unsigned char *in, size_t size, unsigned char *out, size_t max_out, size_t *produced,
                      int *state, const char *what, char *err);

#endif
