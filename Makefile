# fetchd — the two commands: `make run` and `make test`.
# Both install missing Debian packages first (scripts/install-deps.sh), and
# the pinned npm deployment tools into .tools/ (scripts/install-tools.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-bench
GENERATOR  ?= Ninja
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
ARGS       ?=
BENCH_ARGS ?= --rounds 5

.PHONY: all deps build run test test-asan unit bench format clean

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

# Every test, then every test again under ASan+UBSan.
test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	$(MAKE) test-asan

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug \
	  -DFETCHD_WERROR=ON -DFETCHD_SANITIZE=address,undefined \
	  -DFETCHD_BUILD_BENCH=OFF $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# fetchd end to end vs a raw single-thread curl-multi client, interleaved
# rounds against a local nginx. Not part of `make test`.
bench: deps
	cmake -S . -B $(BENCH_BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	  -DFETCHD_WERROR=ON -DFETCHD_BUILD_TESTS=OFF
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target fetchd raw_curl_multi fetchd_load
	@mkdir -p bench/results
	/usr/bin/python3 bench/peer_bench.py --build $(BENCH_BUILD) \
	  --json bench/results/peer_bench.json $(BENCH_ARGS)

format:
	git ls-files '*.cc' '*.h' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BENCH_BUILD)
