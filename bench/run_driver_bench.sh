#!/usr/bin/env bash
# Measures `strata bench` itself against bench/fake_openai_server (a separate process answering
# at once) and writes bench/results/bench_driver.json: streaming requests/s with tiny responses,
# SSE events/s with long ones, and the timestamping error (driver_timestamp_check), with the
# git SHA, CPU model and the machine's load average (the figures are only as quiet as it was).
#
# Usage: bench/run_driver_bench.sh [BUILD_DIR]   (needs .cache/test-assets for the tokenizer)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
strata="$build/apps/strata/strata"
fake="$build/bench/fake_openai_server"
check="$build/bench/driver_timestamp_check"
tok=".cache/test-assets/tokenizers/qwen3"
tmp="$(mktemp -d)"
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$tmp"' EXIT
pids=()

start_fake() {  # tokens-per-response -> sets port
  "$fake" --port 0 --tokens-per-response "$1" >"$tmp/fake_$1.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do
    port=$(sed -n 's/^listening on //p' "$tmp/fake_$1.log")
    [[ -n "$port" ]] && return 0
    sleep 0.1
  done
  echo "fake server did not start" >&2
  exit 1
}

load_before=$(cut -d' ' -f1 /proc/loadavg)
start_fake 4
"$strata" bench --base-url "http://127.0.0.1:$port" --model fake --tokenizer "$tok" \
  --num-prompts 20000 --input-len 8 --output-len 4 --max-concurrency 32 --progress off \
  --result-json "$tmp/requests.json" >/dev/null
start_fake 256
"$strata" bench --base-url "http://127.0.0.1:$port" --model fake --tokenizer "$tok" \
  --num-prompts 2000 --input-len 8 --output-len 256 --max-concurrency 32 --progress off \
  --result-json "$tmp/events.json" >/dev/null
"$check" --requests 200 --concurrency 8 --tokens 32 --gap-us 5000 >"$tmp/timestamps.json"
load_after=$(cut -d' ' -f1 /proc/loadavg)

mkdir -p bench/results
node -e '
const fs = require("fs");
const [req, ev, ts, sha, cpu, cores, l0, l1, out] = process.argv.slice(1);
const r = JSON.parse(fs.readFileSync(req)), e = JSON.parse(fs.readFileSync(ev));
const t = JSON.parse(fs.readFileSync(ts));
const result = {
  benchmark: "strata bench driver speed (fake_openai_server answering at once)",
  date: new Date().toISOString(),
  git_sha: sha, cpu_model: cpu, cpu_cores: Number(cores),
  load_average_before: Number(l0), load_average_after: Number(l1),
  note: "the machine is shared; figures are as quiet as its load average allows",
  streaming_requests: {
    target: ">= 2000 requests/s", tokens_per_response: 4, max_concurrency: 32,
    completed: r.completed, failed: r.failed, duration_s: r.duration,
    requests_per_s: r.request_throughput, tokens_per_s: r.output_throughput },
  sse_events: {
    target: ">= 50000 events/s", tokens_per_response: 256, max_concurrency: 32,
    completed: e.completed, failed: e.failed, duration_s: e.duration,
    events_per_s: e.output_throughput, requests_per_s: e.request_throughput },
  timestamp_error: {
    target: "< 100 us (driver time of a token minus the fake server write time)",
    runs: t },
};
fs.writeFileSync(out, JSON.stringify(result, null, 2) + "\n");
' "$tmp/requests.json" "$tmp/events.json" "$tmp/timestamps.json" \
  "$(git rev-parse --short=12 HEAD)" "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)" \
  "$(nproc)" "$load_before" "$load_after" bench/results/bench_driver.json
cat bench/results/bench_driver.json
