/* The WordPiece tokenizer on arbitrary bytes (invalid UTF-8, NULs, long
 * words, CJK, accents), over a small fixed vocabulary. */
#include "fuzz_util.h"
#include "tokenizer.h"

static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\ngood\nbad\nmovie\n##s\n##ing\n"
                            "a\nb\nc\n##a\n##b\n.\n,\n!\n\xe4\xb8\xad\n\xc3\xa9\nnot\n";
static const eng__tok_config cfg = {
    .lowercase = 1, .strip_accents = 1, .chinese_chars = 1, .max_chars_per_word = 100,
    .unk = "[UNK]", .cls = "[CLS]", .sep = "[SEP]", .pad = "[PAD]",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static eng__tokenizer *tok;
    char err[256];
    if (!tok && eng__tokenizer_init(&tok, vocab, sizeof vocab - 1, &cfg, err, sizeof err) != ENG_OK)
        abort();
    int32_t ids[512];
    int n = 0, truncated = 0;
    /* Both a short and the full window: truncation keeps [SEP] last. */
    eng__tokenize(tok, (const char *)data, size, 8, ids, 512, &n, &truncated);
    eng__tokenize(tok, (const char *)data, size, 512, ids, 512, &n, &truncated);
    return 0;
}
