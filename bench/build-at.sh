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
# worktree's sources. After copying the binary out (or on a failure), the script therefore removes the
# workspace crates' artifacts (`cargo clean -p`): the next build of either checkout compiles
# them again (a few minutes) instead of reusing the other's.
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 REV OUT" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO="${CARGO:-cargo}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
# The revision as the main checkout names it (HEAD~1 means the main checkout's HEAD~1).
REV="$(git -C "$ROOT" rev-parse --verify "$1^{commit}")"
OUT=$2
# One fixed worktree, reused: its crates keep their artifacts from one run to the next.
TREE="${BUILD_AT_TREE:-/tmp/sluice-build-at}"
if [[ -e "$TREE/.git" ]]; then
  git -C "$TREE" checkout --quiet --force --detach "$REV"
elif [[ -e "$TREE" ]]; then
  echo "$TREE exists and is not a git worktree; set BUILD_AT_TREE to another path" >&2; exit 2
else
  git -C "$ROOT" worktree prune
  git -C "$ROOT" worktree add --detach "$TREE" "$REV" >/dev/null
fi
# However the build ends, the worktree's artifacts must not shadow the main checkout's.
forget_worktree_artifacts() {
  local members
  members="$(cd "$TREE" && "$CARGO" metadata --no-deps --format-version 1 2>/dev/null |
    python3 -c 'import json,sys; print(" ".join("-p " + p["name"] for p in json.load(sys.stdin)["packages"]))')" || return 0
  # shellcheck disable=SC2086
  (cd "$TREE" && "$CARGO" clean --release $members -p kafka-protocol >/dev/null 2>&1) || true
}
trap forget_worktree_artifacts EXIT
messages="$(cd "$TREE" && "$CARGO" build --release --bin sluice --message-format=json-render-diagnostics)" || {
  echo "building $(git -C "$ROOT" rev-parse --short "$REV") failed (diagnostics above)" >&2; exit 1; }
exe="$(printf '%s\n' "$messages" | python3 -c 'import json,sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "sluice":
        print(m["executable"])')"
[[ -n "$exe" && -x "$exe" ]] || { echo "building $REV produced no sluice binary" >&2; exit 1; }
cp "$exe" "$OUT"
echo "$OUT: sluice at $(git -C "$ROOT" rev-parse --short "$REV")" >&2
