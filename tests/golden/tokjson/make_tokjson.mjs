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
function learn(words, n) {
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
    for (const w of ws) {
      const o = [];
      for (let i = 0; i < w.s.length; i++) {
        if (i + 1 < w.s.length && w.s[i] === a && w.s[i + 1] === b) { o.push(a + b); i++; } else o.push(w.s[i]);
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

// ---- goldens ----
const texts = fs.readFileSync(here + 'texts.txt', 'utf8').split('\n');
if (texts.length && texts[texts.length - 1] === '') texts.pop();
for (const name of ['roberta-like', 'clip-like', 'xlmr-like']) {
  const tok = T.Tokenizer.fromFile(here + name + '/tokenizer.json');
  const out = [];
  for (const line of texts) {
    const byteAt = [0];
    for (const ch of line) byteAt.push(byteAt[byteAt.length - 1] + Buffer.byteLength(ch));
    const e = await tok.encode(line);
    const seq = e.getSequenceIds();
    const spans = e.getOffsets().map(([s, t], i) => seq[i] === null ? [-1, -1] : [byteAt[s], byteAt[t]]);
    out.push(JSON.stringify([e.getIds(), spans]));
  }
  fs.writeFileSync(here + name + '/golden.jsonl', out.join('\n') + '\n');
  console.error(name + ': ' + texts.length + ' texts');
}
