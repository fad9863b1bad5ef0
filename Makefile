# fetchd — the two commands: `make run` and `make test`.
# Both install missing Debian packages first (scripts/install-deps.sh), and
# the pinned npm deployment tools into .tools/ (scripts/install-tools.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
BENCH_BUILD ?= build-bench
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 10
GENERATOR  ?= Ninja
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
ARGS       ?=
BENCH_ARGS ?= --rounds 3

.PHONY: all deps build run test test-asan test-tsan test-fuzz test-python fuzz fuzz-build unit bench microbench soak format clean \
  lint lint-format lint-thread-safety lint-tidy

all: build

deps:
	@scripts/install-deps.sh
	@scripts/install-tools.sh

build: deps
	cmake -S . -B $(BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFETCHD_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)

# Starts fetchd with its built-in default config (127.0.0.1:50051).
run: build
	$(BUILD)/service/fetchd $(ARGS)

# Every test, the static checks (`make lint`), then every test again under
# ASan+UBSan, the engine's under TSan, then each fuzzer briefly.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) lint
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) test-fuzz

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug \
	  -DFETCHD_WERROR=ON -DFETCHD_SANITIZE=address,undefined \
	  -DFETCHD_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# The Python client's pytest suite alone (client/python; also part of
# `make test`), against the fetchd of $(BUILD).
test-python: deps
	cmake -S . -B $(BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFETCHD_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS) --target fetchd fetchd_python
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L python

# ThreadSanitizer over the tests labelled tsan: the engine (core, policy,
# transport with real libcurl), whose link closure has no gRPC (Debian's
# gRPC is not TSan-instrumented; tests/CMakeLists.txt checks the closure).
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DFETCHD_WERROR=ON -DFETCHD_SANITIZE=thread -DFETCHD_BUILD_BENCH=OFF \
	  $(CMAKE_ARGS)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target tsan_tests
	cd $(TSAN_BUILD) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest --output-on-failure -j $(JOBS) -L tsan

# libFuzzer targets (fuzz/), built by clang with ASan+UBSan in their own
# dir. `make fuzz` runs each for FUZZ_SECONDS, `make test` for
# FUZZ_TEST_SECONDS, from the seeds in fuzz/corpus/.
fuzz-build: deps
	CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD) -G $(GENERATOR) \
	  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFETCHD_WERROR=ON \
	  -DFETCHD_SANITIZE=address,undefined -DFETCHD_BUILD_FUZZ=ON \
	  -DFETCHD_BUILD_TESTS=OFF -DFETCHD_BUILD_BENCH=OFF
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers

fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

test-fuzz: fuzz-build
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TEST_SECONDS)

# fetchd end to end vs raw curl-multi, aiohttp and httpx, and fetchd's
# Python client vs aiohttp, interleaved rounds against a local nginx, plus
# c10k, a 1 GiB stream and unary latency (bench/peer_bench.py;
# BENCHMARKS.md). Not part of `make test`.
bench: deps
	cmake -S . -B $(BENCH_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	  -DFETCHD_WERROR=ON -DFETCHD_BUILD_TESTS=OFF
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target fetchd fetchctl \
	  raw_curl_multi fetchd_load unary_latency fetchd_python
	@mkdir -p bench/results
	/usr/bin/python3 bench/peer_bench.py --build $(BENCH_BUILD) \
	  --json bench/results/peer_bench.json \
	  --markdown bench/results/peer_bench.md $(BENCH_ARGS)

# Google Benchmark microbenchmarks of the scheduler and the result path
# (bench/micro/). Not part of `make test`.
microbench: deps
	cmake -S . -B $(BENCH_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	  -DFETCHD_WERROR=ON -DFETCHD_BUILD_TESTS=OFF
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target microbench
	$(BENCH_BUILD)/bench/micro/scheduler_bench
	$(BENCH_BUILD)/bench/micro/result_bench

# 10 minutes of steady mixed traffic through fetchd (bench/soak.py): its RSS
# and open fds must stay flat after warm-up. Not part of `make test`.
SOAK_ARGS ?=
soak: deps
	cmake -S . -B $(BENCH_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	  -DFETCHD_WERROR=ON -DFETCHD_BUILD_TESTS=OFF
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target fetchd fetchctl
	@mkdir -p bench/results
	/usr/bin/python3 bench/soak.py --build $(BENCH_BUILD) \
	  --json bench/results/soak.json $(SOAK_ARGS)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

# Static checks, each failing on any finding: every C++ file as
# .clang-format lays it out; clang's -Wthread-safety over the lock
# annotations (ABSL_GUARDED_BY, ...), which g++ ignores, as a syntax-only
# clang pass with the build's own flags; clang-tidy with .clang-tidy.
# The clang passes read $(BUILD)/compile_commands.json and the protobuf
# headers generated there, hence `build`.
# Thread-safety covers the tests' own servers and helpers too (~4 min of
# CPU for tests/, ~2 for service/ and client/); clang-tidy the product's
# sources (~4 min of CPU).
LINT_TSA_DIRS ?= service client tests
LINT_TIDY_DIRS ?= service client
# Files left out of the clang passes (none now); name them here with the
# reason if one ever must be.
LINT_CLANG_EXCLUDE ?=
LINT_TIDY_EXCLUDE ?= $(LINT_CLANG_EXCLUDE)

lint: lint-format lint-thread-safety lint-tidy

lint-format: deps
	git ls-files -z '*.cc' '*.h' | xargs -0 clang-format --dry-run --Werror

lint-thread-safety: build
	/usr/bin/python3 scripts/lint_cpp.py thread-safety --build $(BUILD) \
	  --jobs $(JOBS) $(addprefix --exclude ,$(LINT_CLANG_EXCLUDE)) $(LINT_TSA_DIRS)

lint-tidy: build
	/usr/bin/python3 scripts/lint_cpp.py tidy --build $(BUILD) \
	  --jobs $(JOBS) $(addprefix --exclude ,$(LINT_TIDY_EXCLUDE)) $(LINT_TIDY_DIRS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) $(BENCH_BUILD) $(FUZZ_BUILD)
