/* JPEG/PNG decode and the ImageNet resize + crop, from memory. */
#include "fuzz_util.h"
#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static float chw[3 * 224 * 224];
    char err[256];
    eng__image_load_mem(data, size, NULL, chw, err, sizeof err);
    return 0;
}
