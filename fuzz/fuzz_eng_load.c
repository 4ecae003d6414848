/* The .eng loader (eng_model_load) on arbitrary files: header, tensor
 * table, checksums, metadata JSON and the tokenizer built from tok.vocab. */
#include "engine.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    eng_model *m = NULL;
    if (eng_model_load(fuzz_write_file("m.eng", data, size), NULL, &m) == ENG_OK)
        eng_model_free(m);
    return 0;
}
