#!/bin/sh
# make_tokenizer_golden.sh: writes tokenizer_hard.txt (hard input texts, one a
# line, controls embedded literally), tokenizer_hard.ids.jsonl (the ids Hugging
# Face's tokenizers library gives them, [CLS] ... [SEP] included) and
# tokenizer_hard.spans.jsonl (their byte offsets, make_tokenizer_spans.mjs), for
# test_tokenizer.
#
#   sh tests/golden/make_tokenizer_golden.sh [MODEL_DIR]
#
# The reference is $ENGINE_SHARED/reference/tokenize.mjs: the Rust crate that
# transformers' fast tokenizers and TEI run, through its npm binding
# (`tokenizers`), installed by $ENGINE_SHARED/reference/setup-peers.sh into
# $PEERS_DIR. Its JavaScript port (tokenize.mjs --js) is run too, and the
# texts where the two disagree are listed on stderr; the last section of the
# texts below holds such strings on purpose (a word-final Greek capital sigma,
# supplementary-plane ideographs, punctuation newer than the library's Unicode
# tables), so the tests pin the library's behaviour where the port differs.
# Texts are split on '\n' only (node's readline would also split on '\r').
set -e
here=$(cd "$(dirname "$0")" && pwd)
shared=${ENGINE_SHARED:-$here/../../../shared}
model=${1:-$shared/models/sst2-bert-mini}
ref=$shared/reference/tokenize.mjs
export PEERS_DIR=${PEERS_DIR:-$HOME/.cache/engine-peers}
if [ ! -d "$PEERS_DIR/node_modules/tokenizers" ]; then
  sh "$shared/reference/setup-peers.sh"
fi

python3 - "$here/tokenizer_hard.txt" <<'EOF'
import sys
T = [
 # accents, case
 "café", "CAFÉ au lait", "naïve résumé", "Ångström", "Zoë and Chloë", "façade déjà vu",
 "Crème Brûlée", "ÉCOLE NORMALE SUPÉRIEURE", "Müller Straße", "São Paulo, Brasil",
 "Dvořák Škoda Łódź", "e\u0301e\u0300 decomposed accents", "A\u030A vs \u00C5 vs \u212B",
 "x\u0301\u0302\u0303\u0304 stacked marks", "\u0301 leading combining mark",
 "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG", "McDonald's iPhone eBay",
 # Turkish, German, Greek final sigma, ligatures, special casing
 "İstanbul", "ISTANBUL ıstanbul", "İi Iı", "DİYARBAKIR", "straße STRASSE ß ẞ",
 "ΟΔΟΣ Σ σ ς", "Ὀδυσσεύς", "ﬁnance ﬂow ﬀ", "Ǆ ǅ ǆ", "ΐ ΰ", "Ω Ω K K",
 # CJK, kana, hangul
 "中文", "我爱北京天安门", "日本語のテキスト", "ひらがなとカタカナ", "한국어 텍스트",
 "mixed中文and English", "漢字かな交じり文", "｢半角｣カタカナ ｶﾀｶﾅ", "\u3400\u4DBF\u9FFF",
 "a\U00020000b", "a\U0002A6DFb", "a\U0002B820b", "a\U0002B920b", "a\U0002F800b",
 "兀\uF900\uFA6A compatibility ideographs", "Ｆｕｌｌｗｉｄｔｈ　ｆｏｒｍｓ １２３！", "，。！？【】",
 # emoji
 "I love it 😀", "😀😃😄", "👍🏽 thumbs", "family 👨\u200d👩\u200d👧\u200d👦 zwj", "flag 🇫🇷🇩🇪",
 "❤️ heart", "a🥰b", "☺ ☹ ✓ ✗",
 # controls, zero-width, spaces
 "tab\there", "cr\rhere", "crlf\r\r", "bell\x07char", "nul\x00char",
 "esc\x1b[31mred", "vt\x0bff\x0cfs\x1c", "del\x7fchar", "c1\x85nel\x9fapc",
 "zero\u200bwidth\u200bspace", "zw\u200cnon\u200djoiner", "word\u2060joiner", "soft\u00adhyphen",
 "bom\ufeffinside", "rtl\u200fmark\u200e", "nbsp\u00a0space", "thin\u2009space\u202fnarrow",
 "ideographic\u3000space", "em\u2003space\u2002en", "ogham\u1680space", "line\u2028sep\u2029para",
 "mmsp\u205fx", "repl\ufffdchar", "private\ue000use", "unassigned\u0378x", "nonchar\uffffx",
 "   leading and trailing   ", "\t\t", "   ", "\x00\x01\x02",
 # long words, numbers
 "a" * 100, "a" * 101, "b" * 150 + " ok", "é" * 100, "é" * 101,
 "supercalifragilisticexpialidocious", "antidisestablishmentarianism",
 "pneumonoultramicroscopicsilicovolcanoconiosis",
 "12345678901234567890123456789012345678901234567890",
 "3.14159265358979 and 2,718,281 and 1e-10", "0x7fffffff 0b1011 -42 +7",
 "x" * 60 + "y" * 60, "日" * 120, "ab" * 55 + ".",
 # scripts
 "Привет, мир! Ёлка", "МОСКВА", "Γειά σου Κόσμε", "مرحبا بالعالم", "שָׁלוֹם עולם",
 "สวัสดีครับ", "नमस्ते दुनिया", "தமிழ்", "ქართული", "Հայերեն", "ᚠᛇᚻ runes",
 "Tiếng Việt có dấu", "Ελληνικά ΆΈΉ", "ꙮ multiocular",
 # punctuation runs, URLs, code
 "!!!???...", "Wait...what?!", "—em–en‐hyphen", "«guillemets» „quotes“ ‘single’",
 "(a)[b]{c}<d>", "hello@example.com", "https://www.example.com/path?q=1&r=2#frag",
 "C:\\Users\\file.txt", "#hashtag @mention $var", "a_b-c.d", "¡Hola! ¿Qué tal?",
 "…ellipsis", "§ ¶ † ‡ • ‰ ′ ″", "x\u2e42y", "x\u2e4fy", "x\u2e52y", "x\U0001E95Ey", "x\u2e50y",
 "don't won't it's", "\"quoted\" 'single'", "a--b---c", "~`^|\\",
 # special tokens
 "[MASK]", "[cls]", "[SEP]x", "x[SEP]", "[CLS] hello [SEP]", "[UNK] [PAD]", "[MASK][MASK]",
 "[[MASK]]", "[MASK ]", "[mask]", "the [MASK] is here", "a[UNK]b", "[SEP\x00]", "[\u00a0MASK]",
 "[MASKED]", "[ MASK ]", "[MASK]é",
 # math, currency, symbols
 "∑ ∫ √ ∞ ≠ ≤ ≥ ± × ÷", "E = mc²", "x₁ + x₂ = ½", "α β γ δ ε", "∀x∃y P(x,y)",
 "$100 €50 £30 ¥1000 ₹500 ₿1", "100% 50°C 30℃", "©®™", "①②③", "Ⅻ ⅻ", "ℌℑℜ 𝔄𝔅 𝐀𝐁𝐂",
 # misc
 "", "a", ".", "it 's a charming and often affecting journey . ", "hello world",
 "Hello, World!", "ÀÁÂÃÄÅ àáâãäå", "ÇçÑñ", "Ǎ ǎ Ǐ ǐ", "ŉ ǰ", "Å", "ﬃ ﬄ ﬅ ﬆ",
 "x\u0345y iota subscript", "Ä\u0308 double diaeresis", "\u1100\u1161\u11a8 jamo", "각 Hangul",
 # where the JavaScript port (tokenize.mjs --js) differs from the library:
 # word-final capital sigma (the port lowercases it to a final sigma),
 "ΟΔΟΣ", "ΟΔΟΣ.", "ΣΟΦΟΣ ΑΝΘΡΩΠΟΣ", "ΑΣ", "ΌΣΟΣ ΜΑΣ", "αΣ", "ΑΣ1", "ΑΣ-Β", "ΟΔΟΣ\u0301", "ἈΣ",
 "ΙΗΣΟΥΣ ΧΡΙΣΤΟΣ",
 # supplementary-plane ideographs (the port spaces only BMP ones),
 "x\U0002B81Dy", "x\U0002CEA1y",
 # and punctuation or marks newer than the library's Unicode tables.
 "x\u2e53y", "x\u2e5dy", "x\u2e4ey", "x\U00010F55y", "x\U00011FFFy", "x\U00016FE2y",
 "x\U0001E95Fy", "x\u1DFAy", "x\U0001E08Fy", "x\U00011F43y", "x\u0890y",
]
seen = set(); out = []
for t in T:
    assert "\n" not in t, repr(t)
    if t not in seen: seen.add(t); out.append(t)
with open(sys.argv[1], "w", encoding="utf-8", newline="") as f:
    for t in out: f.write(t + "\n")
print(len(out), "texts", file=sys.stderr)
EOF

node "$ref" "$model" < "$here/tokenizer_hard.txt" > "$here/tokenizer_hard.ids.jsonl"
node "$ref" --js "$model" < "$here/tokenizer_hard.txt" | python3 -c '
import sys
texts = open(sys.argv[1], encoding="utf-8", newline="").read().split("\n")[:-1]
lib = open(sys.argv[2]).read().split("\n")[:-1]
port = sys.stdin.read().split("\n")[:-1]
assert len(texts) == len(lib) == len(port), (len(texts), len(lib), len(port))
differ = [t for t, a, b in zip(texts, lib, port) if a != b]
for t in differ: print("the JavaScript port differs on", ascii(t), file=sys.stderr)
print(len(differ), "of", len(texts), "texts differ between the library and its JavaScript port", file=sys.stderr)
' "$here/tokenizer_hard.txt" "$here/tokenizer_hard.ids.jsonl"
echo "wrote $(wc -l < "$here/tokenizer_hard.ids.jsonl") reference id lists" >&2
node "$here/make_tokenizer_spans.mjs" "$model" < "$here/tokenizer_hard.txt" > "$here/tokenizer_hard.spans.jsonl"

# ---- src/text/tokenizer_legacy.h ---------------------------------------------------
# Hugging Face's Rust code takes its punctuation, Mn and control classes from an
# old Unicode table (the unicode_categories crate), while src/text/tokenizer.c asks
# utf8proc (current Unicode). The exceptions are measured, not guessed: every
# code point is run through the Rust tokenizer as "x<c>y" and the class it
# shows (kept in the word, split off as punctuation, or dropped) is compared
# with the class utf8proc's category gives; the differences become the table.
# Regenerate it when utf8proc's Unicode version changes.
work=$(mktemp -d)
cat > "$work/cats.c" <<'EOF'
#include <stdio.h>
#include <utf8proc.h>
/* Prints, per code point without a canonical decomposition, the class
 * tokenizer.c gives it from utf8proc: O(ther), P(unct), D(ropped), S(pace). */
int main(void)
{
    for (utf8proc_int32_t c = 0x80; c <= 0x10FFFF; c++) {
        if (c >= 0xD800 && c <= 0xDFFF) continue;
        utf8proc_int32_t d[8];
        int bc = 0;
        if (utf8proc_decompose_char(c, d, 8, UTF8PROC_DECOMPOSE, &bc) != 1 || d[0] != c) continue;
        const char *cat = utf8proc_category_string(c);
        char k = 'O';
        if (cat[0] == 'P') k = 'P';
        if (!strcmp(cat, "Mn") || !strcmp(cat, "Cc") || !strcmp(cat, "Cf") || !strcmp(cat, "Co")) k = 'D';
        /* tokenizer.c's own cases: U+FFFD is dropped, and CJK ideographs
         * (is_chinese there) are split off just like punctuation. */
        if (c == 0xFFFD) k = 'D';
        if ((c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
            (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
            (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F))
            k = 'P';
        printf("%d %c\n", c, k);
    }
    return 0;
}
EOF
sed -i '1i #include <string.h>' "$work/cats.c"
cc -O2 "$work/cats.c" -o "$work/cats" -lutf8proc
"$work/cats" > "$work/cats.txt"
cat > "$work/classes.mjs" <<'EOF'
import fs from 'fs';
import { createRequire } from 'module';
const { Tokenizer } = createRequire(process.env.PEERS_DIR + '/package.json')('tokenizers');
const tok = Tokenizer.fromFile(process.argv[2] + '/tokenizer.json');
// Kept in the word, "x<c>y" never ends in the word-initial "y"; split off as
// punctuation it is exactly [x, <c>, y]; dropped, it reads as "xy".
const x = tok.tokenToId('x'), y = tok.tokenToId('y');
const xy = (await tok.encode('xy')).getIds().slice(1, -1).join(',');
const lines = fs.readFileSync(process.argv[3], 'utf8').split('\n').filter((l) => l);
const out = [];
for (let i = 0; i < lines.length; i += 10000) {
  const part = lines.slice(i, i + 10000).map((l) => l.split(' '));
  const encs = await tok.encodeBatch(part.map(([c]) => 'x' + String.fromCodePoint(+c) + 'y'));
  encs.forEach((e, j) => {
    const a = e.getIds().slice(1, -1), ids = a.join(',');
    const k = ids === xy ? 'D' : ids === `${x},${y}` ? 'S' : a.length === 3 && a[0] === x && a[2] === y ? 'P' : 'O';
    if (k !== part[j][1] && k !== 'S') out.push(`${part[j][0]} ${k}`);
  });
}
process.stdout.write(out.join('\n') + '\n');
EOF
node "$work/classes.mjs" "$model" "$work/cats.txt" > "$work/diff.txt"
python3 - "$work/diff.txt" "$here/../../src/text/tokenizer_legacy.h" <<'EOF'
import sys
names = {'O': 'LEGACY_OTHER', 'P': 'LEGACY_PUNCT', 'D': 'LEGACY_DROP'}
ranges = []
for line in open(sys.argv[1]):
    if not line.strip(): continue
    c, k = line.split(); c = int(c)
    if ranges and ranges[-1][1] == c - 1 and ranges[-1][2] == k: ranges[-1][1] = c
    else: ranges.append([c, c, k])
with open(sys.argv[2], 'w') as f:
    f.write("/* tokenizer_legacy.h: code points whose class in Hugging Face's Rust tokenizer\n"
            " * (old Unicode tables) differs from utf8proc's category. Generated by\n"
            " * tests/golden/make_tokenizer_golden.sh from the reference; do not edit.\n"
            " * LEGACY_DROP is an Mn mark for Rust (stripped with the accents). */\n")
    f.write("#ifndef ENG_TOKENIZER_LEGACY_H\n#define ENG_TOKENIZER_LEGACY_H\n\n")
    f.write("enum { LEGACY_OTHER = 1, LEGACY_PUNCT, LEGACY_DROP };\n\n")
    f.write("static const struct { int32_t lo, hi; int cls; } legacy_class_table[] = {\n")
    for lo, hi, k in ranges: f.write("    {0x%05X, 0x%05X, %s},\n" % (lo, hi, names[k]))
    f.write("};\n\n#endif\n")
print(len(ranges), "legacy class ranges", file=sys.stderr)
EOF
rm -rf "$work"
