"""The ctypes declarations against include/engine.h, and how the package finds
(or fails to find) libengine.so."""
import ctypes
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, ROOT

import libengine
from libengine import _lib

STRUCTS = {"eng_model_params": _lib.ModelParams, "eng_model_info": _lib.ModelInfo,
           "eng_ctx_params": _lib.CtxParams, "eng_sched_params": _lib.SchedParams,
           "eng_sched_result": _lib.SchedResult, "eng_sched_req": _lib.SchedReq,
           "eng_sched_stats": _lib.SchedStats, "eng_sched_worker_info": _lib.SchedWorkerInfo}


def test_status_list_matches_header():
    header = open(os.path.join(ROOT, "include", "engine.h")).read()
    body = header[header.index("#define ENG_STATUS_LIST"):header.index("typedef enum {")]
    assert re.findall(r'X\((ENG_\w+), "([^"]*)"\)', body) == list(_lib.STATUS_LIST)


def test_struct_layouts_match_header(tmp_path):
    """Compiles a C program printing sizeof and every field's offsetof, as the
    C compiler lays the header's structures out, and compares with ctypes."""
    lines, want = [], []
    for cname, st in STRUCTS.items():
        lines.append(f'printf("%zu\\n", sizeof({cname}));')
        want.append(ctypes.sizeof(st))
        for field, *_ in st._fields_:
            lines.append(f'printf("%zu\\n", offsetof({cname}, {field}));')
            want.append(getattr(st, field).offset)
    src = tmp_path / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include \"engine.h\"\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "layout"
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-I", os.path.join(ROOT, "include"), str(src), "-o", str(exe)],
                   check=True)
    got = [int(x) for x in subprocess.run([str(exe)], capture_output=True, check=True,
                                          text=True).stdout.split()]
    assert got == want


def test_loads_the_library_named_by_the_environment():
    assert os.path.samefile(libengine.library_path, os.environ["LIBENGINE_PATH"])
    assert libengine.isa() in ("scalar", "avx2", "avx512", "amx")


def _import_in_subprocess(env_extra, cwd, pythonpath):
    env = {k: v for k, v in os.environ.items() if k not in ("LIBENGINE_PATH", "PYTHONPATH")}
    env.update(env_extra)
    env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-c", "import libengine; print(libengine.library_path)"],
                          capture_output=True, text=True, env=env, cwd=cwd)


def test_missing_library_gives_a_clear_message(tmp_path):
    r = _import_in_subprocess({"LIBENGINE_PATH": str(tmp_path / "nowhere" / "libengine.so")},
                              str(tmp_path), os.path.join(ROOT, "python"))
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "make shared" in r.stderr and "nowhere" in r.stderr


def test_pip_install_carries_the_library(tmp_path):
    """pip install --no-build-isolation (offline, Debian's pip and setuptools)
    puts libengine.so inside the package, which then imports on its own."""
    target, src = tmp_path / "site", tmp_path / "src"
    # from a copy, so the build's leftovers stay out of the source tree
    shutil.copytree(os.path.join(ROOT, "python"), src,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-build-isolation",
                        "--no-deps", "--no-index", "--target", str(target),
                        str(src)],
                       capture_output=True, text=True,
                       env=dict(os.environ, LIBENGINE_PATH=os.path.join(BUILD, "libengine.so")))
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip(f"{sys.executable} has no pip")
    assert r.returncode == 0, r.stderr
    r = _import_in_subprocess({}, str(tmp_path), str(target))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(target / "libengine" / "libengine.so")
