#!/usr/bin/env bash
# The container image, run the way the Helm chart runs it (tests/container/chart.py says
# what is checked). Builds the Dockerfile's runtime stage with podman around the release
# binary built without the sandbox, on the Dockerfile's own base image; where no registry
# can be reached, that base is stood in by one assembled from the same Debian packages
# (glibc, libgcc, CA certificates, tzdata, netbase; user 65532), under the same name.
#
#   tests/container/run.sh
#
# Needs root, podman and runc (Debian: apt-get install podman runc), the Helm chart's lint
# tools in the folder SHARED_TOOLS names (they render the chart; .ci/run sets it), and
# PostgreSQL and Redis on 127.0.0.1 (BFF_TEST_DATABASE_URL, BFF_TEST_REDIS_URL).
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="$HOME/.cache/autoshares-bff"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
: "${SHARED_TOOLS:?set SHARED_TOOLS to the folder of the lint tools (lint-helm renders the chart)}"
export SHARED_TOOLS
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# runc, with cgroups managed by podman itself (no systemd here). Limits are set below the
# machine's own: a container may not be given more than its parent has.
export CONTAINERS_CONF="$WORK/containers.conf"
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = ["nofile=16384:16384", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

echo "building the release binary without the sandbox (as the Dockerfile does)"
cargo build --release --locked --no-default-features --quiet
RELEASE="$CARGO_TARGET_DIR/release/autoshares-bff"
echo "building the debug binary with the sandbox (the AutoShares on the host)"
cargo build --locked --quiet
SANDBOX_BIN="$CARGO_TARGET_DIR/debug/autoshares-bff"

BASE="$(awk '/^FROM .* AS runtime/ { print $2 }' Dockerfile)"
[ -n "$BASE" ] || { echo "Dockerfile has no 'FROM … AS runtime' stage" >&2; exit 1; }

# The base image from the Debian packages distroless' cc image is made of.
assemble_base() {
  local debs="$CACHE/container-base/debs" root="$WORK/base"
  mkdir -p "$debs" "$root"
  (cd "$debs" && apt-get download -qq -o APT::Sandbox::User=root libc6 libgcc-s1 ca-certificates tzdata netbase base-files)
  for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done
  mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/home/nonroot"
  cat "$root"/usr/share/ca-certificates/mozilla/*.crt > "$root/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' \
    'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' > "$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' 'nonroot:x:65532:' > "$root/etc/group"
  chmod 1777 "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  tar -C "$root" -c . | podman import --quiet \
    --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$BASE" >/dev/null
  echo "base image $BASE assembled from Debian packages: $(ls "$debs" | tr '\n' ' ')"
}
if podman image exists "$BASE"; then
  echo "base image $BASE: present"
elif timeout 30 podman pull --quiet "$BASE" >/dev/null 2>&1; then
  echo "base image $BASE: pulled"
else
  assemble_base
fi

# The runtime stage as written, around the binary built above instead of the build stage's.
CONTEXT="$WORK/context"
mkdir -p "$CONTEXT"
cp "$RELEASE" "$CONTEXT/autoshares-bff"
cp -r config "$CONTEXT/config"
awk '/^FROM .* AS runtime/ { p = 1 } p' Dockerfile |
  sed 's#^COPY --from=build /autoshares-bff #COPY autoshares-bff #' > "$CONTEXT/Containerfile"
grep -q '^COPY autoshares-bff ' "$CONTEXT/Containerfile" ||
  { echo "the runtime stage no longer copies /autoshares-bff from the build stage" >&2; exit 1; }
IMAGE=localhost/autoshares-bff:container-test
podman build --quiet --pull=never -f "$CONTEXT/Containerfile" -t "$IMAGE" "$CONTEXT" >/dev/null
echo "image $IMAGE: the Dockerfile's runtime stage on $BASE"

python3 tests/container/chart.py "$IMAGE" "$SANDBOX_BIN"
