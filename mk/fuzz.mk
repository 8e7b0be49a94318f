# libFuzzer targets (tests/fuzz), built with clang in their own tree,
# build/fuzz/, with ASan + UBSan + the fuzzer's coverage instrumentation.
#   make fuzz              every target for FUZZ_SECONDS (default 600) each;
#                          the working corpus build/fuzz/corpus/<t> persists
#   make test-fuzz-quick   every target for FUZZ_QUICK_SECONDS (default 20)
#                          over the seeds plus new inputs in a temp dir;
#                          fails on any crash, leak or sanitizer report
#   make fuzz-build        just the binaries (build/fuzz/bin/fuzz_<t>)
# Seeds in tests/fuzz/corpus/<t> are only read; crashes land in
# build/fuzz/artifacts/<t>/.

FUZZ_CC ?= clang
FUZZ_SECONDS ?= 600
FUZZ_QUICK_SECONDS ?= 20
FUZZ_DIR := build/fuzz
FUZZ_OBJ := $(FUZZ_DIR)/obj
FUZZ_TARGETS := ws_path http json subparse
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_DIR)/bin/fuzz_%)
FUZZ_SAN := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 $(FUZZ_SAN) -Ilibshared/include -I$(LLHTTP_INC) \
               -Wall -Wextra -MMD -MP

# The library and the pure service code the harnesses call, as one archive
# so each target links only what it uses.
FUZZ_LIB := $(FUZZ_DIR)/lib/libprivydrop-fuzz.a
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_OBJ)/%.o) \
                 $(FUZZ_OBJ)/services/signal/src/events.o $(FUZZ_OBJ)/services/signal/src/session.o $(FUZZ_OBJ)/services/signal/src/eng.o $(FUZZ_OBJ)/services/signal/src/poll.o $(FUZZ_OBJ)/services/signal/src/fwd.o $(FUZZ_OBJ)/services/signal/src/peer.o \
                 $(FUZZ_OBJ)/services/signal/src/conn.o $(FUZZ_OBJ)/services/roomapi/src/api.o $(FUZZ_OBJ)/services/roomapi/src/pool.o $(FUZZ_OBJ)/services/roomapi/src/claim.o \
                 $(FUZZ_OBJ)/llhttp/api.o $(FUZZ_OBJ)/llhttp/http.o $(FUZZ_OBJ)/llhttp/llhttp.o

.PHONY: fuzz fuzz-build test-fuzz-quick
fuzz-build: $(FUZZ_BINS)

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(FUZZ_OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_OBJ)/llhttp/%.o: $(LLHTTP_DIR)/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -w -c $< -o $@

$(FUZZ_DIR)/bin/fuzz_%: $(FUZZ_OBJ)/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_SAN) -o $@ $< $(FUZZ_LIB) $(LIBS)

fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
	  tests/fuzz/run.sh $(FUZZ_DIR)/bin $$t $(FUZZ_SECONDS) $(FUZZ_DIR)/corpus/$$t; done

test-fuzz-quick: fuzz-build
	@set -e; work=$$(mktemp -d); trap 'rm -rf "$$work"' EXIT; \
	for t in $(FUZZ_TARGETS); do \
	  tests/fuzz/run.sh $(FUZZ_DIR)/bin $$t $(FUZZ_QUICK_SECONDS) "$$work/$$t" >"$$work/$$t.log" 2>&1 \
	    || { tail -n 60 "$$work/$$t.log" >&2; echo "test-fuzz-quick: fuzz_$$t failed" >&2; exit 1; }; \
	  grep -E '^(stat::number_of_executed_units|Done)' "$$work/$$t.log" | sed "s/^/fuzz_$$t: /"; \
	done

-include $(shell find $(FUZZ_OBJ) -name '*.d' 2>/dev/null)

TEST_EXTRA += test-fuzz-quick
