#!/usr/bin/env python3
"""The C++ checks of `make lint`, over a configured build's compile_commands.json.

  lint_cpp.py thread-safety --build build [--jobs N] [DIR...]
      clang++ -fsyntax-only -Wthread-safety -Werror=thread-safety with each
      source's own flags (so -Werror too when the build has FETCHD_WERROR):
      the lock annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED,
      ...) are checked only by clang; g++ ignores them.
  lint_cpp.py tidy --build build [--jobs N] [DIR...]
      clang-tidy with the repo's .clang-tidy; any diagnostic fails.

DIR: the top-level source folders to check (default: service client);
--exclude FILE (repo-relative, repeatable) leaves a file out.
The build must have generated its protobuf headers (`make build` does).
Prints the diagnostics of the files that fail, then one summary line;
exits 1 if any file failed.
"""

import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sources(build, dirs, exclude):
    """(file, directory, arguments) of the C++ sources under REPO/dirs."""
    excluded = {os.path.join(REPO, e) for e in exclude}
    with open(os.path.join(build, "compile_commands.json")) as f:
        entries = json.load(f)
    prefixes = tuple(os.path.join(REPO, d.strip("/")) + "/" for d in dirs)
    seen = set()
    out = []
    for e in entries:
        path = os.path.normpath(os.path.join(e["directory"], e["file"]))
        if not path.startswith(prefixes) or not path.endswith(".cc"):
            continue
        if path in seen or path in excluded:
            continue
        seen.add(path)
        args = e.get("arguments") or shlex.split(e["command"])
        out.append((path, e["directory"], args))
    return sorted(out)


def syntax_only_command(args):
    """The compile command made a clang++ syntax-only thread-safety check."""
    out = ["clang++"]
    skip = False
    # The compiler, and any launcher before it.
    first = next(i for i, a in enumerate(args) if a.startswith("-"))
    for a in args[first:]:
        if skip:
            skip = False
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            skip = True
            continue
        if a in ("-c", "-MD", "-MMD"):
            continue
        out.append(a)
    return out + ["-fsyntax-only", "-Wno-unknown-warning-option",
                  "-Wthread-safety", "-Werror=thread-safety"]


def run(mode, build, path, directory, args):
    if mode == "thread-safety":
        cmd = syntax_only_command(args)
    else:
        cmd = ["clang-tidy", "--quiet", "-p", build, path]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=directory, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    output = proc.stdout
    if mode == "tidy":
        # clang-tidy counts the warnings it suppressed in system headers.
        output = "\n".join(
            line for line in output.splitlines()
            if not line.endswith(" warnings generated.")
            and not line.endswith(" warning generated."))
        failed = proc.returncode != 0 or ": warning: " in output \
            or ": error: " in output
    else:
        failed = proc.returncode != 0
    return path, failed, output.strip(), time.monotonic() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["thread-safety", "tidy"])
    parser.add_argument("dirs", nargs="*", default=["service", "client"])
    parser.add_argument("--build", default="build")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--exclude", action="append", default=[])
    opts = parser.parse_intermixed_args()
    build = os.path.abspath(opts.build)
    files = sources(build, opts.dirs, opts.exclude)
    if not files:
        sys.exit(f"lint_cpp: no sources under {opts.dirs} in "
                 f"{build}/compile_commands.json")

    start = time.monotonic()
    failures = []
    with concurrent.futures.ThreadPoolExecutor(opts.jobs) as pool:
        for path, failed, output, _ in pool.map(
                lambda f: run(opts.mode, build, *f), files):
            if failed:
                failures.append(path)
                print(output or f"{path}: failed with no output", flush=True)
    rel = [os.path.relpath(p, REPO) for p in failures]
    print(f"lint_cpp {opts.mode}: {len(files)} files, {len(failures)} failed"
          f"{' (' + ', '.join(rel) + ')' if rel else ''}, "
          f"{time.monotonic() - start:.0f} s", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
