# Deployment checks: Helm chart, docker-compose.yml, Dockerfiles (k8s/tests/check.sh)
# and coturn with TURN REST credentials from pd_turn (tests/turn/run.sh).
# Included by the top-level Makefile; `make deps` installs coturn (deploy/local/
# deps.d/deploy.pkgs) and the npm packages of k8s/tests.

TURNCRED := $(BUILD)/tests/turncred

# A tiny client of libshared's pd_turn: prints the /api/ice_servers body.
$(TURNCRED): tests/turn/turncred.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_STRICT) $(LDFLAGS) -o $@ $< $(LIB) $(LIBS)

.PHONY: test-deploy
test-deploy: $(TURNCRED) $(BIN)/privydrop-roomapi
	@test -d k8s/tests/node_modules || { echo "test-deploy: npm packages missing; run 'make deps'" >&2; exit 1; }
	@k8s/tests/check.sh
	@tests/turn/run.sh $(abspath $(TURNCRED)) $(abspath $(BIN)/privydrop-roomapi)

TEST_EXTRA += test-deploy
