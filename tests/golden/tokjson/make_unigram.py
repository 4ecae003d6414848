#!/usr/bin/env python3
"""make_unigram.py: builds xlmr-like/tokenizer.json, a small XLM-RoBERTa-shaped
Unigram tokenizer, for the tokenizer.json interpreter's tests.

    python3 tests/golden/tokjson/make_unigram.py CORPUS.txt

SentencePiece itself (Debian's `sentencepiece`, spm_train) trains a Unigram
model on CORPUS with a small user-defined normalization rule set (some of
NFKC's mappings, from Python's unicodedata, plus a few multi-char rules), so
the model's precompiled_charsmap is a real SentencePiece double array but
small (XLM-R's full nmt_nfkc map is far larger). The tokenizer.json around it
is what transformers' XLMRobertaConverter writes: <s> <pad> </s> <unk>,
the pieces after SentencePiece's first three, <mask>; Precompiled + the
runs-of-spaces Replace; Metaspace; the <s> $A </s> template."""
import base64, json, os, subprocess, sys, tempfile, unicodedata

here = os.path.dirname(os.path.abspath(__file__))
corpus = sys.argv[1]

rules = {}
ranges = [(0xA0, 0x100), (0x2000, 0x2070), (0x2150, 0x2190), (0x2460, 0x24A0), (0x3000, 0x3001),
          (0xFB00, 0xFB07), (0xFF01, 0xFF5F), (0xFF61, 0xFFA0), (0x1D400, 0x1D434)]
for lo, hi in ranges:
    for cp in range(lo, hi):
        c = chr(cp)
        n = unicodedata.normalize('NFKC', c)
        if n != c and unicodedata.category(c) != 'Cn':
            rules[(cp,)] = tuple(ord(x) for x in n)
# Multi-char sources (the graphemes the normalizer looks up whole): a
# letter and a combining accent compose.
for base in 'aeiouAEIOUnNcC':
    for mark in (0x301, 0x300, 0x302, 0x308, 0x303, 0x327):
        s = base + chr(mark)
        n = unicodedata.normalize('NFC', s)
        if len(n) == 1:
            rules[(ord(base), mark)] = (ord(n),)
# Longer outputs and deletions.
rules[(0x2026,)] = (0x2E, 0x2E, 0x2E)     # ... (also NFKC)
rules[(0x00AD,)] = ()                     # soft hyphen removed
rules[(0x200B,)] = ()                     # zero width space removed
rules[(0x09,)] = (0x20,)                  # tab -> space
rules[(0x0A,)] = (0x20,)
with tempfile.TemporaryDirectory() as tmp:
    tsv = os.path.join(tmp, 'rules.tsv')
    with open(tsv, 'w') as f:
        for src, dst in sorted(rules.items()):
            f.write(' '.join('%X' % c for c in src) + '\t' + ' '.join('%X' % c for c in dst) + '\n')
    prefix = os.path.join(tmp, 'm')
    subprocess.run(['spm_train', '--input=' + corpus, '--model_prefix=' + prefix, '--vocab_size=900',
                    '--model_type=unigram', '--normalization_rule_tsv=' + tsv,
                    '--character_coverage=0.995', '--seed_sentencepiece_size=20000',
                    '--num_threads=1', '--minloglevel=2'], check=True, capture_output=True)
    proto = open(prefix + '.model', 'rb').read()

def varint(b, i):
    v = s = 0
    while True:
        x = b[i]; i += 1
        v |= (x & 0x7F) << s; s += 7
        if x < 0x80:
            return v, i

def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        f, t = key >> 3, key & 7
        if t == 0:
            v, i = varint(b, i)
        elif t == 2:
            n, i = varint(b, i); v = b[i:i + n]; i += n
        elif t == 5:
            v = b[i:i + 4]; i += 4
        elif t == 1:
            v = b[i:i + 8]; i += 8
        else:
            raise ValueError('wire type %d' % t)
        yield f, t, v

import struct
pieces, charsmap = [], None
for f, t, v in fields(proto):
    if f == 1:
        p = dict((ff, vv) for ff, tt, vv in fields(v))
        pieces.append((p[1].decode(), struct.unpack('<f', p[2])[0] if 2 in p else 0.0))
    elif f == 3:
        for ff, tt, vv in fields(v):
            if ff == 2:
                charsmap = bytes(vv)
assert charsmap, 'no precompiled_charsmap in the model'
vocab = [['<s>', 0.0], ['<pad>', 0.0], ['</s>', 0.0], ['<unk>', 0.0]]
vocab += [[p, s] for p, s in pieces[3:]]
vocab.append(['<mask>', 0.0])
def added(i, c, **kw):
    d = dict(id=i, content=c, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
    d.update(kw)
    return d
tok = {
    'version': '1.0', 'truncation': None, 'padding': None,
    'added_tokens': [added(0, '<s>'), added(1, '<pad>'), added(2, '</s>'), added(3, '<unk>'),
                     added(len(vocab) - 1, '<mask>', lstrip=True)],
    'normalizer': {'type': 'Sequence', 'normalizers': [
        {'type': 'Precompiled', 'precompiled_charsmap': base64.b64encode(charsmap).decode()},
        {'type': 'Replace', 'pattern': {'Regex': ' {2,}'}, 'content': ' '}]},
    'pre_tokenizer': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True},
    'post_processor': {'type': 'TemplateProcessing',
                       'single': [{'SpecialToken': {'id': '<s>', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                                  {'SpecialToken': {'id': '</s>', 'type_id': 0}}],
                       'pair': [{'SpecialToken': {'id': '<s>', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                                {'SpecialToken': {'id': '</s>', 'type_id': 0}}, {'SpecialToken': {'id': '</s>', 'type_id': 0}},
                                {'Sequence': {'id': 'B', 'type_id': 0}}, {'SpecialToken': {'id': '</s>', 'type_id': 0}}],
                       'special_tokens': {'<s>': {'id': '<s>', 'ids': [0], 'tokens': ['<s>']},
                                          '</s>': {'id': '</s>', 'ids': [2], 'tokens': ['</s>']}}},
    'decoder': {'type': 'Metaspace', 'replacement': '\u2581', 'prepend_scheme': 'always', 'split': True},
    'model': {'type': 'Unigram', 'unk_id': 3, 'vocab': vocab, 'byte_fallback': False},
}
os.makedirs(os.path.join(here, 'xlmr-like'), exist_ok=True)
with open(os.path.join(here, 'xlmr-like', 'tokenizer.json'), 'w') as f:
    json.dump(tok, f, ensure_ascii=False, indent=1)
print('xlmr-like: %d pieces, charsmap %d bytes, %d rules' % (len(vocab), len(charsmap), len(rules)))
