/* Fuzz target: the GIF decoder alone (decoders/gif.c), called directly,
   with fuzz_common.h's checks of a decoder. */
#include "../../decoders/decoders.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decoder(clip_is_gif, clip_decode_gif, data, size);
}
