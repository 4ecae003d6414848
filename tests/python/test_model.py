"""Model: results equal to the command line's, numpy without copies, errors per
item, lifetime, threads and the GIL."""
import gc
import json
import os
import threading
import time

import numpy as np
import pytest

from conftest import SHARED, cli

import libengine
from libengine import _lib

# The command line prints floats with 8 significant digits (%.8g); logits and
# embedding components here are below 10 in magnitude, so printing rounds by at
# most 5e-7. The computation itself is the same code with the same threads
# (a sequence's result never depends on its batch), so nothing else differs.
CLI_TOL = 1e-6
THREADS = 2


@pytest.fixture(scope="module")
def texts(dev_texts):
    return dev_texts[:200]


@pytest.fixture(scope="module")
def model(text_model_path):
    with libengine.Model(text_model_path, threads=THREADS) as m:
        yield m


def test_info_and_labels(model):
    assert model.info["input"] == "text"
    assert model.info["arch"] in ("bert", "distilbert")
    assert model.info["n_labels"] == 2 and model.labels == ["NEGATIVE", "POSITIVE"]
    assert model.info["hidden"] > 0 and model.info["max_positions"] >= 128


def test_tokenize_equals_cli_and_reference(model, text_model_path, texts):
    ids = model.tokenize(texts)
    assert ids == [r["ids"] for r in cli(["tokenize", text_model_path], "\n".join(texts) + "\n")]
    # Hugging Face's own ids of the same sentences (shared/data/sst2/dev.ids.jsonl)
    with open(os.path.join(SHARED, "data", "sst2", "dev.ids.jsonl")) as f:
        ref = [json.loads(next(f)) for _ in texts]
    assert ids == ref


def test_classify_equals_cli(model, text_model_path, texts):
    got = model.classify(texts)
    want = cli(["classify", text_model_path, "--threads", str(THREADS)], "\n".join(texts) + "\n")
    assert len(got) == len(want) == len(texts)
    for g, w in zip(got, want):
        assert g["label"] == w["label"]
        assert g["score"] == pytest.approx(w["score"], abs=CLI_TOL)
        np.testing.assert_allclose(g["logits"], w["logits"], rtol=0, atol=CLI_TOL)


def test_classify_numpy_form(model, texts):
    logits, labels = model.classify(texts, return_numpy=True)
    assert logits.dtype == np.float32 and logits.shape == (len(texts), 2)
    assert labels.shape == (len(texts),)
    np.testing.assert_array_equal(labels, logits.argmax(axis=1))
    rows = model.classify(texts)
    np.testing.assert_array_equal(logits, np.stack([r["logits"] for r in rows]))


def test_embed_equals_cli(model, text_model_path, texts):
    got = model.embed(texts[:50])
    want = cli(["embed", text_model_path, "--threads", str(THREADS)], "\n".join(texts[:50]) + "\n")
    assert got.dtype == np.float32 and got.shape == (50, model.info["hidden"])
    np.testing.assert_allclose(got, np.array([w["embedding"] for w in want]), rtol=0, atol=CLI_TOL)


def test_embed_is_written_by_c_into_the_array(model, texts, monkeypatch):
    """The array returned is the very buffer eng_embed was given: no copy."""
    seen = []
    real = _lib.lib.eng_embed

    def spy(ctx, arr, n, out, status):
        seen.append(out)
        return real(ctx, arr, n, out, status)

    monkeypatch.setattr(_lib.lib, "eng_embed", spy)
    emb = model.embed(texts[:8])
    assert seen == [emb.__array_interface__["data"][0]]
    assert emb.flags.owndata and emb.base is None
    # and into the caller's own array, as encode does batch by batch
    out = np.full((8, model.info["hidden"]), np.nan, np.float32)
    assert model.embed(texts[:8], out=out) is out
    assert seen[-1] == out.__array_interface__["data"][0]
    np.testing.assert_array_equal(out, emb)
    with pytest.raises(ValueError):
        model.embed(texts[:8], out=np.empty((8, 3), np.float32))


def test_encode_as_sentence_transformers(model, texts, capsys):
    ref = model.embed(texts[:70])
    got = model.encode(texts[:70], batch_size=16, show_progress_bar=True)
    np.testing.assert_array_equal(got, ref)
    assert "5/5" in capsys.readouterr().err   # 70 sentences in batches of 16
    unit = model.encode(texts[:70], normalize_embeddings=True)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, rtol=0, atol=1e-6)
    np.testing.assert_allclose(unit, ref / np.linalg.norm(ref, axis=1, keepdims=True),
                               rtol=0, atol=1e-6)
    one = model.encode(texts[0])
    assert one.shape == (model.info["hidden"],)
    np.testing.assert_array_equal(one, ref[0])


def test_bad_items_fail_alone(model, texts):
    batch = [texts[0], b"caf\xc3 \xff", texts[1], "lone \udc80 surrogate", "nul\0inside", texts[2]]
    with pytest.raises(libengine.Utf8Error) as e:
        model.classify(batch)
    assert e.value.index == 1 and e.value.status == "ENG_ERR_UTF8"
    assert "invalid UTF-8" in str(e.value)
    got = model.classify(batch, errors="return")
    good = model.classify([texts[0], texts[1], texts[2]])
    for i, j in ((0, 0), (2, 1), (5, 2)):
        np.testing.assert_array_equal(got[i]["logits"], good[j]["logits"])
    assert isinstance(got[1], libengine.Utf8Error) and isinstance(got[3], libengine.Utf8Error)
    assert isinstance(got[4], libengine.InvalidArgumentError) and got[4].index == 4
    logits, labels, errs = model.classify(batch, return_numpy=True, errors="return")
    assert [e is None for e in errs] == [True, False, True, False, False, True]
    assert np.isnan(logits[1]).all() and labels[1] == -1 and labels[0] >= 0
    emb, errs = model.embed(batch, errors="return")
    assert np.isnan(emb[3]).all() and not np.isnan(emb[2]).any() and errs[3].index == 3


def test_empty_and_wrong_inputs(model):
    assert model.classify([]) == [] and model.tokenize([]) == []
    logits, labels = model.classify([], return_numpy=True)
    assert logits.shape == (0, 2) and labels.shape == (0,)
    assert model.embed([]).shape == (0, model.info["hidden"])
    assert model.encode([]).shape == (0, model.info["hidden"])
    for bad in ("a single string", b"bytes", ["ok", 3], [None], None, 5):
        with pytest.raises(TypeError):
            model.classify(bad)
    with pytest.raises(ValueError):
        model.classify(["x"], errors="ignore")
    with pytest.raises(TypeError):
        model.classify_images(["x.jpg"])   # a text model
    with pytest.raises(libengine.Utf8Error):
        model.tokenize([b"\xff"])


def test_load_errors(tmp_path, bert_path):
    with pytest.raises(libengine.EngineIOError) as e:
        libengine.Model(tmp_path / "absent.eng")
    assert "absent.eng" in e.value.message and isinstance(e.value, OSError)
    bad = tmp_path / "bad.eng"
    bad.write_bytes(b"not a model at all" * 10)
    with pytest.raises(libengine.FormatError):
        libengine.Model(bad)
    with pytest.raises(libengine.UnsupportedError):
        libengine.Model(bert_path, precision="fp16")   # the CPU computes in fp32
    with pytest.raises(ValueError):
        libengine.Model(bert_path, device="tpu")
    if "no usable" in libengine.cuda_info() or "without CUDA" in libengine.cuda_info():
        with pytest.raises(libengine.NoDeviceError):
            libengine.Model(bert_path, device="cuda")


def test_lifetime(bert_path, dev_texts):
    m = libengine.Model(bert_path, threads=1)
    ref = m.classify(dev_texts[:4], return_numpy=True)[0]
    with m:
        pass
    with pytest.raises(ValueError, match="closed"):
        m.classify(dev_texts[:4])
    m.close()   # idempotent
    # contexts of threads that ended are freed with the thread; the model lives
    m2 = libengine.Model(bert_path, threads=1)
    t = threading.Thread(target=m2.classify, args=(dev_texts[:4],))
    t.start()
    t.join()
    del t
    gc.collect()
    np.testing.assert_array_equal(m2.classify(dev_texts[:4], return_numpy=True)[0], ref)


def test_many_threads_share_one_model(bert_path, dev_texts):
    m = libengine.Model(bert_path, threads=1)
    ref = m.classify(dev_texts[:64], return_numpy=True)[0]
    got, errors = {}, []

    def work(k):
        try:
            got[k] = m.classify(dev_texts[k * 8:(k + 1) * 8], return_numpy=True)[0]
        except BaseException as e:   # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    np.testing.assert_array_equal(np.concatenate([got[k] for k in range(8)]), ref)


def test_gil_is_released_during_compute(bert_path, dev_texts):
    """A timer thread keeps ticking while classify computes: it could not if
    the call held the GIL (a ctypes call that did would run to its end)."""
    m = libengine.Model(bert_path, threads=1)
    stamps, stop = [], threading.Event()

    def tick():
        while not stop.is_set():
            stamps.append(time.perf_counter())
            time.sleep(0.001)

    texts = dev_texts * 2
    m.classify(texts[:8])   # the context is made outside the window
    t = threading.Thread(target=tick)
    t.start()
    time.sleep(0.01)
    t0 = time.perf_counter()
    m.classify(texts)
    t1 = time.perf_counter()
    stop.set()
    t.join()
    inside = sum(t0 < s < t1 for s in stamps)
    # at most one tick per millisecond; on a loaded two-core machine far fewer
    # than (t1 - t0) / 1 ms happen, but a held GIL would allow none at all
    assert t1 - t0 > 0.05 and inside >= 10, (t1 - t0, inside)
