/* The safetensors reader: 8-byte header length, JSON header, offsets. */
#include "fuzz_util.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src_tensors s = {0};
    char err[256];
    if (src_load_safetensors(fuzz_write_file("model.safetensors", data, size), &s, err,
                             sizeof err) == ENG_OK)
        src_free(&s);
    return 0;
}
