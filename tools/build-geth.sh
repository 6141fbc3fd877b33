#!/usr/bin/env bash
# Build the pinned geth (go-ethereum) from its Go module into .build/geth/<version>/geth and point
# .build/bin/geth at it. Reruns exit at once when the binary is already there.
#
# Why geth v1.13.15: it is the last geth that seals Clique (proof of authority) blocks; from v1.14
# the miner has no sealing loop. Besu and GoQuorum (QBFT) cannot be installed on these machines.
#
# Like tools/build-kubo.sh, the script downloads the module and runs `go build` inside the
# (read-only) module cache directory with -mod=readonly: the module ships a complete go.sum, so no
# writable copy is needed.
#
# Why -checklinkname=0: geth v1.13.15 depends on github.com/fjl/memsize, which reaches into the
# runtime with go:linkname (runtime.stopTheWorld); Go >= 1.23 refuses such links unless told not to
# check them. memsize only backs the debug_memStats-style memory report, which we never call.
#
# Go caches: the user's defaults (GOMODCACHE, GOCACHE), or whatever the environment sets.
# Cold build on a loaded 2-core machine: about 12 minutes; 61 s when the Go caches already hold the
# dependencies' builds. Reruns take ~10 ms.
set -euo pipefail

GETH_VERSION="${GETH_VERSION:-v1.13.15}"
GETH_MODULE="github.com/ethereum/go-ethereum"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="$repo_root/.build/geth/$GETH_VERSION"
out_bin="$out_dir/geth"
link_dir="$repo_root/.build/bin"

link_binary() {
    mkdir -p "$link_dir"
    ln -sfn "../geth/$GETH_VERSION/geth" "$link_dir/geth"
}

if [[ -x "$out_bin" ]]; then
    link_binary
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "build-geth: 'go' is not on PATH; install Go >= 1.21 to build geth $GETH_VERSION" >&2
    exit 1
fi

start=$(date +%s)
echo "build-geth: building geth $GETH_VERSION with $(go version | cut -d' ' -f3) (about 12 minutes cold on 2 cores)" >&2

mod_json="$(go mod download -json "$GETH_MODULE@$GETH_VERSION")"
mod_dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$mod_json")"
if [[ -z "$mod_dir" || ! -f "$mod_dir/go.mod" ]]; then
    echo "build-geth: could not download $GETH_MODULE@$GETH_VERSION from the Go module proxy" >&2
    exit 1
fi
commit="$(sed -n 's/^[[:space:]]*"Hash": "\(.\{8\}\).*",$/\1/p' <<<"$mod_json")"

mkdir -p "$out_dir"
tmp_bin="$(mktemp "$out_dir/.geth.XXXXXX")"
trap 'rm -f "$tmp_bin"' EXIT

(
    cd "$mod_dir"
    CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false -trimpath" \
        go build -ldflags "-s -w -checklinkname=0 -X $GETH_MODULE/internal/version.gitCommit=${commit:-unknown}" \
        -o "$tmp_bin" ./cmd/geth
)

# `geth version` prints "Version: 1.13.15-stable".
built_version="$("$tmp_bin" version | sed -n 's/^Version: \([0-9.]*\).*/\1/p')"
if [[ "v$built_version" != "$GETH_VERSION" ]]; then
    echo "build-geth: built binary reports version '$built_version', expected $GETH_VERSION" >&2
    exit 1
fi

chmod 0755 "$tmp_bin"
mv -f "$tmp_bin" "$out_bin"
trap - EXIT
link_binary
echo "build-geth: built $out_bin in $(( $(date +%s) - start )) s" >&2
