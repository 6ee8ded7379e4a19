#!/usr/bin/env bash
# Builds server_bench, makes the tiny DeepSeek-V3 checkpoint and writes bench/results/server.json.
# PRESET=bench uses the bench preset (slow on a small CPU).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build}
PRESET=${PRESET:-tiny}
cmake --build "$BUILD" --target strata server_bench
MODEL=models/server-bench-deepseek-v3-$PRESET
[[ -f $MODEL/config.json ]] || "$BUILD"/apps/strata/strata gen-model --arch deepseek_v3 \
  --preset "$PRESET" --tokenizer .cache/test-assets/tokenizers/deepseek_v3 --out "$MODEL" --seed 0
"$BUILD"/bench/server_bench --model "$MODEL" --preset "$PRESET" --out bench/results/server.json "$@"
