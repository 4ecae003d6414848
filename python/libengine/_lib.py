"""ctypes declarations of include/engine.h and the loading of libengine.so.

ctypes (standard library) rather than cffi: nothing to compile when the
package installs, so pip needs no C compiler and no Python headers, and a
CDLL call releases the GIL for its whole duration, which is what lets Python
threads run while C computes. The calls cross the boundary once per batch, so
ctypes' per-call cost (about a microsecond) does not show.

The structures below mirror include/engine.h field for field;
tests/python/test_binding.py compares them with the header.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float,
                    c_int, c_int64, c_size_t, c_uint64, c_void_p)

# include/engine.h's ENG_STATUS_LIST, in order: (name, text). The texts are
# compared with eng_status_str() when the library loads, so a library built
# from a different header is refused instead of misreporting errors.
STATUS_LIST = (
    ("ENG_OK", "ok"),
    ("ENG_ERR_INVALID_ARG", "invalid argument"),
    ("ENG_ERR_IO", "i/o error"),
    ("ENG_ERR_FORMAT", "malformed or corrupt data (model file or image)"),
    ("ENG_ERR_UNSUPPORTED", "unsupported model or option"),
    ("ENG_ERR_NOMEM", "out of memory"),
    ("ENG_ERR_UTF8", "invalid UTF-8 in input text"),
    ("ENG_ERR_TOO_LONG", "input too long"),
    ("ENG_ERR_OVERLOADED", "queue full, request rejected"),
    ("ENG_ERR_TIMEOUT", "deadline passed before the request ran"),
    ("ENG_ERR_SHUTDOWN", "scheduler is shutting down"),
    ("ENG_ERR_NO_DEVICE", "requested device is not available"),
    ("ENG_ERR_INTERNAL", "internal error"),
    ("ENG_ERR_NUMERIC", "result is not a finite number"),
)
ENG_OK = 0

ENG_INPUT_TEXT, ENG_INPUT_IMAGE = 0, 1
ENG_DEVICE_CPU, ENG_DEVICE_CUDA = 0, 1
PRECISIONS = {"fp32": 0, "tf32": 1, "fp16": 2, "bf16": 3}
DEVICES = {"cpu": ENG_DEVICE_CPU, "cuda": ENG_DEVICE_CUDA}
TASKS = {"classify": 0, "embed": 1}
SCHED_PRIORITIES = 4
SCHED_MAX_BATCH = 256


class ModelParams(Structure):
    _fields_ = [("n_threads", c_int), ("gemm", c_int)]


class ModelInfo(Structure):
    _fields_ = [("arch", c_char_p), ("input", c_int), ("weights", c_char_p),
                ("n_labels", c_int), ("image_size", c_int), ("hidden", c_int),
                ("layers", c_int), ("heads", c_int), ("intermediate", c_int),
                ("max_positions", c_int), ("vocab_size", c_int),
                ("embed_normalize", c_int), ("embed_size", c_int)]


class CtxParams(Structure):
    _fields_ = [("max_batch_tokens", c_int), ("n_threads", c_int),
                ("max_batch_images", c_int), ("device", c_int),
                ("device_index", c_int), ("precision", c_int)]


class SchedParams(Structure):
    _fields_ = [("model", c_void_p), ("n_workers", c_int), ("threads_per_worker", c_int),
                ("cpus", c_char_p), ("bind", c_int), ("topology", c_char_p),
                ("max_batch_size", c_int), ("max_batch_tokens", c_int),
                ("max_wait_us", c_int64), ("queue_capacity", c_int),
                ("idle_spin_us", c_int), ("null_batch_us", c_int),
                ("null_token_ns", c_int), ("ctx", CtxParams)]


class SchedResult(Structure):
    _fields_ = [("status", c_int), ("task", c_int), ("user", c_void_p),
                ("out", POINTER(c_float)), ("probs", POINTER(c_float)),
                ("n_out", c_int), ("label", c_int), ("n_tokens", c_int),
                ("batch_size", c_int), ("batch_tokens", c_int), ("worker", c_int),
                ("queue_ns", c_int64), ("compute_ns", c_int64)]


SCHED_DONE_FN = CFUNCTYPE(None, POINTER(SchedResult))


class SchedReq(Structure):
    _fields_ = [("task", c_int), ("priority", c_int), ("timeout_us", c_int64),
                ("done", SCHED_DONE_FN), ("user", c_void_p)]


class Quantiles(Structure):
    _fields_ = [("p50", c_double), ("p95", c_double), ("p99", c_double), ("max", c_double)]


class SchedStats(Structure):
    _fields_ = [("submitted", c_uint64), ("completed", c_uint64), ("rejected", c_uint64),
                ("timed_out", c_uint64), ("failed", c_uint64), ("queued", c_uint64),
                ("batches", c_uint64), ("mean_batch", c_double),
                ("batch_hist", c_uint64 * (SCHED_MAX_BATCH + 1)),
                ("queue_us", Quantiles), ("compute_us", Quantiles)]


class SchedWorkerInfo(Structure):
    _fields_ = [("cpus", c_char * 128), ("numa_node", c_int), ("n_threads", c_int),
                ("cpu_bound", c_int), ("mem_bound", c_int)]


# name: (restype, argtypes). Every pointer the package passes is a c_void_p or
# a ctypes array, so the declarations stay loose where numpy buffers go in.
_FUNCTIONS = {
    "eng_version": (c_char_p, []),
    "eng_status_str": (c_char_p, [c_int]),
    "eng_last_error": (c_char_p, []),
    "eng_isa_name": (c_char_p, []),
    "eng_model_default_params": (ModelParams, []),
    "eng_model_load": (c_int, [c_char_p, POINTER(ModelParams), POINTER(c_void_p)]),
    "eng_model_free": (None, [c_void_p]),
    "eng_model_get_info": (None, [c_void_p, POINTER(ModelInfo)]),
    "eng_model_gemm_name": (c_char_p, [c_void_p]),
    "eng_model_label": (c_char_p, [c_void_p, c_int]),
    "eng_tokenize": (c_int, [c_void_p, c_char_p, c_size_t, c_void_p, c_int,
                             POINTER(c_int), POINTER(c_int)]),
    "eng_cuda_info": (c_char_p, []),
    "eng_ctx_default_params": (CtxParams, []),
    "eng_ctx_init": (c_int, [c_void_p, POINTER(CtxParams), POINTER(c_void_p)]),
    "eng_ctx_free": (None, [c_void_p]),
    "eng_ctx_last_error": (c_char_p, [c_void_p]),
    "eng_classify": (c_int, [c_void_p, c_void_p, c_int, c_void_p, c_void_p, c_void_p, c_void_p]),
    "eng_embed": (c_int, [c_void_p, c_void_p, c_int, c_void_p, c_void_p]),
    "eng_classify_images": (c_int, [c_void_p, c_void_p, c_int, c_void_p, c_void_p, c_void_p,
                                    c_void_p]),
    "eng_classify_image_data": (c_int, [c_void_p, c_void_p, c_void_p, c_int, c_void_p, c_void_p,
                                        c_void_p, c_void_p]),
    "eng_sched_default_params": (SchedParams, []),
    "eng_sched_default_req": (SchedReq, []),
    "eng_sched_create": (c_int, [POINTER(SchedParams), POINTER(c_void_p)]),
    "eng_sched_submit": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(SchedReq), c_void_p]),
    "eng_sched_submit_image": (c_int, [c_void_p, c_char_p, c_size_t, POINTER(SchedReq),
                                       c_void_p]),
    "eng_sched_shutdown": (None, [c_void_p]),
    "eng_sched_free": (None, [c_void_p]),
    "eng_sched_get_stats": (None, [c_void_p, POINTER(SchedStats)]),
    "eng_sched_n_workers": (c_int, [c_void_p]),
    "eng_sched_get_worker": (c_int, [c_void_p, c_int, POINTER(SchedWorkerInfo)]),
    "eng_sched_warning": (c_char_p, [c_void_p]),
}

_HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates() -> list[str]:
    """Where libengine.so is looked for, in order."""
    env = os.environ.get("LIBENGINE_PATH")
    if env:
        return [env]   # an explicit choice is never second-guessed
    out = [os.path.join(_HERE, "libengine.so"),   # copied in by pip install
           # a source checkout: python/libengine -> build/libengine.so
           os.path.join(_HERE, os.pardir, os.pardir, "build", "libengine.so")]
    found = ctypes.util.find_library("engine")
    if found:
        out.append(found)
    return out


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (absent)")
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
            continue
        break
    else:
        raise ImportError(
            "libengine: the shared library libengine.so was not found or did not load; "
            "build it with `make shared` (or `make python`) in the engine's source tree, "
            "install the package with `pip install ./python`, or point LIBENGINE_PATH at it. "
            "Tried: " + "; ".join(tried))
    for name, (res, args) in _FUNCTIONS.items():
        fn = getattr(lib, name, None)
        if fn is None:
            raise ImportError(f"libengine: {path} lacks {name}(); it was built from another "
                              "version of include/engine.h")
        fn.restype, fn.argtypes = res, args
    for code, (name, text) in enumerate(STATUS_LIST):
        got = lib.eng_status_str(code)
        if got is None or got.decode() != text:
            raise ImportError(f"libengine: {path} describes status {code} ({name}) as {got!r}, "
                              f"not {text!r}; it was built from another version of "
                              "include/engine.h")
    lib.path = path
    return lib


lib = _load()


def cstr(p: bytes | None) -> str:
    return p.decode("utf-8", "replace") if p else ""
