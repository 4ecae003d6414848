/* The PyTorch checkpoint reader: zip directory, deflate, the pickle VM and
 * the persistent-id storages it points to. */
#include "fuzz_util.h"
#include "source.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    src_tensors s = {0};
    char err[256];
    if (src_load_torch_zip(fuzz_write_file("pytorch_model.bin", data, size), &s, err,
                           sizeof err) == ENG_OK)
        src_free(&s);
    return 0;
}
