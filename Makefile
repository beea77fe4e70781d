# asyncrace: one Makefile.
#   make          build every case program and tool: release in build/, and the ASan and
#                 TSan builds the suite also runs, in build/asan and build/tsan
#   make release  the release build alone
#   make run      build (release), run the matrix, print the rate table (results/latest/matrix.md)
#   make test     build and run the pytest suite, quick profile
#   make nightly  the long soak: same matrix, nightly budgets, captures kept
#   make deps     install what is missing (as root) or print the apt-get line
# Knobs: PYTEST_ARGS="-k shutdown", RUN_ARGS="--runner libuv", PYTHON=/path/to/python3
#
# Before anything is compiled, scripts/deps.sh installs what is missing and
# scripts/configure.sh writes build/config.mk (the backends of
# runners/backends.list with their flags, and PYTHON); make then restarts
# with it, so pkg-config is asked only once the packages are there.

.DEFAULT_GOAL := all
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter

ifeq ($(filter clean deps,$(MAKECMDGOALS)),)
include build/config.mk
endif

build/config.mk: runners/backends.list scripts/configure.sh scripts/deps.sh
	@sh scripts/deps.sh --check-build
	@CC="$(CC)" sh scripts/configure.sh build

# Layers, bottom up; each sees only its own headers and those below it, so an
# include that points up (the runtime reaching for case.h) fails to compile.
INC_runners := -Irunners -Ibuild/gen
INC_race    := $(INC_runners) -Iharness/race
INC_runtime := $(INC_race) -Iharness/runtime
INC_case    := $(INC_runtime) -Iharness/case
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -pthread $(BACKEND_CFLAGS)
LDLIBS      := $(BACKEND_LIBS) -pthread

# A backend is runners/<name>.c (the file that defines ar_runner_<name>) plus
# runners/<name>/*.c; only the listed ones are built. Every other runners/*.c
# is shared support; the conformance suite is runners/conformance/.
BACKEND_FILES := $(shell grep -l '^const ar_runner ar_runner_' runners/*.c)
BACKEND_SRC := $(filter-out runners/sim/selftest.c, \
                 $(foreach b,$(BACKENDS),runners/$(b).c $(wildcard runners/$(b)/*.c)))
# The interposer (runners/controlled/): real code's pthread, clock, fd and epoll calls,
# handed to sim's scheduler core on real threads when a task of a controlled run makes
# them, and to libc (or a sanitizer's interceptor) otherwise. Linked into every program,
# so the <base>_ctl runners run the real loop libraries under it.
CONTROLLED_SRC  := $(filter-out runners/controlled/selftest.c,$(wildcard runners/controlled/*.c))
RUNNER_SRC  := $(filter-out $(BACKEND_FILES) runners/conformance.c,$(wildcard runners/*.c)) \
               $(BACKEND_SRC) $(CONTROLLED_SRC)
CONFORMANCE_SRC := $(wildcard runners/conformance.c runners/conformance/*.c)
RACE_SRC    := $(wildcard harness/race/*.c)
RUNTIME_SRC := $(wildcard harness/runtime/*.c)
CASE_SRC    := $(filter-out harness/case/selftest.c harness/case/casetest.c,$(wildcard harness/case/*.c))
CASES       := $(basename $(notdir $(wildcard cases/*.c)))
ALL_HEADERS := $(wildcard runners/*.h runners/*/*.h harness/*/*.h) build/gen/backends.h

# Three flavours share one rule set: release in build/, sanitizers beside it.
FLAVOURS := release asan tsan
release_DIR   := build
release_FLAGS :=
asan_DIR      := build/asan
asan_FLAGS    := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer
tsan_DIR      := build/tsan
tsan_FLAGS    := -O1 -fsanitize=thread

# $(1) flavour, $(2) layer, $(3) source folder pattern
define compile
$$($(1)_DIR)/obj/$(3)/%.o: $(3)/%.c $$(ALL_HEADERS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(BASE_CFLAGS) $$(INC_$(2)) $$(CFLAGS) $$($(1)_FLAGS) -c $$< -o $$@
endef

define flavour
$(1)_RUNNER_OBJ  := $$(RUNNER_SRC:%.c=$$($(1)_DIR)/obj/%.o)
$(1)_HARNESS_OBJ := $$(patsubst %.c,$$($(1)_DIR)/obj/%.o,$$(RACE_SRC) $$(RUNTIME_SRC) $$(CASE_SRC))
$(1)_BINS := $$(CASES:%=$$($(1)_DIR)/bin/%) $$($(1)_DIR)/tools/conformance $$($(1)_DIR)/tools/selftest \
             $$($(1)_DIR)/tools/simtest $$($(1)_DIR)/tools/casetest $$($(1)_DIR)/tools/ctltest

$(call compile,$(1),runners,runners)
$(foreach b,$(BACKENDS),$(if $(wildcard runners/$(b)),$(call compile,$(1),runners,runners/$(b))))
$(call compile,$(1),runners,runners/conformance)
$(call compile,$(1),runners,runners/controlled)
$(call compile,$(1),race,harness/race)
$(call compile,$(1),runtime,harness/runtime)
$(call compile,$(1),case,harness/case)
$(call compile,$(1),case,cases)

$$($(1)_DIR)/bin/%: $$($(1)_DIR)/obj/cases/%.o $$($(1)_HARNESS_OBJ) $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/conformance: $$(CONFORMANCE_SRC:%.c=$$($(1)_DIR)/obj/%.o) $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/simtest: $$($(1)_DIR)/obj/runners/sim/selftest.o $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/ctltest: $$($(1)_DIR)/obj/runners/controlled/selftest.o $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/selftest: $$($(1)_DIR)/obj/harness/case/selftest.o $$($(1)_HARNESS_OBJ) $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)

$$($(1)_DIR)/tools/casetest: $$($(1)_DIR)/obj/harness/case/casetest.o $$($(1)_HARNESS_OBJ) $$($(1)_RUNNER_OBJ)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) $$($(1)_FLAGS) $$^ -o $$@ $$(LDLIBS)
endef
$(foreach f,$(FLAVOURS),$(eval $(call flavour,$(f))))

build/gen/backends.h: build/config.mk

# The preloadable scheduler (runners/preload/, docs/preload.md): the core and the
# interposer in one shared object, for an unmodified, dynamically linked program
# (LD_PRELOAD); release flags, position-independent.
PRELOAD_SRC := $(filter-out runners/sim/selftest.c runners/sim/net.c,$(wildcard runners/sim/*.c)) \
               $(filter-out runners/controlled/scheduler.c,$(CONTROLLED_SRC)) $(wildcard runners/preload/*.c)
PRELOAD_LIB := build/lib/libasyncrace_sched.so
build/pic/obj/%.o: %.c $(ALL_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(INC_runners) $(CFLAGS) -fPIC -c $< -o $@
$(PRELOAD_LIB): $(PRELOAD_SRC:%.c=build/pic/obj/%.o) runners/preload/exports.map
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -shared -Wl,--no-undefined -Wl,--version-script=runners/preload/exports.map \
	    $(filter %.o,$^) -o $@ -ldl -pthread

# Programs a user might bring (cases/external/c/, declared in cases/external.toml): plain
# C and pthreads, none of the project's headers; escapes.static is escapes linked
# statically, the one kind of program LD_PRELOAD cannot reach.
EXTERNAL_C_BINS := $(patsubst cases/external/c/%.c,build/external/%,$(wildcard cases/external/c/*.c)) \
                   build/external/escapes.static
build/external/%: cases/external/c/%.c cases/external/c/cli.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -pthread $< -o $@
build/external/escapes.static: cases/external/c/escapes.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -static -pthread $< -o $@

.PHONY: all release asan tsan sanitizers run test nightly deps clean
.SECONDARY:

# Plain `make` builds what pytest runs, so `pytest -k shutdown` works after it.
all: release sanitizers
release: $(release_BINS) $(PRELOAD_LIB) $(EXTERNAL_C_BINS)
asan: $(asan_BINS)
tsan: $(tsan_BINS)
sanitizers: asan tsan

# -c and -p: pytest reads an option's value as a test path before it loads any
# conftest, so `--results-dir /elsewhere` would pick /elsewhere's rootdir; naming
# the ini and the plugin up front makes both forms of every option work.
PYTEST = $(PYTHON) -m pytest -c pytest.ini -p asyncrace.pytest_plugin

run: release
	$(PYTHON) -m asyncrace run --profile quick $(RUN_ARGS)

test: all
	$(PYTEST) -n 2 --profile quick $(PYTEST_ARGS)

nightly: all
	$(PYTEST) -n 2 --profile nightly --capture-failures $(PYTEST_ARGS)

# Installs what is missing when run as root; otherwise prints the one line to run.
deps:
	@sh scripts/deps.sh

clean:
	rm -rf build
