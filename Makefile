# Drover: the two commands a new user runs.
#   make run    install what is missing, build, start `drover serve` on its embedded defaults
#   make test   install what is missing, build release and ASan+UBSan, run every test on both
BUILD    ?= build
JOBS     ?= $(shell nproc)
PYTHON   := /usr/bin/python3
FUZZ_SECONDS ?= 10

.PHONY: all run test deps deps-test release asan fuzz unit integration bench format format-check clean

all: release

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

release: deps
	@cmake -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD)/release -j $(JOBS)

asan: deps
	@cmake -S . -B $(BUILD)/asan -DCMAKE_BUILD_TYPE=Debug -DDROVER_SANITIZE=ON >/dev/null
	@cmake --build $(BUILD)/asan -j $(JOBS)

fuzz: deps-test
	@CC=clang cmake -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=Debug -DDROVER_FUZZ=ON >/dev/null
	@cmake --build $(BUILD)/fuzz -j $(JOBS) --target fuzzers

run: release
	$(BUILD)/release/drover serve

# Every test on both builds; the fuzz targets run briefly on their seed corpora.
test: deps-test format-check release asan fuzz
	cd $(BUILD)/release && ctest -j $(JOBS) --output-on-failure
	DROVER_BIN=$(CURDIR)/$(BUILD)/release/drover $(PYTHON) -m pytest -q tests/integration
	cd $(BUILD)/asan && ctest -j $(JOBS) --output-on-failure
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  DROVER_BIN=$(CURDIR)/$(BUILD)/asan/drover DROVER_SANITIZED=1 $(PYTHON) -m pytest -q tests/integration
	tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS)

unit: deps-test release
	cd $(BUILD)/release && ctest --output-on-failure

integration: release
	DROVER_BIN=$(CURDIR)/$(BUILD)/release/drover $(PYTHON) -m pytest -q tests/integration

bench: release deps-test
	bench/accept.sh

SOURCES = $(wildcard src/*.c src/*/*.[ch] tests/unit/*.[ch] tests/fuzz/*.c bench/*.c bench/tools/*.c)

format:
	clang-format -i $(SOURCES)

# The code follows .clang-format; a file that does not fails the test run, named.
format-check: deps-test
	@bad=$$(for f in $(SOURCES); do clang-format --dry-run -Werror $$f >/dev/null 2>&1 || echo $$f; done); \
	  if [ -n "$$bad" ]; then echo "not clang-formatted (run make format):"; echo "$$bad"; exit 1; fi

clean:
	rm -rf $(BUILD)
