"""Image models: classify_images and image submits against the command line."""
import numpy as np
import pytest

from conftest import cli

import libengine

# As for text: the command line prints 8 significant digits; ResNet-18's
# logits here are below 10 in magnitude, so printing rounds by at most 5e-7.
CLI_TOL = 1e-6


@pytest.fixture(scope="module")
def model(resnet_path):
    with libengine.Model(resnet_path, threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def want(resnet_path, image_paths):
    return cli(["classify", resnet_path, "--threads", "2"] + image_paths)


def test_paths_and_bytes_equal_cli(model, image_paths, want):
    assert model.info["input"] == "image" and model.labels[0] == "tench"
    by_path = model.classify_images(image_paths)
    data = [open(p, "rb").read() for p in image_paths]
    by_bytes = model.classify_images(data)
    mixed = model.classify_images([image_paths[0], data[1]])
    for got in (by_path, by_bytes, mixed):
        for g, w in zip(got, want):
            assert g["label"] == w["label"]
            np.testing.assert_allclose(g["logits"], w["logits"], rtol=0, atol=CLI_TOL)
    logits, labels = model.classify_images(image_paths, return_numpy=True)
    assert logits.shape == (len(image_paths), 1000)
    np.testing.assert_array_equal(labels, logits.argmax(axis=1))


def test_corrupt_image_fails_alone(model, image_paths, want):
    good = open(image_paths[0], "rb").read()
    got = model.classify_images([good, good[:100], b"", b"not an image"], errors="return")
    np.testing.assert_allclose(got[0]["logits"], want[0]["logits"], rtol=0, atol=CLI_TOL)
    assert all(isinstance(e, libengine.EngineError) for e in got[1:])
    assert isinstance(got[3], libengine.FormatError) and got[3].index == 3
    with pytest.raises(libengine.EngineError):
        model.classify_images([good, b"not an image"])
    with pytest.raises(TypeError):
        model.classify_images(good)   # one image, not a list
    with pytest.raises(TypeError):
        model.classify(["text for an image model"])


def test_scheduler_takes_images(model, image_paths, want):
    with libengine.Scheduler(model, max_batch_size=8) as s:
        futures = [s.submit(open(p, "rb").read()) for p in image_paths]
        futures.append(s.submit(image_paths[0]))   # a path is read here
        bad = s.submit(b"not an image")
        for f, w in zip(futures, want + want[:1]):
            assert f.result()["label"] == w["label"]
            np.testing.assert_allclose(f.result()["logits"], w["logits"], rtol=0, atol=CLI_TOL)
        assert isinstance(bad.exception(timeout=60), libengine.FormatError)
