"""Exceptions: one class per status of include/engine.h's ENG_STATUS_LIST."""
from __future__ import annotations

import builtins

from ._lib import STATUS_LIST, cstr, lib


class EngineError(Exception):
    """A call into libengine failed.

    ``status`` is the status name (``"ENG_ERR_UTF8"``, ...), ``code`` its
    number, ``message`` the library's detail, and ``index`` the position of the
    failing item in its batch (None when the whole call failed).
    """

    status = "ENG_ERR_INTERNAL"

    def __init__(self, message: str, index: int | None = None):
        self.message = message
        self.index = index
        where = f" (item {index})" if index is not None else ""
        super().__init__(f"{self.status}{where}: {message}")

    @property
    def code(self) -> int:
        return _CODES[self.status]


class InvalidArgumentError(EngineError, ValueError):
    status = "ENG_ERR_INVALID_ARG"


class EngineIOError(EngineError, OSError):
    status = "ENG_ERR_IO"


class FormatError(EngineError, ValueError):
    status = "ENG_ERR_FORMAT"


class UnsupportedError(EngineError, ValueError):
    status = "ENG_ERR_UNSUPPORTED"


class OutOfMemoryError(EngineError, MemoryError):
    status = "ENG_ERR_NOMEM"


class Utf8Error(EngineError, ValueError):
    status = "ENG_ERR_UTF8"


class TooLongError(EngineError, ValueError):
    status = "ENG_ERR_TOO_LONG"


class OverloadedError(EngineError):
    status = "ENG_ERR_OVERLOADED"


class EngineTimeoutError(EngineError, builtins.TimeoutError):
    status = "ENG_ERR_TIMEOUT"


class ShutdownError(EngineError, RuntimeError):
    status = "ENG_ERR_SHUTDOWN"


class NoDeviceError(EngineError, RuntimeError):
    status = "ENG_ERR_NO_DEVICE"


class InternalError(EngineError, RuntimeError):
    status = "ENG_ERR_INTERNAL"


class NumericError(EngineError, ArithmeticError):
    status = "ENG_ERR_NUMERIC"


_CODES = {name: code for code, (name, _) in enumerate(STATUS_LIST)}
INVALID_ARG, SHUTDOWN = _CODES["ENG_ERR_INVALID_ARG"], _CODES["ENG_ERR_SHUTDOWN"]
_CLASSES = {cls.status: cls for cls in (
    InvalidArgumentError, EngineIOError, FormatError, UnsupportedError, OutOfMemoryError,
    Utf8Error, TooLongError, OverloadedError, EngineTimeoutError, ShutdownError,
    NoDeviceError, InternalError, NumericError)}
assert set(_CLASSES) == set(_CODES) - {"ENG_OK"}, "one exception class per status"


def error(code: int, message: str | bytes | None = None, index: int | None = None) -> EngineError:
    """The exception for status ``code``; without a message, the status's own text."""
    if code <= 0 or code >= len(STATUS_LIST):
        return InternalError(f"unknown status {code}", index)
    if isinstance(message, bytes):
        message = cstr(message)
    return _CLASSES[STATUS_LIST[code][0]](message or STATUS_LIST[code][1], index)


def last_error(code: int) -> EngineError:
    """The exception for a failed call without an object: eng_last_error() has the detail."""
    return error(code, lib.eng_last_error())
