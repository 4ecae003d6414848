"""bench/python_bench.py: the Python package's speed, one JSON line per run
(bench/python.sh runs it beside the C benchmarks and Debian's PyTorch).

  python_bench.py classify MODEL.eng DEV.tsv [--batch 32] [--threads 2] [--seconds 5]
      Model.classify on the sentences in file order, batch by batch:
      sentences/s (tokenization included).
  python_bench.py stream MODEL.eng DEV.tsv [--concurrency 64] [--threads 2] [--seconds 5]
      closed loop: N Python threads each submit one request to one Scheduler
      and wait for its Future, as infer-bench --mode stream's clients do:
      requests/s.
  python_bench.py torch HF_DIR DEV.tsv [--batch 32] [--threads 2] [--seconds 5]
      the reference forward of ../shared/reference/hfref.py in Debian's
      PyTorch (ids from the engine's tokenizer, MODEL.eng given by --eng):
      sentences/s.
"""
import argparse
import json
import os
import sys
import threading
import time

import libengine


def read_texts(path):
    with open(path, encoding="utf-8") as f:
        return [line.split("\t")[0] for line in f.read().splitlines()[1:]]


def batches(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def timed(seconds, todo, run):
    """Runs run(batch) over the batches in turn, round and round, until
    `seconds` passed: items per second over whole batches."""
    run(todo[0])   # warm-up: contexts, page faults
    n, i, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += run(todo[i])
        i = (i + 1) % len(todo)
    return n / (time.perf_counter() - t0)


def bench_classify(a):
    m = libengine.Model(a.model, threads=a.threads)
    todo = batches(read_texts(a.input), a.batch)
    return {"sequences_per_s": timed(a.seconds, todo, lambda b: len(m.classify(b)))}


def bench_stream(a):
    m = libengine.Model(a.model, threads=a.threads)
    texts = read_texts(a.input)
    stop, counts = threading.Event(), [0] * a.concurrency
    with libengine.Scheduler(m, max_batch_size=a.batch, threads_per_worker=a.threads) as s:
        def client(k):
            i = k * len(texts) // a.concurrency
            while not stop.is_set():
                s.submit(texts[i]).result()
                counts[k] += 1
                i = (i + 1) % len(texts)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.concurrency)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(a.seconds)
        stop.set()
        for t in threads:
            t.join()
        dt = time.perf_counter() - t0
    st = s.stats()
    return {"requests_per_s": sum(counts) / dt, "mean_batch": st["mean_batch"]}


def bench_torch(a):
    import torch
    sys.path.insert(0, a.reference)
    import hfref
    torch.set_num_threads(a.threads)
    ids = libengine.Model(a.eng, threads=1).tokenize(read_texts(a.input))
    # hfref.forward reloads the weights each call; load once and time the
    # forward pass alone, as hfref's forward does it
    cfg = json.load(open(os.path.join(a.model, "config.json")))
    sd = {k: v.float() for k, v in hfref.load_state(a.model).items()}
    fn = hfref.distilbert if cfg["model_type"] == "distilbert" else hfref.bert

    def run(rows):
        S = max(map(len, rows))
        t = torch.zeros(len(rows), S, dtype=torch.long)
        mask = torch.zeros(len(rows), S)
        for r, x in enumerate(rows):
            t[r, :len(x)] = torch.tensor(x)
            mask[r, :len(x)] = 1
        with torch.inference_mode():
            fn(sd, cfg, t, mask)
        return len(rows)

    todo = batches(ids, a.batch)
    return {"sequences_per_s": timed(a.seconds, todo, run),
            "torch": torch.__version__}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["classify", "stream", "torch"])
    p.add_argument("model")
    p.add_argument("input")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--eng", help="torch: the converted model, for its tokenizer")
    p.add_argument("--reference", default=os.path.join(os.path.dirname(__file__), os.pardir,
                                                         os.pardir, "shared", "reference"))
    a = p.parse_args()
    out = {"classify": bench_classify, "stream": bench_stream, "torch": bench_torch}[a.what](a)
    print(json.dumps(dict(out, what=a.what, threads=a.threads)))


if __name__ == "__main__":
    main()
