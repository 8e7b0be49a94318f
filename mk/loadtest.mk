# Load tests and benchmarks (loadtest/, bench/). Included by the top-level
# Makefile.
#   build/bin/privydrop-sigload   the C load generator (loadtest/sigload)
#   make bench                    both stacks (ours, the Node reference) under the
#                                 same scenarios: table, bench/results/*.json, PNG plots;
#                                 then the web client's (make bench-web, mk/web.mk)
#   make test-bench-quick         the same machinery for a few seconds per scenario;
#                                 asserts only that every figure was produced
#   make test-k6-types            type-checks loadtest/k6/*.js against @types/k6
#   build/tests/sigload_test_*    cmocka tests of sigload's accounting (make test-unit)

SIGLOAD_SRCS := $(wildcard loadtest/sigload/*.c)
SIGLOAD_OBJS := $(SIGLOAD_SRCS:%.c=$(OBJ)/%.o)
SIGLOAD := $(BIN)/privydrop-sigload

# From the library it takes only the frame masking (pd_wsscan).
$(SIGLOAD): $(SIGLOAD_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(SIGLOAD_OBJS) $(LIB) -luv -pthread

.PHONY: sigload bench test-bench-quick test-sigload-cli test-k6-types
sigload: $(SIGLOAD)

# Full benchmark: minutes; not part of `make test`.
bench: c $(SIGLOAD)
	@PD_BIN_DIR=$(abspath $(BIN)) bench/run.sh
	@$(MAKE) --no-print-directory bench-web

test-bench-quick: c $(SIGLOAD) test-sigload-cli
	@PD_BIN_DIR=$(abspath $(BIN)) bench/run.sh --quick

# The generator's command line end to end: usage errors, a room API that
# refuses connections, --json - (also under ASan/UBSan, from test-asan).
test-sigload-cli: $(SIGLOAD)
	@loadtest/sigload/tests/cli.sh $(SIGLOAD)

test-k6-types:
	@test -d loadtest/k6/node_modules/@types/k6 || { echo "test-k6-types: npm packages missing; run 'make deps'" >&2; exit 1; }
	cd loadtest/k6 && npx --no-install tsc -p tsconfig.json

# Its accounting rules have cmocka unit tests (part of `make test-unit`).
SIGLOAD_UNIT_SRCS := $(wildcard loadtest/sigload/tests/test_*.c)
UNIT_BINS += $(SIGLOAD_UNIT_SRCS:loadtest/sigload/tests/%.c=$(BUILD)/tests/sigload_%)

$(BUILD)/tests/sigload_test_%: $(OBJ)/loadtest/sigload/tests/test_%.o $(OBJ)/loadtest/sigload/account.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka

# The lateness probe's test links the probe itself (and its thread).
$(BUILD)/tests/sigload_test_probe: $(OBJ)/loadtest/sigload/tests/test_probe.o $(OBJ)/loadtest/sigload/probe.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcmocka -pthread

ALL_EXTRA += $(SIGLOAD)
TEST_EXTRA += test-k6-types test-bench-quick
