#!/usr/bin/env bash
# Builds server_bench, makes the checkpoint and writes bench/results/server.json.
#   ARCH=qwen3_moe|deepseek_v3 (default qwen3_moe), PRESET=tiny|bench (default bench: the issue's
#   figures; slow on a small CPU). Extra arguments go to server_bench, e.g. --skip-batching to
#   re-measure only the server overhead, --threads N for the model.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build}
ARCH=${ARCH:-qwen3_moe}
PRESET=${PRESET:-bench}
case $ARCH in
  qwen3_moe) TOKENIZER=.cache/test-assets/tokenizers/qwen3 ;;
  deepseek_v3) TOKENIZER=.cache/test-assets/tokenizers/deepseek_v3 ;;
  *) echo "ARCH must be qwen3_moe or deepseek_v3" >&2; exit 2 ;;
esac
cmake --build "$BUILD" --target strata server_bench
MODEL=models/server-bench-$ARCH-$PRESET
[[ -f $MODEL/config.json ]] || "$BUILD"/apps/strata/strata gen-model --arch "$ARCH" \
  --preset "$PRESET" --tokenizer "$TOKENIZER" --out "$MODEL" --seed 0
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$BUILD"/bench/server_bench --model "$MODEL" --preset "$ARCH/$PRESET" \
  --out bench/results/server.json "$@"
