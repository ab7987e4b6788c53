#!/usr/bin/env bash
# The cost of explain=true (issue 25, item 5): bench/run_ab.sh with B asking for explanations.
# An explained request folds nothing: it adds one factorisation of the user's system over their
# history (K x K) and a solve per listed item (engine/fold_in.h FoldIn::Explain).
# Usage and environment: those of bench/run_ab.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
A_NAME=plain B_NAME=explain B_QUERY="&explain=true" exec bash bench/run_ab.sh "$@"
