# quai's build entry points. Everything here runs as root on Debian 12 or newer.
PREFIX ?= /usr/local
CARGO ?= cargo

# Debian packages the build needs, and those the tests and benchmarks use as
# fixtures and peers (busybox-static builds test images; runc/crun/podman/...
# are compared against).
BUILD_PACKAGES = build-essential pkg-config ca-certificates
TEST_PACKAGES = busybox-static iproute2 nftables util-linux procps tmux time python3 \
	runc crun skopeo umoci docker-registry apache2-utils iperf3 hyperfine \
	docker.io podman debootstrap

# Registry tests: openssl makes TLS certificates for `registry serve
# --tls-cert`; bench scripts use bc.
TEST_PACKAGES += openssl bc

# libseccomp: the seccomp compiler's differential test checks quai's BPF
# against libseccomp's (runc's and crun's compiler).
TEST_PACKAGES += libseccomp-dev

.PHONY: all build release deps deps-build install test lint fmt bench clean

all: release

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p quai

deps-build:
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(BUILD_PACKAGES)

deps: deps-build
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(TEST_PACKAGES)

install: release
	install -D -m 0755 target/release/quai $(DESTDIR)$(PREFIX)/bin/quai
	ln -sf quai $(DESTDIR)$(PREFIX)/bin/quai-runtime

# Integration tests need root: namespaces, mounts, cgroups, netlink.
test:
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench: release
	./bench/run-all.sh

clean:
	$(CARGO) clean
