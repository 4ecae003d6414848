// tokenize_peer.mjs: the peer of build/tokjson-bench: Hugging Face's
// tokenizers library (the Rust crate through its npm binding, `tokenizers`,
// from $PEERS_DIR; see ../shared/reference/setup-peers.sh) on the same texts.
//   node bench/tokenize_peer.mjs TEXTS TOKENIZER.json... [--seconds S] [--reps R]
// Two ways of calling it, each the median of R runs of S seconds: encode()
// one text at a time (what a server does per request), and encodeBatch() of
// all texts at once. TOKENIZERS_PARALLELISM=false keeps the batch on one
// thread, as the C side runs. One JSON object per line.
import fs from 'fs';
import { createRequire } from 'module';
process.env.TOKENIZERS_PARALLELISM = 'false';
const peers = process.env.PEERS_DIR || (process.env.HOME + '/.cache/engine-peers');
const { Tokenizer } = createRequire(peers + '/package.json')('tokenizers');
const args = process.argv.slice(2);
let seconds = 1, reps = 5;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--seconds') seconds = +args[++i];
  else if (args[i] === '--reps') reps = +args[++i];
  else files.push(args[i]);
}
const texts = fs.readFileSync(files[0], 'utf8').split('\n');
if (texts.length && texts[texts.length - 1] === '') texts.pop();
const median = (v) => v.sort((a, b) => a - b)[v.length >> 1];
for (const path of files.slice(1)) {
  const tok = Tokenizer.fromFile(path);
  const one = [], batch = [];
  for (let r = 0; r < reps; r++) {
    let done = 0, t0 = process.hrtime.bigint(), t;
    do {
      for (const s of texts) await tok.encode(s);
      done += texts.length;
    } while ((t = Number(process.hrtime.bigint() - t0) / 1e9) < seconds);
    one.push(done / t);
    done = 0; t0 = process.hrtime.bigint();
    do {
      await tok.encodeBatch(texts);
      done += texts.length;
    } while ((t = Number(process.hrtime.bigint() - t0) / 1e9) < seconds);
    batch.push(done / t);
  }
  console.log(JSON.stringify({ tokenizer: path, texts: texts.length, threads: 1,
    encode_texts_per_s: Math.round(median(one)), encode_batch_texts_per_s: Math.round(median(batch)) }));
}
