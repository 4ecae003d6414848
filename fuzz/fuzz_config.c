/* The Hugging Face folder reader: config.json (the input) beside a fixed
 * vocab.txt, then the limit check and the metadata JSON the writer stores. */
#include "fuzz_util.h"
#include "hf_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\n";
    static int have_vocab;
    if (!have_vocab) {
        fuzz_write_file("vocab.txt", (const uint8_t *)vocab, sizeof vocab - 1);
        have_vocab = 1;
    }
    fuzz_write_file("config.json", data, size);
    cv_config c;
    char err[256];
    cv_config_init(&c);
    if (cv_config_read(fuzz_dir(), &c, err, sizeof err) == ENG_OK &&
        cv_config_check_limits(&c, err, sizeof err) == ENG_OK)
        free(cv_config_meta_json(&c));
    cv_config_free(&c);
    return 0;
}
