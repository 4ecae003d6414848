"""Puts libengine.so into the package when it is built (pip install ./python).

The library comes from LIBENGINE_PATH when set, else from the source tree this
folder sits in (../build/libengine.so, built with `make shared` first when it
is missing). The metadata is in pyproject.toml.
"""
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)


def find_library() -> str:
    env = os.environ.get("LIBENGINE_PATH")
    if env:
        return env
    built = os.path.join(TREE, "build", "libengine.so")
    if not os.path.exists(built) and os.path.exists(os.path.join(TREE, "Makefile")):
        subprocess.run(["make", "-C", TREE, "shared"], check=True)
    if not os.path.exists(built):
        raise SystemExit(f"libengine.so not found at {built}: run `make shared` in the engine's "
                         "source tree, or set LIBENGINE_PATH")
    return built


class BuildPy(build_py):
    def run(self) -> None:
        super().run()
        dest = os.path.join(self.build_lib, "libengine", "libengine.so")
        shutil.copyfile(find_library(), dest)


class BinaryDistribution(Distribution):
    """The wheel carries a native library: tag it for this platform."""

    def has_ext_modules(self) -> bool:
        return True


setup(cmdclass={"build_py": BuildPy}, distclass=BinaryDistribution)
