# Soak (tests/soak/soak.mjs): redis-server + 2 signal workers + room API,
# thousands of connects, joins, signals and disconnects with redis-server
# restarted in the middle; then every key left must be gone or within its
# contract TTL, connection counts back to 0 and worker RSS back near its
# warm-up level. Included by the top-level Makefile.
#   make soak              SOAK_SESSIONS (default 5000) sessions
#   make test-soak-quick   200 sessions (part of TEST_EXTRA)
#   make SAN=1 soak        the same with ASan + UBSan + LeakSanitizer binaries
SOAK_SESSIONS ?= 5000

.PHONY: soak test-soak-quick
soak: c
	@PD_BIN_DIR=$(abspath $(BIN)) SOAK_SESSIONS=$(SOAK_SESSIONS) node tests/soak/soak.mjs

test-soak-quick: c
	@PD_BIN_DIR=$(abspath $(BIN)) SOAK_SESSIONS=200 node tests/soak/soak.mjs

TEST_EXTRA += test-soak-quick
