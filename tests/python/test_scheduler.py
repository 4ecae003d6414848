"""Scheduler: futures from many threads, timeouts, overload, drain, lifetime, asyncio."""
import asyncio
import gc
import threading
from concurrent.futures import wait

import numpy as np
import pytest

import libengine
from libengine import scheduler as sched_mod

# Scheduler results come from the same forward pass as Model.classify with a
# different batch; a sequence's result does not depend on its batch, so they
# agree to float rounding of the batch-independent code: exactly, in practice.
# 1e-6 leaves room for a kernel that splits work by batch shape.
TOL = 1e-6


@pytest.fixture(scope="module")
def model(bert_path):
    with libengine.Model(bert_path, threads=1) as m:
        yield m


@pytest.fixture(scope="module")
def reference(model, dev_texts):
    logits, labels = model.classify(dev_texts, return_numpy=True)
    return logits, labels, model.embed(dev_texts[:64])


def test_64_threads_10000_requests(model, dev_texts, reference):
    """64 Python threads submit 10,000 requests (classify and embed) through
    one Scheduler; every future resolves exactly once with its own result."""
    logits, labels, emb = reference
    n_threads, total = 64, 10_000
    done_calls = {}
    futures = {}
    errors = []
    lock = threading.Lock()

    def count(fut):
        with lock:
            done_calls[id(fut)] = done_calls.get(id(fut), 0) + 1

    def client(k, s):
        try:
            for j in range(k, total, n_threads):
                task = "embed" if j % 10 == 0 else "classify"
                text = dev_texts[j % 64] if task == "embed" else dev_texts[j % len(dev_texts)]
                f = s.submit(text, task=task, priority=j % 4)
                f.add_done_callback(count)
                futures[j] = f
                if j % (8 * n_threads) == k:   # wait now and then, like a real client
                    f.result(timeout=60)
        except BaseException as e:   # noqa: BLE001 (reported below)
            errors.append(e)

    with libengine.Scheduler(model, max_batch_size=32) as s:
        strays = len(sched_mod._strays)
        threads = [threading.Thread(target=client, args=(k, s)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        _, not_done = wait(futures.values(), timeout=120)
        assert not not_done
    stats = s.stats()   # final figures: the counters follow the futures
    assert len(futures) == total
    assert stats["completed"] == total and stats["submitted"] == total
    assert stats["failed"] == stats["timed_out"] == stats["rejected"] == 0
    assert sum(stats["batch_hist"].values()) == stats["batches"]
    assert len(sched_mod._strays) == strays
    assert all(done_calls.get(id(f)) == 1 for f in futures.values())
    for j, f in futures.items():
        r = f.result()
        if j % 10 == 0:
            np.testing.assert_allclose(r, emb[j % 64], rtol=0, atol=TOL)
        else:
            i = j % len(dev_texts)
            assert r["label"] == model.labels[labels[i]]
            np.testing.assert_allclose(r["logits"], logits[i], rtol=0, atol=TOL)


def test_overload_is_refused_at_submit(model, dev_texts):
    long_text = " ".join(dev_texts[:40])   # about 500 tokens each: the worker stays busy
    accepted = []
    with libengine.Scheduler(model, max_batch_size=1, workers=1, threads_per_worker=1,
                             queue_capacity=4) as s:
        with pytest.raises(libengine.OverloadedError) as e:
            for _ in range(1000):
                accepted.append(s.submit(long_text))
        assert e.value.status == "ENG_ERR_OVERLOADED"
        assert s.stats()["rejected"] >= 1
    assert all(f.result()["label"] in model.labels for f in accepted)   # close drained them


def test_timeout_while_queued(model, dev_texts):
    long_text = " ".join(dev_texts[:40])
    with libengine.Scheduler(model, max_batch_size=1, workers=1, threads_per_worker=1) as s:
        busy = [s.submit(long_text) for _ in range(20)]
        late = [s.submit(dev_texts[0], timeout=0.001) for _ in range(10)]
        wait(busy + late, timeout=60)
        timed_out = [f for f in late if f.exception() is not None]
        assert timed_out, "no request timed out behind 20 long ones"
        for f in timed_out:
            assert isinstance(f.exception(), libengine.EngineTimeoutError)
            assert isinstance(f.exception(), TimeoutError)
        assert s.stats()["timed_out"] == len(timed_out)
        assert all(f.exception() is None for f in busy)


def test_refused_inputs(model):
    with libengine.Scheduler(model) as s:
        with pytest.raises(libengine.Utf8Error):
            s.submit(b"caf\xc3")
        with pytest.raises(TypeError):
            s.submit(3)
        with pytest.raises(ValueError):
            s.submit("x", task="translate")
        with pytest.raises(ValueError):
            s.submit("x", priority=4)
        with pytest.raises(ValueError):
            s.submit("x", timeout=0)
        assert s.submit("fine").result()["label"] in model.labels
    with pytest.raises(libengine.ShutdownError):
        s.submit("after close")
    with pytest.raises(TypeError):
        libengine.Scheduler("not a model")


def test_close_drains(model, dev_texts):
    s = libengine.Scheduler(model, workers=1, threads_per_worker=1)
    futures = [s.submit(t) for t in dev_texts[:200]]
    s.close()
    assert all(f.done() and f.exception() is None for f in futures)
    s.close()   # idempotent


def test_model_dropped_while_scheduler_lives(bert_path, dev_texts):
    m = libengine.Model(bert_path, threads=1)
    want = m.classify(dev_texts[:8], return_numpy=True)[0]
    s = libengine.Scheduler(m, workers=1, threads_per_worker=1)
    m.close()
    del m
    gc.collect()
    got = np.stack([s.submit(t).result()["logits"] for t in dev_texts[:8]])
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    s.close()
    with pytest.raises(ValueError, match="closed"):
        libengine.Scheduler(_closed_model(bert_path))


def _closed_model(path):
    m = libengine.Model(path, threads=1)
    m.close()
    return m


def test_scheduler_dropped_with_requests_in_flight(model, dev_texts):
    s = libengine.Scheduler(model, workers=1, threads_per_worker=1)
    futures = [s.submit(t) for t in dev_texts[:50]]
    del s
    gc.collect()
    assert all(f.result(timeout=60)["label"] in model.labels for f in futures)


def test_close_from_a_callback_is_refused(model, dev_texts):
    """A Future's callbacks run on a worker thread, which close() would wait
    for: it refuses instead of deadlocking."""
    seen = []
    long_text = " ".join(dev_texts[:40])
    with libengine.Scheduler(model, max_batch_size=1, workers=1, threads_per_worker=1) as s:
        busy = [s.submit(long_text) for _ in range(20)]   # so the callback is added in time
        f = s.submit("x")

        def cb(_):
            try:
                s.close()
            except RuntimeError as e:
                seen.append((threading.current_thread() is threading.main_thread(), e))

        f.add_done_callback(cb)
        f.result()
        wait(busy)
        assert s.submit("still open").result()["label"] in model.labels
    assert len(seen) == 1 and not seen[0][0] and "Future callback" in str(seen[0][1])


def test_asyncio(model, dev_texts, reference):
    logits = reference[0]

    async def main(s):
        return await asyncio.gather(*(s.submit_async(t) for t in dev_texts[:50]))

    with libengine.Scheduler(model) as s:
        results = asyncio.run(main(s))
    np.testing.assert_allclose(np.stack([r["logits"] for r in results]), logits[:50],
                               rtol=0, atol=TOL)


def test_stats(model):
    with libengine.Scheduler(model, max_batch_size=8) as s:
        for f in [s.submit("x") for _ in range(20)]:
            f.result()
        assert s.stats()["submitted"] == 20
    st = s.stats()
    assert st["submitted"] == st["completed"] == 20
    assert st["batches"] >= 3 and max(st["batch_hist"]) <= 8
    assert st["workers"] and st["workers"][0]["threads"] >= 1
    assert set(st["queue_us"]) == {"p50", "p95", "p99", "max"}


def test_null_model():
    """model=None: the library's null model, whose answers include/engine.h fixes:
    "ab cde" is [101, 1002, 1003, 102], classify gives {n_ids, sum % 4096}."""
    with libengine.Scheduler(None, max_batch_size=8) as s:
        r = s.submit("ab cde").result(timeout=60)
        e = s.submit("ab cde", task="embed").result(timeout=60)
    np.testing.assert_array_equal(r["logits"], [4, 2208])
    assert r["label"] == 1   # no label names: the index
    np.testing.assert_array_equal(e, [4, 2208, 101, 102])
