# asyncrace: one Makefile.
#   make          build every case (all runners linked in) into build/bin/
#   make run      build, run the matrix, print the rate table (results/latest/matrix.md)
#   make test     build (release, ASan, TSan) and run the pytest suite, quick profile
#   make nightly  the long soak: same matrix, nightly budgets, captures kept
#   make deps     install what is missing (as root) or print the apt-get line
# Knobs: PYTEST_ARGS="-k shutdown", RUN_ARGS="--runner libuv", PYTHON=/path/to/python3

CC      ?= cc
PKGS    := libuv libevent libevent_pthreads
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -pthread -Iharness -Irunners \
               $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread

RUNNER_SRC  := runners/host.c runners/libuv.c runners/libevent.c runners/epoll.c runners/post_queue.c \
               runners/write_queue.c runners/posix_sync.c runners/registry.c \
               runners/sim.c $(filter-out runners/sim/selftest.c,$(wildcard runners/sim/*.c))
HARNESS_SRC := harness/runtime.c harness/channel.c harness/race.c harness/report.c harness/case_main.c
CASES       := $(basename $(notdir $(wildcard cases/*.c)))
TOOLS       := conformance selftest simtest

# A Python that has pytest: python3 on PATH first, then Debian's system one.
PYTHON ?= $(shell for p in python3 /usr/bin/python3; do \
            $$p -c 'import pytest' >/dev/null 2>&1 && { command -v $$p; break; }; done)

# Three flavours share one rule set: release in build/, sanitizers beside it.
FLAVOURS := release asan tsan
release_DIR   := build
release_FLAGS :=
asan_DIR      := build/asan
asan_FLAGS    := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer
tsan_DIR      := build/tsan
tsan_FLAGS    := -O1 -fsanitize=thread

define flavour
$(1)_RUNNER_OBJ  := $$(RUNNER_SRC:%.c=$$($(1)_DIR)/obj/%.o)
$(1)_HARNESS_OBJ := $$(HARNESS_SRC:%.c=$$($(1)_DIR)/obj/%.o)
$(1)_BINS := $$(CASES:%=$$($(1)_DIR)/bin/%) $$(TOOLS:%=$$($(1)_DIR)/tools/%)

$$($(1)_DIR)/obj/%.o: %.c $$(wildcard harness/*.h runners/*.h runners/sim/*.h) | deps-checked
	@mkdir -p $$(dir $$@)
	$$(CC) $$(BASE_CFLAGS) $$(CFLAGS) $$($(1)_FLAGS) -c $$< -o $$@

$$($(1)_DIR)/bin/%: $$($(1)_DIR)/obj/cases/%.o $$($(1)_HARNESS_OBJ) $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/conformance: $$($(1)_DIR)/obj/runners/conformance.o $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/simtest: $$($(1)_DIR)/obj/runners/sim/selftest.o $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/selftest: $$($(1)_DIR)/obj/harness/selftest_case.o $$($(1)_HARNESS_OBJ) $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)
endef
$(foreach f,$(FLAVOURS),$(eval $(call flavour,$(f))))

.PHONY: all asan tsan sanitizers run test nightly deps deps-checked clean
.SECONDARY:

all: $(release_BINS)
asan: $(asan_BINS)
tsan: $(tsan_BINS)
sanitizers: asan tsan

run: all | python-checked
	PYTHONPATH=harness $(PYTHON) -m asyncrace run --profile quick $(RUN_ARGS)

test: all sanitizers | python-checked
	$(PYTHON) -m pytest -n 2 --profile quick $(PYTEST_ARGS)

nightly: all sanitizers | python-checked
	$(PYTHON) -m pytest -n 2 --profile nightly --capture-failures $(PYTEST_ARGS)

# Installs what is missing when run as root; otherwise prints the one line to run.
deps:
	@sh harness/deps.sh

deps-checked:
	@sh harness/deps.sh --check-build

python-checked:
	@test -n "$(PYTHON)" || sh harness/deps.sh

clean:
	rm -rf build
