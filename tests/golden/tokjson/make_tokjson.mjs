// make_tokjson.mjs: the tokenizer.json interpreter's test tokenizers and
// golden ids/offsets (test_tokjson), from Hugging Face's tokenizers library
// itself (the Rust crate, npm binding `tokenizers`, installed by
// $ENGINE_SHARED/reference/setup-peers.sh into $PEERS_DIR).
//
//   sh tests/golden/tokjson/make_tokjson.sh      (runs make_unigram.py, then this)
//
// Writes roberta-like/ (byte-level BPE: ByteLevel pre-tokenizer, RobertaProcessing,
// <mask> with lstrip) and clip-like/ (NFC + whitespace Replace + Lowercase, CLIP's
// Split regex, ByteLevel without regex, BPE with the </w> suffix, a template),
// whose merges are learned here by plain BPE counting on the corpus; then for
// each of roberta-like, clip-like and xlmr-like (make_unigram.py) encodes every
// line of texts.txt with the library and writes golden.jsonl: one
// [ids, spans] per text, spans in BYTES of the UTF-8 text (the binding gives
// code point offsets; converted back here), [-1, -1] for the tokens the
// post-processor adds (the engine's convention).
import fs from 'fs';
import { createRequire } from 'module';
const peers = process.env.PEERS_DIR || (process.env.HOME + '/.cache/engine-peers');
const T = createRequire(peers + '/package.json')('tokenizers');
const here = new URL('.', import.meta.url).pathname;
const corpus = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l.length);
const MERGES = 1500;

// The GPT-2 byte -> char map (the library's byteLevelAlphabet, in byte order).
const byteChar = [];
{
  const keep = (b) => (b >= 33 && b <= 126) || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
  let n = 0;
  for (let b = 0; b < 256; b++) byteChar.push(String.fromCodePoint(keep(b) ? b : 256 + n++));
}

// Plain BPE training: words (arrays of symbols) with counts; the most frequent
// pair (ties: the smaller pair string) merges first.
function learn(words, n, prefix = '') {
  const merges = [];
  const ws = [...words.entries()].map(([w, c]) => ({ s: JSON.parse(w), c }));
  for (let it = 0; it < n; it++) {
    const cnt = new Map();
    for (const w of ws)
      for (let i = 0; i + 1 < w.s.length; i++) {
        const k = w.s[i] + '\u0000' + w.s[i + 1];
        cnt.set(k, (cnt.get(k) || 0) + w.c);
      }
    let best = null, bc = 1;
    for (const [k, c] of cnt) if (c > bc || (c === bc && best !== null && k < best)) { best = k; bc = c; }
    if (best === null) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    const ab = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
    for (const w of ws) {
      const o = [];
      for (let i = 0; i < w.s.length; i++) {
        if (i + 1 < w.s.length && w.s[i] === a && w.s[i + 1] === b) { o.push(ab); i++; } else o.push(w.s[i]);
      }
      w.s = o;
    }
  }
  return merges;
}

function count(words, key) { words.set(key, (words.get(key) || 0) + 1); }

function added(id, content, o = {}) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true, ...o };
}

// ---- roberta-like ----
{
  const pre = T.byteLevelPreTokenizer(false, true);
  const words = new Map();
  for (const line of corpus) for (const [w] of pre.preTokenizeString(line)) count(words, JSON.stringify([...w]));
  const merges = learn(words, MERGES);
  const vocab = { '<s>': 0, '<pad>': 1, '</s>': 2, '<unk>': 3 };
  let id = 4;
  for (const c of byteChar) vocab[c] = id++;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = id++;
  vocab['<mask>'] = id++;
  const tj = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<s>', { normalized: true }), added(1, '<pad>', { normalized: true }),
                   added(2, '</s>', { normalized: true }), added(3, '<unk>', { normalized: true }),
                   added(vocab['<mask>'], '<mask>', { lstrip: true })],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
             fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab,
             merges: merges.map(([a, b]) => a + ' ' + b) },   // the older "a b" form
  };
  fs.mkdirSync(here + 'roberta-like', { recursive: true });
  fs.writeFileSync(here + 'roberta-like/tokenizer.json', JSON.stringify(tj, null, 1));
}

// ---- clip-like ----
{
  const clipRe = "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
  const tj = {
    version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' },
      { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: clipRe }, behavior: 'Removed', invert: true },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: null, decoder: null,
    model: { type: 'BPE', dropout: null, unk_token: '<|endoftext|>', continuing_subword_prefix: '',
             end_of_word_suffix: '</w>', fuse_unk: false, byte_fallback: false, ignore_merges: false,
             vocab: { '<|endoftext|>': 0 }, merges: [] },
  };
  // Words as the pipeline cuts them: normalize + pre-tokenize with the library.
  const probe = T.Tokenizer.fromString(JSON.stringify(tj));
  const norm = probe.getNormalizer(), pre = probe.getPreTokenizer();
  const words = new Map();
  for (const line of corpus)
    for (const [w] of pre.preTokenizeString(norm.normalizeString(line))) {
      const s = [...w];
      s[s.length - 1] += '</w>';
      count(words, JSON.stringify(s));
    }
  const merges = learn(words, MERGES);
  const vocab = {};
  let id = 0;
  for (const c of byteChar) vocab[c] = id++;
  for (const c of byteChar) vocab[c + '</w>'] = id++;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = id++;
  const sot = id++, eot = id++;
  vocab['<|startoftext|>'] = sot;
  vocab['<|endoftext|>'] = eot;
  tj.model.vocab = vocab;
  tj.model.merges = merges;   // the newer ["a", "b"] form
  tj.added_tokens = [added(sot, '<|startoftext|>', { normalized: true }), added(eot, '<|endoftext|>')];
  tj.post_processor = { type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|startoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
             { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<|startoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
           { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } },
           { SpecialToken: { id: '<|endoftext|>', type_id: 1 } }],
    special_tokens: { '<|startoftext|>': { id: '<|startoftext|>', ids: [sot], tokens: ['<|startoftext|>'] },
                      '<|endoftext|>': { id: '<|endoftext|>', ids: [eot], tokens: ['<|endoftext|>'] } } };
  fs.mkdirSync(here + 'clip-like', { recursive: true });
  fs.writeFileSync(here + 'clip-like/tokenizer.json', JSON.stringify(tj, null, 1));
}

// ---- misc: the other components, on texts_hard.txt only ----
// Each pipeline below combines components the three above do not use; their
// vocabularies come from the corpus the same way.
const hex = (b) => '<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>';
function wordsOf(tj, prefix, suffix) {
  const probe = T.Tokenizer.fromString(JSON.stringify(tj));
  const norm = probe.getNormalizer(), pre = probe.getPreTokenizer();
  const words = new Map();
  // Tokens holding U+0000 cannot be read back by cJSON (README "Tokenizers").
  for (const line of corpus.map((l) => l.replaceAll('\u0000', ''))) {
    const n = norm ? norm.normalizeString(line) : line;
    for (const [w] of pre.preTokenizeString(n)) {
      const sym = [...w].map((c, i) => (i ? prefix : '') + c);
      if (suffix) sym[sym.length - 1] += suffix;
      count(words, JSON.stringify(sym));
    }
  }
  return words;
}
function bpeVocab(words, merges, specials, extra, prefix) {
  const vocab = {};
  let id = 0;
  for (const t of specials) vocab[t] = id++;
  for (const t of extra) if (!(t in vocab)) vocab[t] = id++;
  const syms = new Set();
  for (const w of words.keys()) for (const t of JSON.parse(w)) syms.add(t);
  for (const t of [...syms].sort()) if (!(t in vocab)) vocab[t] = id++;
  for (const [a, b] of merges) {
    const ab = a + (prefix && b.startsWith(prefix) ? b.slice(prefix.length) : b);
    if (!(ab in vocab)) vocab[ab] = id++;
  }
  return vocab;
}
function write(name, tj) {
  fs.mkdirSync(here + name, { recursive: true });
  fs.writeFileSync(here + name + '/tokenizer.json', JSON.stringify(tj, null, 1));
}
const BPE = (o) => ({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
                      fuse_unk: false, byte_fallback: false, ignore_merges: false, ...o });
// misc-bpe-fallback: NFKD + StripAccents + Replace(String) + Strip; WhitespaceSplit,
// Punctuation, individual Digits; BPE with byte_fallback; BertProcessing. (No
// continuation prefix here: the library counts a prefix's bytes into the
// offsets of byte-fallback tokens, past the word; misc-bpe-unk has the prefix.)
{
  const tj = { version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'StripAccents' },
      { type: 'Replace', pattern: { String: "''" }, content: '"' }, { type: 'Strip', strip_left: true, strip_right: true }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'Isolated' },
      { type: 'Digits', individual_digits: true }] },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', 2], cls: ['[CLS]', 1] }, decoder: null,
    model: BPE({ vocab: {}, merges: [] }) };
  const words = wordsOf(tj, '', '');
  // Rare symbols are left out so that byte_fallback has work to do.
  for (const [w, c] of words) if (c < 2 && [...w].some((ch) => ch.codePointAt(0) > 0x2ff)) words.delete(w);
  const merges = learn(words, 600);
  const bytes = [];
  for (let b = 0; b < 256; b++) bytes.push(hex(b));
  const vocab = bpeVocab(words, merges, ['[UNK]', '[CLS]', '[SEP]'], bytes, '');
  tj.model = BPE({ vocab, merges, unk_token: '[UNK]', byte_fallback: true });
  tj.added_tokens = [added(0, '[UNK]'), added(1, '[CLS]'), added(2, '[SEP]')];
  write('misc-bpe-fallback', tj);
}
// misc-bpe-unk: NFC + Lowercase; Whitespace + contiguous Digits; BPE on ASCII
// only with a fused unknown, the "##" continuation prefix and the </w> suffix; Sequence[ByteLevel, template with two
// trailing specials]; an added token that must stand as a single word, one with
// rstrip, one normalized.
{
  const tj = { version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }, { type: 'Digits', individual_digits: false }] },
    post_processor: null, decoder: null, model: BPE({ vocab: {}, merges: [] }) };
  const words = wordsOf(tj, '##', '</w>');
  for (const w of [...words.keys()]) if ([...JSON.parse(w).join('')].some((ch) => ch.codePointAt(0) > 0x7e)) words.delete(w);
  const merges = learn(words, 500, '##');
  const vocab = bpeVocab(words, merges, ['<unk>', '[CLS]', '[SEP]', 'film', 'movie', 'Mask'], [], '##');
  tj.model = BPE({ vocab, merges, unk_token: '<unk>', fuse_unk: true, continuing_subword_prefix: '##',
                   end_of_word_suffix: '</w>' });
  tj.added_tokens = [added(0, '<unk>'), added(1, '[CLS]'), added(2, '[SEP]'),
    added(3, 'film', { special: false, single_word: true, normalized: false }),
    added(4, 'movie', { special: false, rstrip: true, normalized: false }),
    added(5, 'Mask', { special: false, normalized: true })];
  tj.post_processor = { type: 'Sequence', processors: [{ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
      { SpecialToken: { id: '[SEP]', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [1], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [2], tokens: ['[SEP]'] } } }] };
  write('misc-bpe-unk', tj);
}
// misc-unigram: NFKC + Replace(Regex) + Prepend; Split(String, MergedWithPrevious),
// Split(Regex, Contiguous), Metaspace(prepend_scheme first, no split); Unigram with
// byte_fallback (the xlmr-like pieces plus byte pieces); RobertaProcessing without trimming.
{
  const x = JSON.parse(fs.readFileSync(here + 'xlmr-like/tokenizer.json', 'utf8'));
  const vocab = x.model.vocab.slice(0, -1);
  for (let b = 0; b < 256; b++) vocab.push([hex(b), -20]);
  const tj = { version: '1.0', truncation: null, padding: null,
    added_tokens: [added(0, '<s>'), added(2, '</s>'), added(3, '<unk>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
      { type: 'Prepend', prepend: '\u2581' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { String: '-' }, behavior: 'MergedWithPrevious', invert: false },
      { type: 'Split', pattern: { Regex: '[0-9]+' }, behavior: 'Contiguous', invert: false },
      { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false }] },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: false, add_prefix_space: true },
    decoder: null, model: { type: 'Unigram', unk_id: 3, vocab, byte_fallback: true } };
  write('misc-unigram', tj);
}
// misc-split: BertNormalizer (no lowercase) + BertPreTokenizer-free Splits with
// MergedWithNext, Isolated with invert and Removed; WordPiece; a template.
{
  const tj = { version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: true, lowercase: false },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: '\\s+' }, behavior: 'MergedWithNext', invert: false },
      { type: 'Split', pattern: { Regex: '[aeiou]+' }, behavior: 'Isolated', invert: true },
      { type: 'Split', pattern: { Regex: '\\p{P}' }, behavior: 'Removed', invert: false }] },
    post_processor: null, decoder: null, model: null };
  const words = wordsOf({ ...tj, model: BPE({ vocab: {}, merges: [] }) }, '##', '');
  const merges = learn(words, 500, '##');
  const v = bpeVocab(words, merges, ['[PAD]', '[UNK]', '[CLS]', '[SEP]'], [], '##');
  tj.model = { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 12, vocab: v };
  tj.added_tokens = [added(0, '[PAD]'), added(1, '[UNK]'), added(2, '[CLS]'), added(3, '[SEP]')];
  tj.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } },
    { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
    pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] } } };
  write('misc-split', tj);
}
// misc-llama3: Llama-3's split pattern ((?i:...), \p{N}{1,3}, lookahead) over
// ByteLevel without its own regex; the roberta-like BPE with ignore_merges.
{
  const r = JSON.parse(fs.readFileSync(here + 'roberta-like/tokenizer.json', 'utf8'));
  const pat = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const tj = { ...r, normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: pat }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { ...r.model, ignore_merges: true } };
  write('misc-llama3', tj);
}

// ---- goldens ----
const texts = fs.readFileSync(here + 'texts.txt', 'utf8').split('\n');
if (texts.length && texts[texts.length - 1] === '') texts.pop();
const hard = fs.readFileSync(here + 'texts_hard.txt', 'utf8').split('\n');
if (hard.length && hard[hard.length - 1] === '') hard.pop();
for (const name of ['roberta-like', 'clip-like', 'xlmr-like', 'misc-bpe-fallback', 'misc-bpe-unk', 'misc-unigram',
                    'misc-split', 'misc-llama3']) {
  const tok = T.Tokenizer.fromFile(here + name + '/tokenizer.json');
  const out = [];
  for (const line of name.startsWith('misc') ? hard : texts) {
    const byteAt = [0];
    for (const ch of line) byteAt.push(byteAt[byteAt.length - 1] + Buffer.byteLength(ch));
    const e = await tok.encode(line);
    const seq = e.getSequenceIds();
    const spans = e.getOffsets().map(([s, t], i) => seq[i] === null ? [-1, -1] : [byteAt[s], byteAt[t]]);
    out.push(JSON.stringify([e.getIds(), spans]));
  }
  fs.writeFileSync(here + name + '/golden.jsonl', out.join('\n') + '\n');
  console.error(name + ': ' + out.length + ' texts');
}
