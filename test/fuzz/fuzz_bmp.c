/* Fuzz target: the BMP decoder alone (decoders/bmp.c), called directly,
   with fuzz_common.h's checks of a decoder. */
#include "../../decoders/decoders.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_decoder(clip_is_bmp, clip_decode_bmp, data, size);
}
