# Container images built for real (podman/buildah, from a Debian base image
# made locally by mmdebstrap) and the compose stack started on them.
# Included by the top-level Makefile; `make deps` installs podman, buildah,
# mmdebstrap and docker-compose (deploy/local/deps.d/images.pkgs).
#   make images         every image of docker-compose.yml and the Helm chart
#   make test-compose   the README's compose flow on those images, end to end

.PHONY: images test-compose
images:
	@deploy/podman/images.sh

test-compose: images
	@test -d tests/e2e/node_modules || { echo "test-compose: npm packages missing; run 'make deps'" >&2; exit 1; }
	@tests/compose/run.sh

TEST_EXTRA += test-compose
