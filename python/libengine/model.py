"""Model: a loaded .eng file and the per-thread contexts that compute with it."""
from __future__ import annotations

import ctypes
import os
import sys
import threading
from ctypes import byref, c_char_p, c_int, c_size_t, c_void_p
from typing import Any, Sequence, Union

import numpy as np

from . import _lib
from ._errors import INVALID_ARG, EngineError, error, last_error
from ._lib import ENG_INPUT_IMAGE, ENG_OK, cstr, lib

Text = Union[str, bytes]
ImageInput = Union[str, bytes, bytearray, memoryview, "os.PathLike[str]"]
_ERRORS = ("raise", "return")


class _Handle:
    """Owns one eng_model. Everything that computes with the model (contexts,
    schedulers) holds a reference, so the model is freed when the last of them
    goes, whatever order the user drops them in."""

    __slots__ = ("ptr", "__weakref__")

    def __init__(self, ptr: int):
        self.ptr = ptr

    def __del__(self) -> None:
        if self.ptr:
            lib.eng_model_free(self.ptr)
            self.ptr = None


class _Ctx:
    """One eng_ctx, used by one thread only (it lives in a threading.local)."""

    __slots__ = ("ptr", "handle")

    def __init__(self, handle: _Handle, params: _lib.CtxParams):
        out = c_void_p()
        st = lib.eng_ctx_init(handle.ptr, byref(params), byref(out))
        if st != ENG_OK:
            raise last_error(st)
        self.ptr, self.handle = out.value, handle

    def fail(self, st: int) -> EngineError:
        return error(st, lib.eng_ctx_last_error(self.ptr))

    def __del__(self) -> None:
        if getattr(self, "ptr", None):
            lib.eng_ctx_free(self.ptr)
            self.ptr = None


def _texts(texts: Sequence[Text], what: str = "texts") -> list[bytes]:
    """UTF-8 bytes of each text. Strings with lone surrogates are passed on as
    the invalid UTF-8 they encode to, so the library reports them per item
    (ENG_ERR_UTF8) like invalid bytes."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{what} must be a list of strings, not a single "
                        f"{type(texts).__name__} (wrap it in a list)")
    out = []
    for i, t in enumerate(texts):
        if isinstance(t, str):
            out.append(t.encode("utf-8", "surrogatepass"))
        elif isinstance(t, bytes):
            out.append(t)
        else:
            raise TypeError(f"{what}[{i}] is a {type(t).__name__}, not str or bytes")
    return out


def _c_texts(data: list[bytes]) -> tuple[ctypes.Array, list[int]]:
    """A char * array for the library. The C calls take NUL-terminated strings,
    so a text holding a NUL byte cannot be passed whole: it fails alone as an
    invalid argument (returned as its index) and C gets "" in its place."""
    bad = [i for i, b in enumerate(data) if b"\0" in b]
    for i in bad:
        data[i] = b""
    return (c_char_p * len(data))(*data), bad


def _ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


class Model:
    """A model converted by tools/convert, ready to compute.

    >>> with Model("sst2-bert-mini.eng", threads=2) as m:
    ...     m.classify(["a charming journey"])[0]["label"]
    'POSITIVE'

    The model (memory-mapped weights) is shared by every thread; each Python
    thread that computes gets its own context (scratch memory and compute
    threads), created on its first call and freed when the thread ends. All
    compute calls release the GIL. ``device`` is "cpu" or "cuda";
    ``precision`` ("fp32", "tf32", "fp16", "bf16") applies to CUDA.
    """

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None,
                 precision: str = "fp32", device: str = "cpu"):
        if precision not in _lib.PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(_lib.PRECISIONS)}, not {precision!r}")
        if device not in _lib.DEVICES:
            raise ValueError(f"device must be one of {sorted(_lib.DEVICES)}, not {device!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, not {threads!r}")
        self.path = os.fspath(path)
        params = lib.eng_model_default_params()
        params.n_threads = threads or 0
        out = c_void_p()
        st = lib.eng_model_load(os.fsencode(self.path), byref(params), byref(out))
        if st != ENG_OK:
            raise last_error(st)
        self._handle: _Handle | None = _Handle(out.value)
        self._ctx_params = lib.eng_ctx_default_params()
        self._ctx_params.device = _lib.DEVICES[device]
        self._ctx_params.precision = _lib.PRECISIONS[precision]
        self._local = threading.local()
        raw = _lib.ModelInfo()
        lib.eng_model_get_info(out.value, byref(raw))
        self._raw = raw
        self.labels: list[str] = [cstr(lib.eng_model_label(out.value, i))
                                  for i in range(raw.n_labels)]
        self.info: dict[str, Any] = {
            "path": self.path, "arch": cstr(raw.arch),
            "input": "image" if raw.input == ENG_INPUT_IMAGE else "text",
            "weights": cstr(raw.weights), "n_labels": raw.n_labels,
            "image_size": raw.image_size, "hidden": raw.hidden, "layers": raw.layers,
            "heads": raw.heads, "intermediate": raw.intermediate,
            "max_positions": raw.max_positions, "vocab_size": raw.vocab_size,
            "embed_normalize": bool(raw.embed_normalize), "embed_size": raw.embed_size,
            "gemm": cstr(lib.eng_model_gemm_name(out.value)), "isa": cstr(lib.eng_isa_name()),
            "device": device, "precision": precision, "threads": threads,
        }
        self._ctx()   # this thread's context now, so a bad device or precision fails here

    # -- lifetime ----------------------------------------------------------

    def close(self) -> None:
        """Drops this object's hold on the model and this object's contexts.
        The model itself is freed once no Scheduler uses it either. Idempotent."""
        self._handle = None
        self._local = threading.local()   # the old one's contexts go with it

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else self.info["arch"]
        return f"<libengine.Model {self.path!r} {state}>"

    def _ctx(self) -> _Ctx:
        ctx = getattr(self._local, "ctx", None)
        if ctx is None:
            if self._handle is None:
                raise ValueError("the model is closed")
            ctx = self._local.ctx = _Ctx(self._handle, self._ctx_params)
        return ctx

    def _need(self, kind: str) -> None:
        if self.info["input"] != kind:
            raise TypeError(f"{self.info['arch']} takes {self.info['input']}s, not {kind}s")

    # -- text --------------------------------------------------------------

    def tokenize(self, texts: Sequence[Text]) -> list[list[int]]:
        """WordPiece ids of each text, [CLS] and [SEP] included, truncated to the
        model's position limit as classify and embed do."""
        self._need("text")
        data = _texts(texts)
        handle = self._ctx().handle
        cap = self._raw.max_positions
        ids = np.empty(cap, dtype=np.int32)
        n, trunc = c_int(), c_int()
        out = []
        for i, b in enumerate(data):
            st = lib.eng_tokenize(handle.ptr, b, len(b), _ptr(ids), cap, byref(n), byref(trunc))
            if st != ENG_OK:
                raise error(st, lib.eng_last_error(), i)
            out.append(ids[:n.value].tolist())
        return out

    def _item_errors(self, ctx: _Ctx, call_status: int, status: np.ndarray,
                     bad: list[int], errors: str) -> list[EngineError | None]:
        """Per-item exceptions (None where an item succeeded); raises the first
        one when errors == "raise", or the call's own error when no item failed."""
        if errors not in _ERRORS:
            raise ValueError(f"errors must be 'raise' or 'return', not {errors!r}")
        status[bad] = INVALID_ARG
        if call_status != ENG_OK and not status.any():
            raise ctx.fail(call_status)
        errs: list[EngineError | None] = [None] * len(status)
        for i in np.flatnonzero(status):
            msg = "text contains a NUL character" if i in bad else None
            errs[i] = error(int(status[i]), msg, int(i))
        if errors == "raise":
            first = next((e for e in errs if e is not None), None)
            if first is not None:
                raise first
        return errs

    def _classify_out(self, n: int):
        L = max(self._raw.n_labels, 1)
        return (np.empty((n, L), np.float32), np.empty((n, L), np.float32),
                np.empty(n, np.int32), np.zeros(n, np.int32))

    def _classify_result(self, logits, probs, labels, errs, return_numpy, errors):
        failed = [i for i, e in enumerate(errs) if e is not None]
        logits[failed] = np.nan
        labels[failed] = -1
        if return_numpy:
            return (logits, labels, errs) if errors == "return" else (logits, labels)
        return [errs[i] or {"label": self.labels[labels[i]] if self.labels else int(labels[i]),
                            "score": float(probs[i, labels[i]]), "logits": logits[i]}
                for i in range(len(errs))]

    def classify(self, texts: Sequence[Text], return_numpy: bool = False,
                 errors: str = "raise"):
        """Classifies each text.

        Returns a list of ``{"label": str, "score": float, "logits": ndarray}``,
        or with ``return_numpy=True`` the pair ``(logits (n, n_labels) float32,
        labels (n,) int32)``. A text that fails (invalid UTF-8, ...) fails alone:
        with ``errors="raise"`` its EngineError is raised (``.index`` says
        which); with ``errors="return"`` the list holds the exception in its
        place, and the numpy form returns a third element, the list of
        per-item exceptions (None where an item succeeded), with NaN logits and
        label -1 in the failed rows.
        """
        self._need("text")
        data = _texts(texts)
        ctx = self._ctx()
        arr, bad = _c_texts(data)
        logits, probs, labels, status = self._classify_out(len(data))
        st = lib.eng_classify(ctx.ptr, arr, len(data), _ptr(logits), _ptr(probs), _ptr(labels),
                              _ptr(status)) if data else ENG_OK
        errs = self._item_errors(ctx, st, status, bad, errors)
        return self._classify_result(logits, probs, labels, errs, return_numpy, errors)

    def embed(self, texts: Sequence[Text], normalize: bool | None = None,
              out: np.ndarray | None = None, errors: str = "raise"):
        """Sentence embeddings, a float32 array (n, hidden) that the library
        writes into directly (no copy): pooled as the model's
        sentence-transformers config says. ``normalize=None`` keeps the model's
        own choice, True L2-normalises. ``out`` may be a C-contiguous float32
        array of that shape to write into. Errors as in classify; with
        ``errors="return"`` the result is ``(array, per-item errors)``, failed
        rows NaN."""
        self._need("text")
        data = _texts(texts)
        if normalize is False and self._raw.embed_normalize:
            raise ValueError("this model's embeddings are L2-normalised by its own config")
        shape = (len(data), self._raw.hidden)
        if out is None:
            out = np.empty(shape, np.float32)
        elif (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape
              or not out.flags.c_contiguous or not out.flags.writeable):
            raise ValueError(f"out must be a writable C-contiguous float32 array of shape {shape}")
        ctx = self._ctx()
        arr, bad = _c_texts(data)
        status = np.zeros(len(data), np.int32)
        st = lib.eng_embed(ctx.ptr, arr, len(data), _ptr(out), _ptr(status)) if data else ENG_OK
        errs = self._item_errors(ctx, st, status, bad, errors)
        failed = [i for i, e in enumerate(errs) if e is not None]
        out[failed] = np.nan
        if normalize and not self._raw.embed_normalize:
            _l2_normalize(out)
        return (out, errs) if errors == "return" else out

    def encode(self, sentences: Text | Sequence[Text], batch_size: int = 32,
               normalize_embeddings: bool = False, show_progress_bar: bool = False,
               convert_to_numpy: bool = True) -> np.ndarray:
        """sentence-transformers' SentenceTransformer.encode: embeddings of
        ``sentences`` in batches of ``batch_size``, each batch written by the
        library straight into its rows of one (n, hidden) float32 array. A
        single string gives a 1-D array. ``show_progress_bar`` draws a bar on
        stderr when there is more than one batch."""
        if not convert_to_numpy:
            raise ValueError("libengine returns numpy arrays only (convert_to_numpy=True)")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        single = isinstance(sentences, (str, bytes))
        items = [sentences] if single else list(sentences)
        out = np.empty((len(items), self._raw.hidden), np.float32)
        n_batches = (len(items) + batch_size - 1) // batch_size
        bar = _Progress(n_batches, "Batches") if show_progress_bar and n_batches > 1 else None
        for b in range(n_batches):
            lo, hi = b * batch_size, min(len(items), (b + 1) * batch_size)
            self.embed(items[lo:hi], out=out[lo:hi])
            if bar:
                bar.update(b + 1)
        if normalize_embeddings and not self._raw.embed_normalize:
            _l2_normalize(out)
        return out[0] if single else out

    # -- images ------------------------------------------------------------

    def classify_images(self, images: Sequence[ImageInput], return_numpy: bool = False,
                        errors: str = "raise"):
        """Classifies JPEG or PNG images, given as file paths or encoded bytes.
        Results and errors as in classify; a corrupt image fails alone."""
        self._need("image")
        if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike)):
            raise TypeError("images must be a list of paths or bytes (wrap one in a list)")
        items = list(images)
        paths = all(isinstance(x, (str, os.PathLike)) for x in items)
        data = []
        for i, x in enumerate(items):
            if isinstance(x, (str, os.PathLike)):
                p = os.fsencode(x)
                if paths:
                    data.append(p)
                else:   # mixed with bytes: everything goes in as bytes
                    with open(p, "rb") as f:
                        data.append(f.read())
            elif isinstance(x, (bytes, bytearray, memoryview)):
                data.append(bytes(x))
            else:
                raise TypeError(f"images[{i}] is a {type(x).__name__}, not a path or bytes")
        n = len(data)
        ctx = self._ctx()
        logits, probs, labels, status = self._classify_out(n)
        bad: list[int] = []
        outs = (_ptr(logits), _ptr(probs), _ptr(labels), _ptr(status))
        if not n:
            st = ENG_OK
        elif paths:
            arr, bad = _c_texts(data)
            st = lib.eng_classify_images(ctx.ptr, arr, n, *outs)
        else:
            arr = (c_char_p * n)(*data)
            sizes = (c_size_t * n)(*map(len, data))
            st = lib.eng_classify_image_data(ctx.ptr, arr, sizes, n, *outs)
        errs = self._item_errors(ctx, st, status, bad, errors)
        return self._classify_result(logits, probs, labels, errs, return_numpy, errors)


def _l2_normalize(a: np.ndarray) -> None:
    norms = np.linalg.norm(a, axis=1, keepdims=True)
    np.divide(a, norms, out=a, where=norms > 0)


class _Progress:
    """A one-line progress bar on stderr (Debian has no tqdm by default)."""

    def __init__(self, total: int, what: str):
        self.total, self.what = total, what

    def update(self, done: int) -> None:
        width = 30
        fill = width * done // self.total
        sys.stderr.write(f"\r{self.what}: [{'#' * fill}{'.' * (width - fill)}] "
                         f"{done}/{self.total}" + ("\n" if done == self.total else ""))
        sys.stderr.flush()
