# Container images built for real (podman/buildah, from a Debian base image
# made locally by mmdebstrap). Included by the top-level Makefile; `make deps`
# installs podman, buildah and mmdebstrap (deploy/local/deps.d/images.pkgs).
#   make images         every image of docker-compose.yml and the Helm chart

.PHONY: images
images:
	@deploy/podman/images.sh

TEST_EXTRA += images
