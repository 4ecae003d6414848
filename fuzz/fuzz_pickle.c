/* The pickle VM alone, on arbitrary bytes, with the budget a 1 MB file gets. */
#include "fuzz_util.h"
#include "pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pk_heap heap = {0};
    const pk_value *v = NULL;
    char err[256];
    pk_load(data, size, pk_budget(1u << 20), &heap, &v, err, sizeof err);
    pk_heap_free(&heap);
    return 0;
}
