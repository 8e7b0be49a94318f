# Machine-independent benchmark figures and the machine header (bench/).
# Included by the top-level Makefile.
#   build/bin/privydrop-calibrate   loopback write+read cost (bench/calibrate.c)
#   make bench-icount               instructions (callgrind) and system calls
#                                   (strace) per operation: bench/icount.sh
#   make test-bench-icount-quick    the same with short runs; asserts only that
#                                   every figure was produced and is positive
# `make bench` runs both as part of bench/run.sh (scenario icount) and prints
# the machine header (bench/machine.sh) above its table.

CALIBRATE := $(BIN)/privydrop-calibrate

$(CALIBRATE): $(OBJ)/bench/calibrate.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $<

.PHONY: calibrate bench-icount test-bench-icount-quick
calibrate: $(CALIBRATE)

bench test-bench-quick: $(CALIBRATE)

bench-icount: c $(BIN)/privydrop-sigload $(CALIBRATE)
	@PD_BIN_DIR=$(abspath $(BIN)) bench/icount.sh

test-bench-icount-quick: c $(BIN)/privydrop-sigload
	@out=$$(mktemp -d) && PD_BIN_DIR=$(abspath $(BIN)) bench/icount.sh --quick --out "$$out" && rm -rf "$$out"

ALL_EXTRA += $(CALIBRATE)
