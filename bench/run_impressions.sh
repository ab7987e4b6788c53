#!/usr/bin/env bash
# The cost of impression logging (issue 25, item 1): bench/run_ab.sh with A serving without
# impressions (--no-impressions) and B logging every list into its event store (the default).
# Usage and environment: those of bench/run_ab.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
A_NAME=no-impressions A_FLAGS="--no-impressions" B_NAME=impressions exec bash bench/run_ab.sh "$@"
