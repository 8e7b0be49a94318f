# The first `make run` from a fresh clone in a private (mode 0700) directory,
# then Ctrl-C (tests/deploy/first-run.sh). Included by the top-level Makefile.
#   make test-first-run
.PHONY: test-first-run
test-first-run:
	@tests/deploy/first-run.sh

TEST_EXTRA += test-first-run
