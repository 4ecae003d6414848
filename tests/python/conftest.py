"""Shared fixtures of the Python package's tests (tests/python/run.sh runs them)."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ENGINE_BUILD", os.path.join(ROOT, "build"))
SHARED = os.environ.get("ENGINE_SHARED", os.path.join(ROOT, os.pardir, "shared"))
if not os.path.isabs(SHARED):
    SHARED = os.path.join(ROOT, SHARED)
TEXT_MODELS = ["sst2-bert-mini", "sst2-distilbert-mini"]


def model_path(name: str) -> str:
    p = os.path.join(BUILD, "models", name + ".eng")
    if not os.path.exists(p):
        pytest.skip(f"{p} absent (make models; needs {SHARED}/models/{name})")
    return p


def cli(args: list, stdin: str = "") -> list:
    """Runs build/engine and parses its JSON lines."""
    out = subprocess.run([os.path.join(BUILD, "engine")] + args, input=stdin.encode(),
                         capture_output=True, check=True).stdout.decode()
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture(scope="session")
def dev_texts() -> list:
    p = os.path.join(SHARED, "data", "sst2", "dev.tsv")
    if not os.path.exists(p):
        pytest.skip(f"{p} absent")
    with open(p, encoding="utf-8") as f:
        return [line.split("\t")[0] for line in f.read().splitlines()[1:]]


@pytest.fixture(scope="session", params=TEXT_MODELS)
def text_model_path(request) -> str:
    return model_path(request.param)


@pytest.fixture(scope="session")
def bert_path() -> str:
    return model_path("sst2-bert-mini")


@pytest.fixture(scope="session")
def resnet_path(tmp_path_factory) -> str:
    pth = os.path.join(SHARED, "models", "resnet18-random", "resnet18.pth")
    classes = os.path.join(SHARED, "data", "imagenet-sample", "imagenet_classes.txt")
    if not os.path.exists(pth) or not os.path.exists(classes):
        pytest.skip(f"{pth} or {classes} absent")
    out = str(tmp_path_factory.mktemp("models") / "resnet18.eng")
    subprocess.run([os.path.join(BUILD, "convert"), "--arch", "resnet18", "--labels", classes,
                    pth, out], check=True, capture_output=True)
    return out


@pytest.fixture(scope="session")
def image_paths() -> list:
    d = os.path.join(SHARED, "data", "imagenet-sample", "images")
    if not os.path.isdir(d):
        pytest.skip(f"{d} absent")
    return sorted(os.path.join(d, f) for f in os.listdir(d))[:16]
