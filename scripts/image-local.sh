#!/usr/bin/env bash
# Assembles labelwarden's image without pulling anything, and checks it.
#
# The Containerfile at the top level is what users build (it pulls a Rust
# image and a distroless base). On a machine that cannot pull images, this
# script assembles the same runtime layout FROM scratch with buildah: the
# locally built release binary, exactly the shared libraries `ldd` lists,
# the CA certificates, a passwd entry for the non-root user 65532, the
# shipped policies and a writable data folder. It then runs the image's
# root filesystem as that user with chroot (where `podman run` is refused,
# as in this project's sandbox), with the environment the image declares:
#
#   - `check` validates the shipped policies at their documented path;
#   - `serve` starts with the embedded SQLite store in /var/lib/labelwarden
#     and answers /healthz and /readyz, and `labelwarden probe` (the
#     image's HEALTHCHECK) says so from inside;
#   - `audit` runs from the image against the fake GitLab of the tests
#     (tests/image.rs, an ignored test this script runs).
#
#   scripts/image-local.sh            # prints the image's size at the end
#   scripts/image-local.sh --debug    # the debug binary `cargo test` built
#
# `.ci/run` uses `--debug`, so CI compiles one profile only: the image's
# layout, user, paths and environment are what is checked, and the debug
# binary loads the same shared libraries. The size it prints is then the
# debug binary's; the release image's size is in the book (docs/src/install.md).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
case "${1:-}" in
  --debug) profile=debug ;;
  "") ;;
  *) echo "usage: scripts/image-local.sh [--debug]" >&2; exit 2 ;;
esac

if ! command -v buildah >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah >/dev/null
fi
if [ "$profile" = release ]; then
  cargo build --release --locked --bin labelwarden
else
  cargo build --locked --bin labelwarden
fi
binary=target/$profile/labelwarden
image=localhost/labelwarden:local

work=$(mktemp -d)
container=""
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  if [ -n "$container" ]; then
    buildah umount "$container" >/dev/null 2>&1 || true
    buildah rm "$container" >/dev/null 2>&1 || true
  fi
  # The debug image (CI's) is not worth keeping; a release one is.
  if [ "$profile" = debug ]; then buildah rmi "$image" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

root=$work/rootfs
mkdir -p "$root"/usr/local/bin "$root"/etc/ssl/certs "$root"/etc/labelwarden "$root"/tmp "$work"/data
install -m 0755 "$binary" "$root"/usr/local/bin/labelwarden
# The shared libraries the binary loads, and the loader, at their paths.
for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done
cp -L /etc/ssl/certs/ca-certificates.crt "$root"/etc/ssl/certs/
cp -r policies "$root"/etc/labelwarden/policies
echo 'nonroot:x:65532:65532:nonroot:/var/lib/labelwarden:/sbin/nologin' > "$root"/etc/passwd
echo 'nonroot:x:65532:' > "$root"/etc/group
chmod 1777 "$root"/tmp

# The runtime stage of the Containerfile, on scratch instead of distroless.
cat > "$work"/Containerfile <<'EOF'
FROM scratch
COPY rootfs/ /
COPY --chown=65532:65532 data/ /var/lib/labelwarden/
ENV LABELWARDEN_POLICIES=/etc/labelwarden/policies \
    LABELWARDEN_LISTEN=0.0.0.0:8080 \
    LABELWARDEN_DATABASE_URL=sqlite:///var/lib/labelwarden/labelwarden.db
WORKDIR /var/lib/labelwarden
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/labelwarden"]
CMD ["serve"]
EOF
buildah bud --quiet --layers=false --format oci -t "$image" -f "$work"/Containerfile "$work" >/dev/null
echo "--- built $image"

container=$(buildah from "$image")
mounted=$(buildah mount "$container")
# The environment the image declares, and nothing else.
mapfile -t declared < <(buildah inspect --type image --format '{{range .OCIv1.Config.Env}}{{println .}}{{end}}' "$image" | sed '/^$/d')
echo "--- check (the shipped policies at their documented path)"
env -i "${declared[@]}" /usr/sbin/chroot --userspec=65532:65532 "$mounted" /usr/local/bin/labelwarden check | tail -3

echo "--- serve (SQLite in /var/lib/labelwarden), probed from outside and inside"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
env -i "${declared[@]}" LABELWARDEN_LISTEN="127.0.0.1:$port" LABELWARDEN_WEBHOOK_SECRET=image-check \
  LABELWARDEN_DATABASE_URL=sqlite:///var/lib/labelwarden/labelwarden.db \
  /usr/sbin/chroot --userspec=65532:65532 "$mounted" /usr/local/bin/labelwarden serve --notifier log \
  > "$work"/serve.log 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
for path in /healthz /readyz; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
  echo "$path: $code"
  if [ "$code" != 200 ]; then
    echo "serve from the image did not answer $path with 200; its log:" >&2
    cat "$work"/serve.log >&2
    exit 1
  fi
done
env -i "${declared[@]}" LABELWARDEN_LISTEN="0.0.0.0:$port" \
  /usr/sbin/chroot --userspec=65532:65532 "$mounted" /usr/local/bin/labelwarden probe /readyz
ls -l "$mounted"/var/lib/labelwarden/
kill "$server"; wait "$server" 2>/dev/null || true
server=""

echo "--- audit from the image against the fake GitLab"
LABELWARDEN_IMAGE_ROOT="$mounted" cargo test --locked --test image -- --ignored --nocapture

echo "--- size"
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$image"
du -sh "$root" | awk '{print "root filesystem: " $1}'
