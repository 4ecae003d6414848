/* The tokenizer.json interpreter (src/text/tokjson.c) on arbitrary bytes.
 * The first byte picks the mode: even, the rest is a tokenizer.json
 * (parsing, then tokenizing a few fixed texts and the input itself with
 * whatever it built); odd, the rest is a text tokenized by built-in
 * tokenizers that cover the regex matcher, the normal forms, byte-level BPE,
 * Unigram with Metaspace, WordPiece, added tokens and truncation. */
#include <string.h>

#include "fuzz_util.h"
#include "tokjson.h"

static const char *const builtin[] = {
    /* GPT-2 byte-level BPE, RoBERTa post-processing, an lstrip added token. */
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<s>\",\"special\":true},{\"id\":1,\"content\":\"</s>\",\"special\":true},"
    "{\"id\":9,\"content\":\"<mask>\",\"special\":true,\"lstrip\":true,\"normalized\":false}],"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"use_regex\":true},"
    "\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",1],\"cls\":[\"<s>\",0]},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"<s>\":0,\"</s>\":1,\"a\":2,\"b\":3,\"ab\":4,\"\\u0120\":5,\"\\u0120ab\":6,"
    "\"c\":7,\"\\u0120c\":8,\"<mask>\":9},\"merges\":[\"a b\",\"\\u0120 ab\",\"\\u0120 c\"]}}",
    /* CLIP-like: NFC, Replace, Lowercase, the CLIP split, </w>, a template. */
    "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Replace\","
    "\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"},{\"type\":\"Lowercase\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"'s|'t|[\\\\p{L}]+|[\\\\p{N}]|[^\\\\s\\\\p{L}\\\\p{N}]+\"},\"behavior\":\"Removed\",\"invert\":true},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"S\"}},"
    "{\"Sequence\":{\"id\":\"A\"}},{\"SpecialToken\":{\"id\":\"E\"}}],\"special_tokens\":{\"S\":{\"ids\":[0]},"
    "\"E\":{\"ids\":[1]}}},\"model\":{\"type\":\"BPE\",\"unk_token\":\"?\",\"end_of_word_suffix\":\"</w>\","
    "\"vocab\":{\"?\":0,\"!\":1,\"a\":2,\"a</w>\":3,\"b</w>\":4,\"ab</w>\":5},\"merges\":[[\"a\",\"b</w>\"]]}}",
    /* Unigram with Metaspace, NFKD + StripAccents, byte fallback. */
    "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKD\"},{\"type\":\"StripAccents\"},"
    "{\"type\":\"Strip\"},{\"type\":\"Prepend\",\"prepend\":\"x\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\"},"
    "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":true,\"vocab\":[[\"<unk>\",0],[\"\\u2581\",-1],"
    "[\"a\",-2],[\"ab\",-2.5],[\"\\u2581a\",-1.5],[\"<0x41>\",-9],[\"<0xC3>\",-9]]}}",
    /* WordPiece behind BertNormalizer, Whitespace, Punctuation, Digits. */
    "{\"normalizer\":{\"type\":\"BertNormalizer\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Whitespace\"},{\"type\":\"Punctuation\"},{\"type\":\"Digits\",\"individual_digits\":true},"
    "{\"type\":\"Split\",\"pattern\":{\"String\":\"a\"},\"behavior\":\"MergedWithNext\"}]},"
    "\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",2],\"cls\":[\"[CLS]\",1]},"
    "\"model\":{\"type\":\"WordPiece\",\"max_input_chars_per_word\":5,"
    "\"vocab\":{\"[UNK]\":0,\"[CLS]\":1,\"[SEP]\":2,\"a\":3,\"##b\":4,\"1\":5}}}",
};
#define N_BUILTIN (sizeof builtin / sizeof *builtin)

static void encode_all(const eng__tokjson *t, const uint8_t *text, size_t len)
{
    static int32_t ids[1024];
    static eng_token_span spans[1024];
    int n, tr;
    /* A short window (truncation) and a long one, with and without spans. */
    eng__tokjson_encode(t, (const char *)text, len, 4, ids, spans, 1024, &n, &tr);
    eng__tokjson_encode(t, (const char *)text, len, 1024, ids, NULL, 1024, &n, &tr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static eng__tokjson *tok[N_BUILTIN];
    char err[256];
    if (!tok[0])
        for (size_t i = 0; i < N_BUILTIN; i++)
            if (eng__tokjson_init(&tok[i], builtin[i], strlen(builtin[i]), err, sizeof err) != ENG_OK) abort();
    if (size < 1) return 0;
    if (data[0] & 1) {
        for (size_t i = 0; i < N_BUILTIN; i++) encode_all(tok[i], data + 1, size - 1);
        return 0;
    }
    eng__tokjson *t;
    if (eng__tokjson_init(&t, (const char *)data + 1, size - 1, err, sizeof err) != ENG_OK) return 0;
    static const char *const texts[] = {"", "a", "Hello, World! 123", "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87  ab ",
                                        "<s><mask></s> \xf0\x9f\x98\x80"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
        encode_all(t, (const uint8_t *)texts[i], strlen(texts[i]));
    encode_all(t, data + 1, size - 1);
    eng__tokjson_free(t);
    return 0;
}
