"""Scheduler: the library's dynamic-batching scheduler, with futures."""
from __future__ import annotations

import asyncio
import atexit
import ctypes
import itertools
import os
import threading
import weakref
from concurrent.futures import Future
from ctypes import byref, c_void_p
from typing import Any

import numpy as np

from . import _lib
from ._errors import SHUTDOWN, ShutdownError, error, last_error
from ._lib import ENG_OK, lib
from .model import Model, Text

# Requests in flight, by the key passed to C as the request's user pointer:
# key -> (future, label names, the submitted bytes). The entry keeps the bytes
# alive until the request completes (eng_sched_submit_image does not copy).
_pending: dict[int, tuple[Future, list[str], bytes]] = {}
_keys = itertools.count(1)
# Completions whose key was not pending: a request completed twice or an
# unknown one. The library promises there are none; the tests check it.
_strays: list[int] = []
_on_worker = threading.local()


def _result(r: _lib.SchedResult, names: list[str]) -> Any:
    out = np.empty(r.n_out, np.float32)
    ctypes.memmove(out.ctypes.data, r.out, 4 * r.n_out)
    if r.task == _lib.TASKS["embed"]:
        return out
    return {"label": names[r.label] if names else r.label,
            "score": float(r.probs[r.label]), "logits": out}


@_lib.SCHED_DONE_FN
def _done(res: ctypes._Pointer) -> None:
    """Runs on a scheduler worker (or its timer) thread, with the GIL taken by
    ctypes for the call. Exceptions cannot cross into C: all are caught."""
    r = res.contents
    entry = _pending.pop(r.user, None)
    if entry is None:
        _strays.append(r.user)
        return
    fut, names, _ = entry
    _on_worker.active = True
    try:
        if r.status == ENG_OK:
            fut.set_result(_result(r, names))
        else:
            fut.set_exception(error(r.status))
    except BaseException as e:   # building the result failed (memory): the future says so
        if not fut.done():
            fut.set_exception(e)
    finally:
        _on_worker.active = False


_live: "weakref.WeakSet[Scheduler]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Worker threads must not call back into an interpreter that is finalising.
    for s in list(_live):
        s.close()


class Scheduler:
    """Dynamic batching shared by any number of Python threads.

    >>> with Scheduler(model, max_batch_size=32) as s:
    ...     s.submit("a charming journey").result()["label"]
    'POSITIVE'

    Requests from every thread are queued and run in batches of up to
    ``max_batch_size`` (``max_wait_us`` > 0 lets a worker wait that long for
    company) by worker threads, each with its own context; the submitting
    thread only tokenizes. ``submit`` returns a concurrent.futures.Future
    resolved with what Model.classify returns per item (a dict) or, for
    task="embed", a float32 array. The Future's callbacks run on a worker
    thread: keep them short, and never close the scheduler from one.

    The scheduler keeps the model alive: closing or dropping the Model while
    the scheduler runs is safe. ``model=None`` runs the library's null model
    (no compute; see include/engine.h), for measuring the scheduler itself.
    """

    def __init__(self, model: Model | None, max_batch_size: int = 32, max_wait_us: int = 0,
                 workers: int | None = None, threads_per_worker: int | None = None,
                 queue_capacity: int = 4096, max_batch_tokens: int | None = None,
                 cpus: str | None = None, bind: bool = True, idle_spin_us: int | None = None):
        params = lib.eng_sched_default_params()
        self._handle = None
        self._names: list[str] = []
        self._image = False
        if model is not None:
            if not isinstance(model, Model):
                raise TypeError(f"model must be a libengine.Model or None, not {type(model).__name__}")
            self._handle = model._ctx().handle   # raises if the model is closed
            self._names = model.labels
            self._image = model.info["input"] == "image"
            params.model = self._handle.ptr
            params.ctx.device = model._ctx_params.device
            params.ctx.precision = model._ctx_params.precision
        params.max_batch_size = max_batch_size
        params.max_wait_us = max_wait_us
        params.n_workers = workers or 0
        params.threads_per_worker = threads_per_worker or 0
        params.queue_capacity = queue_capacity
        params.max_batch_tokens = max_batch_tokens or 0
        params.cpus = cpus.encode() if cpus else None
        params.bind = int(bind)
        if idle_spin_us is not None:
            params.idle_spin_us = idle_spin_us
        out = c_void_p()
        st = lib.eng_sched_create(byref(params), byref(out))
        if st != ENG_OK:
            raise last_error(st)
        self._ptr: int | None = out.value
        self._final: dict[str, Any] = {}
        # Guards _ptr: close() frees the scheduler only once no call that read
        # it is still inside the library.
        self._cv = threading.Condition()
        self._inside = 0
        _live.add(self)

    def submit(self, text: Text | bytes | os.PathLike[str], task: str = "classify",
               priority: int = 0, timeout: float | None = None) -> Future:
        """Queues one text (an encoded image or an image path for an image
        model) and returns its Future. ``priority`` 0 is the most urgent of
        0..3; ``timeout`` (seconds) fails the Future with EngineTimeoutError when
        the request is still queued then. A refused submit raises at once:
        OverloadedError (queue full), ShutdownError (closed), Utf8Error,
        TooLongError, InvalidArgumentError."""
        if task not in _lib.TASKS:
            raise ValueError(f"task must be 'classify' or 'embed', not {task!r}")
        if not isinstance(priority, int) or not 0 <= priority < _lib.SCHED_PRIORITIES:
            raise ValueError(f"priority must be an int in 0..{_lib.SCHED_PRIORITIES - 1}")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (seconds) or None")
        if self._image:
            if isinstance(text, (str, os.PathLike)):
                with open(text, "rb") as f:
                    data = f.read()
            elif isinstance(text, (bytes, bytearray, memoryview)):
                data = bytes(text)
            else:
                raise TypeError(f"an image model takes a path or bytes, not {type(text).__name__}")
        elif isinstance(text, str):
            data = text.encode("utf-8", "surrogatepass")
        elif isinstance(text, bytes):
            data = text
        else:
            raise TypeError(f"text must be str or bytes, not {type(text).__name__}")
        ptr = self._enter()
        key = next(_keys)
        fut: Future = Future()
        fut.set_running_or_notify_cancel()   # a queued request cannot be withdrawn
        _pending[key] = (fut, self._names, data)   # before the submit: it may complete at once
        req = _lib.SchedReq(_lib.TASKS[task], priority,
                            0 if timeout is None else max(1, int(timeout * 1e6)), _done, key)
        submit = lib.eng_sched_submit_image if self._image else lib.eng_sched_submit
        try:
            st = submit(ptr, data, len(data), byref(req), None)
        finally:
            self._leave()
        if st != ENG_OK:
            _pending.pop(key, None)
            raise last_error(st)
        return fut

    async def submit_async(self, text: Text | bytes | os.PathLike[str], task: str = "classify",
                           priority: int = 0, timeout: float | None = None) -> Any:
        """``await s.submit_async(text)`` from asyncio: submit() as an awaitable."""
        return await asyncio.wrap_future(self.submit(text, task, priority, timeout))

    def stats(self) -> dict[str, Any]:
        """Counters and latency quantiles since the start (eng_sched_get_stats),
        the batch-size histogram as {size: batches}, and the workers' placement.
        A request's counters are updated after its Future resolves; after
        close() has returned this returns the final figures."""
        try:
            ptr = self._enter()
        except ShutdownError:
            return self._final
        try:
            return self._stats(ptr)
        finally:
            self._leave()

    def _enter(self) -> int:
        with self._cv:
            if self._ptr is None:
                raise error(SHUTDOWN, "the scheduler is closed")
            self._inside += 1
            return self._ptr

    def _leave(self) -> None:
        with self._cv:
            self._inside -= 1
            if not self._inside:
                self._cv.notify_all()

    @staticmethod
    def _stats(ptr: int) -> dict[str, Any]:
        s = _lib.SchedStats()
        lib.eng_sched_get_stats(ptr, byref(s))
        w = _lib.SchedWorkerInfo()
        workers = []
        for i in range(lib.eng_sched_n_workers(ptr)):
            if lib.eng_sched_get_worker(ptr, i, byref(w)) == ENG_OK:
                workers.append({"cpus": w.cpus.decode(), "numa_node": w.numa_node,
                                "threads": w.n_threads, "cpu_bound": bool(w.cpu_bound),
                                "mem_bound": bool(w.mem_bound)})

        def q(x: _lib.Quantiles) -> dict[str, float]:
            return {"p50": x.p50, "p95": x.p95, "p99": x.p99, "max": x.max}

        return {name: getattr(s, name) for name in
                ("submitted", "completed", "rejected", "timed_out", "failed", "queued",
                 "batches", "mean_batch")} | {
            "batch_hist": {k: v for k, v in enumerate(s.batch_hist) if v},
            "queue_us": q(s.queue_us), "compute_us": q(s.compute_us),
            "workers": workers, "warning": _lib.cstr(lib.eng_sched_warning(ptr))}

    def close(self) -> None:
        """Stops accepting, finishes every accepted request (their Futures
        resolve), joins the workers and frees the scheduler. Idempotent."""
        if getattr(_on_worker, "active", False):
            raise RuntimeError("Scheduler.close() called from a Future callback on a "
                               "scheduler worker thread; close it from another thread")
        with self._cv:
            ptr, self._ptr = self._ptr, None   # new submits fail from here on
            if ptr is None:
                return
            self._cv.wait_for(lambda: not self._inside)
        lib.eng_sched_shutdown(ptr)   # drains; releases the GIL so callbacks can run
        self._final = self._stats(ptr)
        lib.eng_sched_free(ptr)
        self._handle = None
        _live.discard(self)

    def __enter__(self) -> "Scheduler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is None:
            return
        if getattr(_on_worker, "active", False):
            # Dropped inside a callback: free it from a thread of its own.
            threading.Thread(target=self.close, daemon=True).start()
        else:
            self.close()
