# Entry points.  `make demo`: the main job end to end.  `make check`: the
# whole test suite, again under ASan+UBSan, then the threaded tests under
# TSan.  Both install missing Debian packages when run as root (otherwise
# they print the apt-get line).
BUILD ?= build
JOBS  ?= $(shell nproc)
CMAKE_FLAGS ?=
CI_FLAGS = $(if $(CI),-DSG_WERROR=ON,)

.PHONY: all deps build check test asan tsan demo bench fuzz clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CI_FLAGS) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) $(if $(TARGET),--target $(TARGET),)

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan: deps
	@$(MAKE) --no-print-directory build BUILD=build-asan \
		CMAKE_FLAGS="-DSG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug"
	@cd build-asan && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j $(JOBS)

# The tests where threads meet (servers under load and faults, the PKCS#11
# backend), built with ThreadSanitizer; any report fails (tests/tsan.sh).
tsan: deps
	@$(MAKE) --no-print-directory build BUILD=build-tsan CMAKE_FLAGS="-DSG_TSAN=ON"
	@bash tests/tsan.sh build-tsan $(JOBS)

check: test asan tsan

# The demo needs the command only, not the tests.
demo:
	@$(MAKE) --no-print-directory build TARGET=signgate_cli
	@bash scripts/demo.sh

bench: build
	@bash bench/run.sh

fuzz: deps
	@bash tests/fuzz/run.sh

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz
