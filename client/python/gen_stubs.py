#!/usr/bin/python3
"""gen_stubs: the fetch.v1 Python stubs of the fetchd package.

Runs Debian's `protoc` (--python_out) and `grpc_python_plugin` (from
protobuf-compiler-grpc, the gRPC release the server is built with) over
proto/fetch/v1/*.proto and writes the modules flat into OUT (the package's
`fetchd/_proto/` directory), with their `from fetch.v1 import ...` lines made
package-relative so that no top-level `fetch` package is installed. The
descriptors keep their file names (fetch/v1/fetch.proto) and the services
their names (fetch.v1.FetchService), so nothing on the wire changes.

Used by setup.py (pip install) and client/python/CMakeLists.txt (the build
tree's copy for the tests). Stdlib only; the output is never committed.

  gen_stubs.py --proto-dir proto --out build/.../fetchd/_proto
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

PROTOS = ("fetch.proto", "config.proto", "websocket.proto")
# Imports between the generated modules, e.g.
#   from fetch.v1 import fetch_pb2 as fetch_dot_v1_dot_fetch__pb2
_IMPORT = re.compile(r"^from fetch\.v1 import ", re.MULTILINE)


class StubError(Exception):
    """protoc or the plugin is missing or failed; the message says which."""


def find_tool(name, override):
    path = override or shutil.which(name)
    if not path or not os.access(path, os.X_OK):
        raise StubError(
            f"{name} not found: apt-get install protobuf-compiler "
            "protobuf-compiler-grpc (scripts/install-deps.sh)")
    return path


def generate(proto_dir, out, protoc=None, plugin=None):
    """Writes the stubs of PROTOS under proto_dir/fetch/v1 into out."""
    protoc = find_tool("protoc", protoc)
    plugin = find_tool("grpc_python_plugin", plugin)
    sources = [os.path.join("fetch", "v1", p) for p in PROTOS]
    for src in sources:
        if not os.path.isfile(os.path.join(proto_dir, src)):
            raise StubError(f"{os.path.join(proto_dir, src)} not found")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fetchd-stubs.") as tmp:
        cmd = [protoc, f"--proto_path={proto_dir}", f"--python_out={tmp}",
               f"--pyi_out={tmp}",
               f"--grpc_python_out={tmp}",
               f"--plugin=protoc-gen-grpc_python={plugin}", *sources]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise StubError(f"{' '.join(cmd)}: {done.stderr.strip()}")
        generated = os.path.join(tmp, "fetch", "v1")
        for name in sorted(os.listdir(generated)):
            if not name.endswith((".py", ".pyi")):
                continue
            with open(os.path.join(generated, name)) as f:
                text = _IMPORT.sub("from . import ", f.read())
            # Write then rename, so that a reader never sees half a module.
            target = os.path.join(out, name)
            with open(target + ".tmp", "w") as f:
                f.write(text)
            os.replace(target + ".tmp", target)
    init = os.path.join(out, "__init__.py")
    if not os.path.exists(init):
        with open(init, "w") as f:
            f.write('"""Generated fetch.v1 stubs (client/python/gen_stubs.py)."""\n')


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--proto-dir", required=True,
                   help="directory holding fetch/v1/*.proto")
    p.add_argument("--out", required=True,
                   help="where the modules go (the fetchd/_proto directory)")
    p.add_argument("--protoc", help="protoc binary (default: from PATH)")
    p.add_argument("--plugin",
                   help="grpc_python_plugin binary (default: from PATH)")
    args = p.parse_args(argv)
    try:
        generate(args.proto_dir, args.out, args.protoc, args.plugin)
    except StubError as e:
        print(f"gen_stubs: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
