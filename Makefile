# privydrop-c — top-level build.
#   make            build everything (C binaries, library, web client if present)
#   make test       every test: C unit tests, cross-service tests, then the
#                   same again under AddressSanitizer + UBSan
#   make run        the whole system locally (see README)
#   make deps       install what the build and tests need (Debian + npm)
# Build variants live in separate trees: build/ (normal), build/asan/ (SAN=1).

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build/asan
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT := -O1
else
BUILD ?= build
SANFLAGS :=
OPT := -O2
endif

CC ?= cc
LLHTTP_DIR ?= /usr/share/llhttp
LLHTTP_INC ?= /usr/share/include/llhttp
DEPFLAGS = -MMD -MP
CFLAGS_COMMON := -std=c11 -D_GNU_SOURCE -g $(OPT) $(SANFLAGS) -Ilibshared/include -I$(LLHTTP_INC)
CFLAGS_STRICT := $(CFLAGS_COMMON) -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes
LDFLAGS += $(SANFLAGS)
LIBS := -luv -lwslay -lhiredis -ljansson -lcrypto -lm

LIB := $(BUILD)/lib/libprivydrop.a
BIN := $(BUILD)/bin
OBJ := $(BUILD)/obj

LIB_SRCS := $(wildcard libshared/src/*/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(OBJ)/%.o)
LLHTTP_OBJS := $(OBJ)/llhttp/api.o $(OBJ)/llhttp/http.o $(OBJ)/llhttp/llhttp.o

SIGNAL_SRCS := $(wildcard services/signal/src/*.c)
SIGNAL_OBJS := $(SIGNAL_SRCS:%.c=$(OBJ)/%.o)
SIGNAL_LIBOBJS := $(filter-out %/main.o,$(SIGNAL_OBJS))
ROOMAPI_SRCS := $(wildcard services/roomapi/src/*.c)
ROOMAPI_OBJS := $(ROOMAPI_SRCS:%.c=$(OBJ)/%.o)
ROOMAPI_LIBOBJS := $(filter-out %/main.o,$(ROOMAPI_OBJS))

UNIT_LIB_SRCS := $(wildcard libshared/tests/test_*.c)
UNIT_SIGNAL_SRCS := $(wildcard services/signal/tests/test_*.c)
UNIT_ROOMAPI_SRCS := $(wildcard services/roomapi/tests/test_*.c)
UNIT_BINS := $(UNIT_LIB_SRCS:libshared/tests/%.c=$(BUILD)/tests/%) \
             $(UNIT_SIGNAL_SRCS:services/signal/tests/%.c=$(BUILD)/tests/signal_%) \
             $(UNIT_ROOMAPI_SRCS:services/roomapi/tests/%.c=$(BUILD)/tests/roomapi_%)

PROGRAMS := $(BIN)/privydrop-signal $(BIN)/privydrop-roomapi

# Extra build and test steps contributed by parts of the tree (web client,
# deployment checks, ...) in mk/*.mk: they append to ALL_EXTRA / TEST_EXTRA.
ALL_EXTRA :=
TEST_EXTRA :=
# `make` alone builds: the included files must not pick the default goal.
.DEFAULT_GOAL := all
-include mk/*.mk

.PHONY: all c deps test test-unit test-integration test-asan run clean
all: c $(ALL_EXTRA)
c: $(PROGRAMS) $(LIB) $(UNIT_BINS)

$(LIB): $(LIB_OBJS) $(LLHTTP_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STRICT) $(DEPFLAGS) -c $< -o $@

# llhttp's generated C is compiled as shipped by Debian; it is not ours to
# edit, so only the warnings it is known to trip are relaxed for it.
$(OBJ)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -Wall -Wextra -Werror -Wno-unused-parameter -Wno-implicit-fallthrough -c $< -o $@

$(BIN)/privydrop-signal: $(SIGNAL_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(SIGNAL_OBJS) $(LIB) $(LIBS)

$(BIN)/privydrop-roomapi: $(ROOMAPI_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(ROOMAPI_OBJS) $(LIB) $(LIBS)

$(BUILD)/tests/test_%: $(OBJ)/libshared/tests/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS) -lcmocka

$(BUILD)/tests/signal_test_%: $(OBJ)/services/signal/tests/test_%.o $(SIGNAL_LIBOBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(SIGNAL_LIBOBJS) $(LIB) $(LIBS) -lcmocka

$(BUILD)/tests/roomapi_test_%: $(OBJ)/services/roomapi/tests/test_%.o $(ROOMAPI_LIBOBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(ROOMAPI_LIBOBJS) $(LIB) $(LIBS) -lcmocka

# The install step; `make DEPS_CMD=...` swaps in another (tests/deploy stages
# llhttp into a directory that does not exist yet, as on a fresh machine).
DEPS_CMD ?= deploy/local/deps.sh
deps:
	@$(DEPS_CMD)

# Without node-llhttp there are no sources to compile: say what to do rather
# than make's "No rule to make target".
$(LLHTTP_DIR)/%.c:
	@echo "llhttp's C sources are missing ($@): run 'make deps' (Debian package node-llhttp)" >&2
	@exit 1

# C unit tests (cmocka): every test binary, each must pass.
test-unit: c
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# Cross-service tests against a real cluster (redis-server, two workers,
# room API) started by the test harness from $(BIN).
test-integration: c
	@PD_BIN_DIR=$(abspath $(BIN)) tests/integration/run.sh

test-asan:
	@$(MAKE) --no-print-directory SAN=1 test-unit test-integration test-sigload-cli

# `deps` installs files (llhttp's sources under $(LLHTTP_DIR)) that this very
# make may already have looked for and cached as missing: make reads each
# directory once. So whatever builds on them runs in a fresh make after deps,
# never as a prerequisite beside it.
test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory test-unit test-integration
	@$(MAKE) --no-print-directory test-asan
	@set -e; for t in $(TEST_EXTRA); do $(MAKE) --no-print-directory $$t; done

run: deps
	@$(MAKE) --no-print-directory all
	@deploy/local/run.sh

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
