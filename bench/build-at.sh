#!/usr/bin/env bash
# Builds the `sluice` binary of another git revision, for before/after measurements in one
# script, without building the dependencies again (RocksDB takes ~20 min):
#
#   bench/build-at.sh REV OUT      # e.g. bench/build-at.sh HEAD~1 /tmp/sluice-before
#
# The revision is checked out in a git worktree (/tmp/sluice-build-at, or BUILD_AT_TREE) and
# built with the same CARGO_TARGET_DIR as the main checkout, so registry crates (RocksDB) are
# shared. Cargo names a path crate's artifacts by its path relative to its workspace, so the
# worktree's crates overwrite the main checkout's, and their fingerprints then point at the
# worktree's sources. After copying the binary out, the script therefore removes the
# workspace crates' artifacts (`cargo clean -p`): the next build of either checkout compiles
# them again (a few minutes) instead of reusing the other's.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 REV OUT" >&2; exit 2; }
REV=$1 OUT=$2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
# One fixed worktree, reused: its crates keep their artifacts from one run to the next.
TREE="${BUILD_AT_TREE:-/tmp/sluice-build-at}"
if [[ -d "$TREE/.git" || -f "$TREE/.git" ]]; then
  git -C "$TREE" checkout --quiet --force --detach "$REV"
else
  git -C "$ROOT" worktree prune
  git -C "$ROOT" worktree add --detach "$TREE" "$REV" >/dev/null
fi
exe="$(cd "$TREE" && cargo build --release --bin sluice --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "sluice":
        print(m["executable"])')"
[[ -n "$exe" && -x "$exe" ]] || { echo "building $REV produced no sluice binary" >&2; exit 1; }
cp "$exe" "$OUT"
members="$(cd "$TREE" && cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(" ".join("-p " + p["name"] for p in json.load(sys.stdin)["packages"]))')"
# shellcheck disable=SC2086
(cd "$TREE" && cargo clean --release $members -p kafka-protocol >/dev/null 2>&1)
echo "$OUT: sluice at $(git -C "$ROOT" rev-parse --short "$REV")" >&2
