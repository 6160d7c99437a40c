# Thin wrapper over CMake. `make` builds into build/ (programs in build/bin/), `make test` installs
# what is missing, builds with warnings as errors and runs the tests twice: normally, then under
# AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/). `make install` installs (DESTDIR,
# PREFIX); `make deb` makes the Debian package.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

BUILD_DEB  ?= build-deb
PREFIX     ?= /usr/local

.PHONY: all deps configure install deb test test-plain test-asan fuzz bench demo clean

all: configure
	cmake --build $(BUILD) -j $(JOBS)

configure:
	@test -f $(BUILD)/CMakeCache.txt || cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

deps:
	./scripts/install-deps

# Into DESTDIR (staged) or the system, under PREFIX (cmake/TideInstall.cmake says what goes where;
# /etc/tide/tided.conf is never overwritten). A tree configured with another prefix is
# reconfigured.
install: configure
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX)
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)

# The Debian package, built apart (build-deb/, prefix /usr, no tests): build-deb/tide_VERSION_ARCH.deb.
deb: deps
	cmake -S . -B $(BUILD_DEB) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr -DTIDE_TESTS=OFF -DTIDE_WERROR=ON
	cmake --build $(BUILD_DEB) -j $(JOBS)
	cd $(BUILD_DEB) && cpack -G DEB
	@ls -1 $(BUILD_DEB)/tide_*.deb

test: deps test-plain fuzz test-asan

# The plain tree has the package's prefix (/usr), so its packaging_deb test packs and installs
# what these very binaries are (make install reconfigures to PREFIX).
test-plain:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTIDE_WERROR=ON -DCMAKE_INSTALL_PREFIX=/usr $(CMAKE_FLAGS)
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
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_DEB)
