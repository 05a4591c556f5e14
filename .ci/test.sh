#!/usr/bin/env bash
# The one test command: every test of the workspace (unit, integration, doc, CLI, and the
# corpus/dataset tests, which read $APKSIFT_TESTDATA, default ../shared/data, and print
# "SKIP: ..." when it is absent).
# The test profile (Cargo.toml) builds workspace crates at opt-level 1 and dependencies at 2,
# which keeps the corpus tests fast without a separate release build.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${APKSIFT_TESTDATA:-}" ] && [ -d ../shared/data ]; then
    export APKSIFT_TESTDATA="$(cd ../shared/data && pwd)"
fi
echo "APKSIFT_TESTDATA=${APKSIFT_TESTDATA:-<unset: data tests will SKIP>}"
start=$(date +%s)
cargo test --workspace --no-fail-fast "$@"
echo "tests took $(( $(date +%s) - start )) s"
