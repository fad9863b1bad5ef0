"""setuptools glue: build_py also writes the fetch.v1 stubs into the
package (fetchd/_proto), from ../../proto or $FETCHD_PROTO_DIR. Everything
else is in pyproject.toml."""

import os
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gen_stubs  # noqa: E402  (beside this file)


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        proto_dir = os.environ.get("FETCHD_PROTO_DIR") or os.path.join(
            HERE, "..", "..", "proto")
        out = os.path.join(self.build_lib, "fetchd", "_proto")
        try:
            gen_stubs.generate(proto_dir, out)
        except gen_stubs.StubError as e:
            raise SystemExit(f"fetchd: {e}")


setup(cmdclass={"build_py": BuildPyWithStubs})
