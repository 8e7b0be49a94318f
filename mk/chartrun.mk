# The Helm chart started for real (k8s/tests/chart-run.sh): every workload
# container of the default values and of each k8s/examples/*.yaml, with its
# rendered command, args and environment, --check-config first, until its
# readinessProbe passes; numbers must render as integers and the bundled
# Redis must be redis-server itself (PID 1) and stop on SIGTERM. Included by
# the top-level Makefile.
#   make test-chart-run
.PHONY: test-chart-run
test-chart-run: $(BIN)/privydrop-signal $(BIN)/privydrop-roomapi
	@PD_BIN_DIR=$(abspath $(BIN)) k8s/tests/chart-run.sh

TEST_EXTRA += test-chart-run
