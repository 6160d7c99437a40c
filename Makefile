# Thin wrapper over CMake. `make` builds into build/ (programs in build/bin/), `make test` installs
# what is missing, builds with warnings as errors and runs the tests twice: normally, then under
# AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/).
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure test test-plain test-asan fuzz bench demo clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

deps:
	./scripts/install-deps

test: deps test-plain fuzz test-asan

test-plain:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDE_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DTIDE_WERROR=ON -DTIDE_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# The host-side parser of everything a guest sends, under libFuzzer for a bounded time, from the
# checked-in seed corpus (fuzz/corpus/).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_REQUIRED=1 ./fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

bench: all
	$(BUILD)/bin/bench_engine --vms 10000 --ticks 200
	$(BUILD)/bin/bench_core --vms 1000 --ticks 200
	$(BUILD)/bin/bench_core --vms 10000 --ticks 100
	$(BUILD)/bin/bench_core --vms 10000 --ticks 100 --short
	$(BUILD)/bin/bench_manager --domains 1000 --ticks 100
	$(BUILD)/bin/bench_channel --mib 32 --runs 7
	$(BUILD)/bin/bench_parking --reads 200
	bench/simulate-speed.sh 10000 24 3

demo: deps
	./tools/demo

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
