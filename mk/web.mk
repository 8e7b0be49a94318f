# Web client (services/web) and its end-to-end browser tests (tests/e2e).
# Included by the top-level Makefile; assumes `make deps` installed the npm
# packages (npm ci in services/web and tests/e2e).

WEB_DIR := services/web
WEB_SRCS := $(wildcard $(WEB_DIR)/src/*.ts $(WEB_DIR)/src/*.css) $(WEB_DIR)/index.html \
            $(WEB_DIR)/build.mjs $(WEB_DIR)/tsconfig.json $(WEB_DIR)/package.json

.PHONY: web test-web test-e2e test-e2e-firefox test-e2e-a11y bench-web
web: $(WEB_DIR)/dist/index.html

# Type-check (tsc --noEmit) and bundle with esbuild into services/web/dist/.
$(WEB_DIR)/dist/index.html: $(WEB_SRCS)
	@test -d $(WEB_DIR)/node_modules || { echo "web: npm packages missing; run 'make deps'" >&2; exit 1; }
	cd $(WEB_DIR) && npm run --silent build

# Unit tests in Node (node:test): protocol codecs, the sender's flow control, the
# receiver's in-order intake and resume offsets, the language catalogs, and no
# hard-coded text in the page code. test/load.mjs only loads sources for them.
test-web: web
	cd $(WEB_DIR) && node --test test/*.test.mjs

# Browsers (Debian chromium; Debian firefox-esr in cross-browser.test.mjs)
# against a real local cluster: redis-server, two signal workers, the room API
# and nginx serving the built client. Also the page in every language (with
# axe-core audits) and on phone-sized screens; the phone test leaves
# screenshots in build/screenshots/. a11y.test.mjs: the whole flow with the
# keyboard alone, the live regions, and axe-core on both views (empty and
# mid-transfer) in every language and both themes (about 2 minutes).
test-e2e: web c
	@test -d tests/e2e/node_modules || { echo "test-e2e: npm packages missing; run 'make deps'" >&2; exit 1; }
	@PD_BIN_DIR=$(abspath $(BIN)) PD_WEB_DIST=$(abspath $(WEB_DIR)/dist) node --test --test-concurrency=1 $(wildcard tests/e2e/*.test.mjs)

# Only the Chromium ⇄ Firefox tests (also part of test-e2e).
test-e2e-firefox: web c
	@test -d tests/e2e/node_modules || { echo "test-e2e-firefox: npm packages missing; run 'make deps'" >&2; exit 1; }
	@PD_BIN_DIR=$(abspath $(BIN)) PD_WEB_DIST=$(abspath $(WEB_DIR)/dist) node --test --test-concurrency=1 tests/e2e/cross-browser.test.mjs

# Only the keyboard, live-region and axe tests (also part of test-e2e).
test-e2e-a11y: web c
	@test -d tests/e2e/node_modules || { echo "test-e2e-a11y: npm packages missing; run 'make deps'" >&2; exit 1; }
	@PD_BIN_DIR=$(abspath $(BIN)) PD_WEB_DIST=$(abspath $(WEB_DIR)/dist) node --test --test-concurrency=1 tests/e2e/a11y.test.mjs

# Our client's throughput against a bare RTCDataChannel, Chromium and Firefox
# (bench/web.mjs; minutes; not part of `make test`, run by `make bench`),
# with each Chromium page's main-thread time per MiB for both.
# BENCH_WEB_ARGS="--size-mib 16 --rounds 1" for a shorter run.
BENCH_WEB_ARGS ?=
bench-web: web c
	@test -d tests/e2e/node_modules || { echo "bench-web: npm packages missing; run 'make deps'" >&2; exit 1; }
	@PD_BIN_DIR=$(abspath $(BIN)) PD_WEB_DIST=$(abspath $(WEB_DIR)/dist) node bench/web.mjs $(BENCH_WEB_ARGS)

ALL_EXTRA += web
TEST_EXTRA += test-web test-e2e
