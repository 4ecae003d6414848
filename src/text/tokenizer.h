/* tokenizer.h: the one tokenizer interface of the text models (and of any
 * kind that tokenizes text): either BERT WordPiece tokenization, exactly as
 * Hugging Face's BertTokenizer/BertTokenizerFast (BertNormalizer +
 * BertPreTokenizer + WordPiece + the [CLS] $A [SEP] template) on a fast
 * streaming path, or a tokenizer.json run by the interpreter of tokjson.h
 * (byte-level BPE, Unigram, ...). Both give Hugging Face's ids and offsets. */
#ifndef ENG_TOKENIZER_H
#define ENG_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef struct {
    int lowercase;           /* BertNormalizer lowercase */
    int strip_accents;       /* NFD + drop combining marks (Mn) */
    int chinese_chars;       /* put spaces around CJK ideographs */
    int max_chars_per_word;  /* longer words become [UNK]; HF default 100 */
    const char *unk, *cls, *sep, *pad;   /* special token strings */
} eng__tok_config;

typedef struct eng__tokenizer eng__tokenizer;

/* vocab: tokens joined by '\n' in id order (the "tok.vocab" tensor); a final
 * '\n' is optional. Fails with ENG_ERR_FORMAT when a special token is missing
 * or the vocabulary is empty. */
eng_status eng__tokenizer_init(eng__tokenizer **out, const char *vocab, size_t vocab_len,
                               const eng__tok_config *cfg, char *err, size_t errlen);
/* The interpreter on a tokenizer.json (json[0..len), see tokjson.h; err
 * names an unsupported component). max_len > 0 caps every call's max_len
 * (the model's limit), 0 leaves it to the caller. */
eng_status eng__tokenizer_init_json(eng__tokenizer **out, const char *json, size_t len, int max_len,
                                    char *err, size_t errlen);
void eng__tokenizer_free(eng__tokenizer *tok);
int eng__tokenizer_vocab_size(const eng__tokenizer *tok);
/* The text of token id (*len bytes, not NUL-terminated) and whether it is a
 * special token ([CLS], [SEP], ...); NULL when id is out of range. */
const char *eng__tokenizer_token(const eng__tokenizer *tok, int32_t id, size_t *len, int *special);

/* Writes [CLS] tokens... [SEP] (or what the tokenizer.json's post-processor
 * adds) to ids, truncating to max_len ids in all (the last one stays [SEP];
 * *truncated says so). cap must be >= 2 and max_len <= cap.
 * ENG_ERR_UTF8 for invalid UTF-8 (overlong forms, surrogates, bytes past
 * U+10FFFF, truncated sequences, embedded NUL is allowed as a control char). */
eng_status eng__tokenize(const eng__tokenizer *tok, const char *text, size_t len,
                         int max_len, int32_t *ids, int cap, int *n_ids, int *truncated);
/* The same, also writing each id's source bytes to spans (see eng_token_span
 * in engine.h); spans may be NULL. */
eng_status eng__tokenize_spans(const eng__tokenizer *tok, const char *text, size_t len,
                               int max_len, int32_t *ids, eng_token_span *spans, int cap,
                               int *n_ids, int *truncated);

#endif
