/* tokjson.h: an interpreter for Hugging Face tokenizer.json files (the
 * normalizer -> pre-tokenizer -> model -> post-processor pipeline of the
 * Rust `tokenizers` crate), giving the same ids and offsets.
 *
 * Supported components (anything else is refused by name at init):
 *   normalizers     BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase,
 *                   StripAccents, Replace (String or Regex), Strip, Prepend,
 *                   Precompiled (SentencePiece charsmap), Sequence
 *   pre-tokenizers  BertPreTokenizer, ByteLevel, Metaspace, Split, Whitespace,
 *                   WhitespaceSplit, Punctuation, Digits, Sequence
 *   models          BPE, Unigram, WordPiece
 *   post-processors BertProcessing, RobertaProcessing, TemplateProcessing,
 *                   ByteLevel, Sequence
 *   added_tokens    special or not, lstrip/rstrip/single_word/normalized
 * The decoder is ignored (ids and offsets do not depend on it).
 *
 * Thread safety: an eng__tokjson is immutable after init; encode may run on
 * any number of threads at once. encode allocates its scratch per call. */
#ifndef ENG_TOKJSON_H
#define ENG_TOKJSON_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"

typedef struct eng__tokjson eng__tokjson;

/* Parses tokenizer.json (json[0..len), need not be NUL-terminated).
 * ENG_ERR_UNSUPPORTED names the first unsupported component in err;
 * ENG_ERR_FORMAT for malformed files. */
eng_status eng__tokjson_init(eng__tokjson **out, const char *json, size_t len, char *err,
                             size_t errlen);
void eng__tokjson_free(eng__tokjson *t);

/* One line describing the pipeline, e.g. "normalizer NFC; pre-tokenizer
 * ByteLevel; model BPE (1000 tokens, 744 merges); post-processor
 * RobertaProcessing; 5 added tokens". */
void eng__tokjson_describe(const eng__tokjson *t, char *buf, size_t n);

/* Model vocabulary size including added tokens (the largest id + 1). */
int eng__tokjson_vocab_size(const eng__tokjson *t);
/* The text of token id and whether it is a special added token; NULL when
 * id is unknown. */
const char *eng__tokjson_token(const eng__tokjson *t, int32_t id, size_t *len, int *special);
/* The id of a token text (model vocabulary or added token), or -1. */
int32_t eng__tokjson_token_id(const eng__tokjson *t, const char *s, size_t len);

/* Tokenizes text as Tokenizer::encode(text, add_special_tokens=true) with
 * truncation to max_len ids (special tokens included, longest-first from
 * the right as the pipelines do). spans (may be NULL) get each id's byte
 * range in text, {-1,-1} for tokens the post-processor added. cap >= max_len.
 * ENG_ERR_UTF8 for invalid UTF-8; ENG_ERR_NOMEM when scratch memory fails. */
eng_status eng__tokjson_encode(const eng__tokjson *t, const char *text, size_t len, int max_len,
                               int32_t *ids, eng_token_span *spans, int cap, int *n_ids,
                               int *truncated);

#endif
