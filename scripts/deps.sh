# Sourced by the other scripts: nabla_ensure_deps makes sure what the build
# and the tests need is installed (on Debian, as root or with sudo, it
# installs what is missing with apt-get; otherwise it says what to install);
# nabla_build_all builds everything.

# Debian packages the build and the tests use:
#   libseccomp-dev  the tender builds its filter with libseccomp
#   musl-tools      musl's static C library (musl-dev), which the tender is
#                   linked against for its start-up time (docs/startup.md;
#                   without it, glibc's, with a warning)
#   gcc             the linker driver for Rust, and native peers for benchmarks
#   util-linux      setpriv, to run a guest as an unprivileged user in the tests
#   dosfstools, mtools   FAT disk images (nabla disk, the file-system tests)
#   redis-tools, redis-server   clients and the native peer for kvd
#   umoci, skopeo, oci-image-tool   checking nabla pack's OCI images
#   iproute2        ip: network namespaces and taps for the network tests
#   iputils-ping    ping, curl: reaching a guest from its namespace in the tests
#   curl
#   dnsmasq-base    a DHCP server for the guests' DHCP tests
#   strace          counting the system calls a guest makes
#   gdb             debugging guests (docs/debugging.md), and its tests
#   nginx-light     native peers for the network benchmarks, and the load
#   wrk               generator
#   containerd, runc, podman   driving the OCI runtime as users do
#   containernetworking-plugins   the CNI plugins (bridge, host-local,
#                   loopback) of the CRI suite's pods, in /usr/lib/cni
#   protobuf-compiler   protoc: the CRI suite's client (crate k8s-cri)
#                   compiles the CRI's .proto files when it is built
#   qemu-system-x86, busybox-static, cpio   the HAP lab VM (TCG)
#   librsvg2-bin    rsvg-convert: the HAP chart as PNG
NABLA_DEBIAN_PACKAGES=(
    libseccomp-dev musl-tools gcc util-linux
    iproute2 iputils-ping curl dnsmasq-base strace gdb
    nginx-light wrk
    dosfstools mtools
    redis-tools redis-server
    umoci skopeo oci-image-tool
    containerd runc podman containernetworking-plugins protobuf-compiler
    qemu-system-x86 busybox-static cpio librsvg2-bin
)

nabla_ensure_deps() {
    if ! command -v cargo >/dev/null 2>&1; then
        echo "error: cargo is not installed: install stable Rust (https://rustup.rs) first" >&2
        exit 1
    fi
    local missing=()
    local pkg
    for pkg in "${NABLA_DEBIAN_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "error: missing Debian packages: ${missing[*]} (install them as root)" >&2
            exit 1
        fi
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: missing packages: ${missing[*]} (no apt-get here: install them by hand)" >&2
        exit 1
    fi
    echo "installing ${missing[*]}" >&2
    # The tests start their own servers (nginx, redis-server, dnsmasq) in
    # namespaces: keep the packages from starting system-wide daemons.
    local policy=/usr/sbin/policy-rc.d added_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod +x "$policy"
        added_policy=1
    fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
    if [ -n "$added_policy" ]; then
        "${sudo[@]}" rm -f "$policy"
    fi
}

# Builds everything into target/release: the workspace (tender, examples,
# nabla), then the OCI runtime, a workspace of its own (runtime/Cargo.toml
# says why), next to the tender, where it looks for it.
nabla_build_all() {
    cargo build --release --workspace
    cargo build --release --manifest-path runtime/Cargo.toml --target-dir target
    # The std guests of the tests: a workspace of their own (they unwind).
    cargo build --release --manifest-path tests/std/Cargo.toml --target-dir target
    cargo build --profile abort --manifest-path tests/std/Cargo.toml --target-dir target
    # Existing Rust programs as std guests (examples/std): std-echo, std-http
    # (axum), mini-redis-server; a workspace of their own too.
    cargo build --release --manifest-path examples/std/Cargo.toml --target-dir target
}

# The same programs built for Linux (examples/std without its default
# feature `nabla`), the native peers of scripts/bench-std-net.sh, into
# target/native/release (not target/release, where the guests are).
nabla_build_std_native() {
    cargo build --release --manifest-path examples/std/Cargo.toml --target-dir target/native \
        --no-default-features "$@"
}
