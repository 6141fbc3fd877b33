#!/usr/bin/env bash
# Build the pinned Kubo (go-ipfs) daemon from its Go module into .build/kubo/<version>/ipfs
# and point .build/bin/ipfs at it. Reruns exit at once when the binary is already there.
#
# Why not `go install github.com/ipfs/kubo/cmd/ipfs@VERSION`: it fails here because the module
# proxy refuses the module's version list (needed for the deprecation check), and kubo's go.mod
# has `exclude` directives, which `go install pkg@version` rejects anyway. So the script downloads
# the module and runs `go build` inside the (read-only) module cache directory with
# -mod=readonly, which needs no writable copy because the module ships a complete go.sum.
#
# Why v0.43.0 and not v0.43.1: v0.43.1 replaces go-libp2p with a personal fork that the module
# proxy reachable from these machines does not serve.
#
# Go caches: the user's defaults (GOMODCACHE, GOCACHE), or whatever the environment sets.
# Cold build on 2 cores: 2m09s with empty Go caches (about 540 MB of modules downloaded, 790 MB of
# build cache written); 2m40s with modules cached but an empty build cache. Reruns take ~20 ms.
set -euo pipefail

KUBO_VERSION="${KUBO_VERSION:-v0.43.0}"
KUBO_MODULE="github.com/ipfs/kubo"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$repo_root/.build/kubo/$KUBO_VERSION"
out_bin="$out_dir/ipfs"
link_dir="$repo_root/.build/bin"

link_binary() {
    mkdir -p "$link_dir"
    ln -sfn "../kubo/$KUBO_VERSION/ipfs" "$link_dir/ipfs"
}

if [[ -x "$out_bin" ]]; then
    link_binary
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "build-kubo: 'go' is not on PATH; install Go >= 1.26.5 to build Kubo $KUBO_VERSION" >&2
    exit 1
fi

start=$(date +%s)
echo "build-kubo: building Kubo $KUBO_VERSION with $(go version | cut -d' ' -f3) (a few minutes on 2 cores)" >&2

mod_dir="$(go mod download -json "$KUBO_MODULE@$KUBO_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$mod_dir" || ! -f "$mod_dir/go.mod" ]]; then
    echo "build-kubo: could not download $KUBO_MODULE@$KUBO_VERSION from the Go module proxy" >&2
    exit 1
fi
commit="$(go mod download -json "$KUBO_MODULE@$KUBO_VERSION" | sed -n 's/^[[:space:]]*"Hash": "\(.\{7\}\).*",$/\1/p')"

mkdir -p "$out_dir"
tmp_bin="$(mktemp "$out_dir/.ipfs.XXXXXX")"
trap 'rm -f "$tmp_bin"' EXIT

(
    cd "$mod_dir"
    CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false -trimpath" \
        go build -ldflags "-s -w -X $KUBO_MODULE.CurrentCommit=${commit:-unknown}" -o "$tmp_bin" ./cmd/ipfs
)

built_version="$("$tmp_bin" version --number)"
if [[ "v$built_version" != "$KUBO_VERSION" ]]; then
    echo "build-kubo: built binary reports version $built_version, expected $KUBO_VERSION" >&2
    exit 1
fi

chmod 0755 "$tmp_bin"
mv -f "$tmp_bin" "$out_bin"
trap - EXIT
link_binary
echo "build-kubo: built $out_bin in $(( $(date +%s) - start )) s" >&2
