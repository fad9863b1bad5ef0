#!/usr/bin/env bash
# Runs the libFuzzer targets built in BUILD (see fuzz/CMakeLists.txt), each
# for SECONDS, starting from its checked-in seeds (fuzz/corpus/NAME) and the
# corpus grown by earlier runs (BUILD/fuzz/corpus/NAME, where new inputs go;
# the source tree is never written). A crash or failed invariant leaves the
# input in BUILD/fuzz/artifacts/ and makes the script exit 1 after the other
# targets have run.
#
# Usage: fuzz/run.sh BUILD SECONDS [TARGET...]   (default: every target)
# A found input can be replayed with: BUILD/fuzz/NAME_fuzzer FILE
set -euo pipefail

build=${1:?usage: fuzz/run.sh BUILD SECONDS [TARGET...]}
seconds=${2:?usage: fuzz/run.sh BUILD SECONDS [TARGET...]}
shift 2
src=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$src")
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(url request_proto address host)

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/bin/llvm-symbolizer-14 ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14
fi

passed=0
failed=0
for name in "${targets[@]}"; do
  bin="$build/fuzz/${name}_fuzzer"
  work="$build/fuzz/corpus/$name"
  artifacts="$build/fuzz/artifacts"
  mkdir -p "$work" "$artifacts"
  seeds="$src/corpus/$name"
  if [ "$name" = request_proto ]; then
    # Text-format seeds, encoded to the binary form the target reads.
    seeds="$build/fuzz/seeds/$name"
    mkdir -p "$seeds"
    for t in "$src/corpus/$name"/*.textproto; do
      protoc --proto_path="$root/proto" --encode=fetch.v1.BatchRequest \
        fetch/v1/fetch.proto <"$t" >"$seeds/$(basename "$t" .textproto)"
    done
  fi
  args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
        -max_len=4096 -print_final_stats=1
        -artifact_prefix="$artifacts/$name-")
  [ -f "$src/$name.dict" ] && args+=(-dict="$src/$name.dict")
  echo "fuzz: $name for ${seconds}s" >&2
  if "$bin" "${args[@]}" "$work" "$seeds" >"$build/fuzz/$name.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::new_units_added)' \
      "$build/fuzz/$name.log" | tr '\n' ' ' >&2
    echo >&2
    passed=$((passed + 1))
  else
    tail -n 60 "$build/fuzz/$name.log" >&2
    echo "fuzz: $name FAILED (log: $build/fuzz/$name.log)" >&2
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
