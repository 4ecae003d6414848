/* The .eng loader (eng_model_load) on arbitrary files: header, tensor
 * table, metadata JSON, the tokenizer built from tok.vocab and the weights'
 * finiteness check. The file checksum would refuse almost every mutation
 * before any of that, so the harness writes the right one into the header
 * (the checksum's own refusal is a single comparison, tested in test_format). */
#include <stddef.h>

#include "engine.h"
#include "format.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) abort();
    memcpy(copy, data, size);
    if (size >= sizeof(eng__file_header)) {
        uint64_t sum = eng__file_checksum(copy, size);
        memcpy(copy + offsetof(eng__file_header, checksum), &sum, sizeof sum);
    }
    eng_model *m = NULL;
    if (eng_model_load(fuzz_write_file("m.eng", copy, size), NULL, &m) == ENG_OK)
        eng_model_free(m);
    free(copy);
    return 0;
}
