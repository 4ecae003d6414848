"""libengine: Python bindings of the libengine inference engine.

    import libengine
    with libengine.Model("sst2-bert-mini.eng") as m:
        print(m.classify(["a charming and often affecting journey"]))
        vectors = m.encode(["first sentence", "second"], normalize_embeddings=True)
        with libengine.Scheduler(m, max_batch_size=32) as s:
            print(s.submit("bleak and desperate").result())

Importing it loads libengine.so: the copy installed with the package, a source
checkout's build/libengine.so, LIBENGINE_PATH, or the system's library path.
"""
from ._errors import (EngineError, EngineIOError, EngineTimeoutError, FormatError,
                      InternalError, InvalidArgumentError, NoDeviceError, NumericError,
                      OutOfMemoryError,
                      OverloadedError, ShutdownError, TooLongError, UnsupportedError, Utf8Error)
from ._lib import cstr as _cstr, lib as _lib_handle
from .model import Model
from .scheduler import Scheduler

__all__ = ["Model", "Scheduler", "EngineError", "EngineIOError", "EngineTimeoutError",
           "FormatError", "InternalError", "InvalidArgumentError", "NoDeviceError", "NumericError",
           "OutOfMemoryError", "OverloadedError", "ShutdownError", "TooLongError",
           "UnsupportedError", "Utf8Error", "isa", "cuda_info", "library_version",
           "library_path"]


def isa() -> str:
    """The instruction set the kernels run with: "scalar", "avx2", "avx512" or "amx" (AVX-512 with the int8 and bf16 GEMMs on AMX tiles)."""
    return _cstr(_lib_handle.eng_isa_name())


def cuda_info() -> str:
    """The CUDA devices the library can use, or why there are none."""
    return _cstr(_lib_handle.eng_cuda_info())


def library_version() -> str:
    """eng_version() of the loaded library, "MAJOR.MINOR.PATCH"."""
    return _cstr(_lib_handle.eng_version())


library_path: str = _lib_handle.path
