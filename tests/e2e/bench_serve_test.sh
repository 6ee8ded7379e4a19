#!/usr/bin/env bash
# `strata bench` against a real `strata serve` running the tiny DeepSeek-V3 checkpoint: a short
# run completes with zero failures and writes valid JSON and JSONL; a concurrency sweep writes a
# valid CSV and SVG. Needs the test assets (tokenizer) and Node 20 (to check the files).
# Usage: bench_serve_test.sh STRATA_BIN WORK_DIR ASSETS_DIR
set -u
strata="$1"
work="$2"
assets="$3"
tok="$assets/tokenizers/deepseek_v3"
if [[ ! -f "$tok/tokenizer.json" ]]; then
  echo "SKIP: test assets missing ($tok); run scripts/fetch-test-assets"
  exit 0
fi
rm -rf "$work"
mkdir -p "$work"
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

model="$work/tiny-dsv3"
"$strata" gen-model --arch deepseek_v3 --preset tiny --tokenizer "$tok" --out "$model" --seed 0 \
  >"$work/gen.log" 2>&1
check "gen-model made the tiny checkpoint" "[[ -f $model/config.json ]]"

"$strata" serve --model "$model" --port 0 --threads 1 --kv-cache-bytes $((64 << 20)) \
  >"$work/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null; wait $serve_pid 2>/dev/null' EXIT
port=""
for _ in $(seq 600); do
  port=$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$work/serve.log" | head -1)
  if [[ -n "$port" ]] && curl -sf "http://127.0.0.1:$port/health" >/dev/null; then break; fi
  if ! kill -0 $serve_pid 2>/dev/null; then break; fi
  sleep 0.1
done
if ! curl -sf "http://127.0.0.1:$port/health" >/dev/null; then
  echo "FAIL: strata serve did not become healthy"; cat "$work/serve.log"; exit 1
fi

"$strata" bench --base-url "http://127.0.0.1:$port/v1" --tokenizer "$model" --endpoint chat \
  --dataset random --num-prompts 12 --warmup 2 --input-len 24 --output-len 8 --ignore-eos \
  --max-concurrency 4 --request-rate 50 --seed 1 --goodput ttft:60000 --timeout 120 \
  --progress plain --result-json "$work/result.json" --requests-jsonl "$work/requests.jsonl" \
  >"$work/bench.out" 2>&1
rc=$?
check "bench exits 0" "[[ $rc -eq 0 ]]"
check "bench prints the summary table" "grep -q 'Serving Benchmark Result' $work/bench.out"

"$strata" bench --base-url "http://127.0.0.1:$port" --tokenizer "$model" --endpoint completions \
  --dataset prefix --prefix-groups 2 --prefix-requests 3 --prefix-len 16 --input-len 8 \
  --output-len 4 --ignore-eos --sweep-concurrency 1,3 --goodput tpot:60000 --progress off \
  --sweep-out "$work/sweep" >"$work/sweep.out" 2>&1
rc=$?
check "sweep exits 0" "[[ $rc -eq 0 ]]"

node - "$work" <<'EOF'
const fs = require('fs');
const work = process.argv[2];
let bad = 0;
const ok = (what, cond) => { console.log((cond ? 'ok: ' : 'FAIL: ') + what); if (!cond) bad = 1; };
const r = JSON.parse(fs.readFileSync(`${work}/result.json`, 'utf8'));
ok('result JSON: 12 completed, 0 failed', r.completed === 12 && r.failed === 0);
ok('result JSON: exact output tokens (ignore_eos)', r.total_output_tokens === 12 * 8);
ok('result JSON: input tokens from the tokenizer', r.total_input_tokens === 12 * 24);
ok('result JSON: latency fields', r.mean_ttft_ms > 0 && r.p99_tpot_ms > 0 && r.median_e2el_ms > 0);
ok('result JSON: git SHA header', typeof r.strata.git_sha === 'string' && r.strata.git_sha.length > 0);
const rows = fs.readFileSync(`${work}/requests.jsonl`, 'utf8').trim().split('\n').map(JSON.parse);
ok('JSONL: 12 requests, all ok', rows.length === 12 && rows.every((x) => x.status === 'ok'));
ok('JSONL: prompt tokens reported by the server', rows.every((x) => x.usage_prompt_tokens >= 24));
ok('JSONL: 8 tokens each', rows.every((x) => x.output_tokens === 8));
const csv = fs.readFileSync(`${work}/sweep/sweep.csv`, 'utf8').trim().split('\n');
const cols = csv[0].split(',').length;
ok('CSV: header and 2 points', csv.length === 3 && csv.every((l) => l.split(',').length === cols));
for (const p of ['concurrency_1', 'concurrency_3']) {
  const j = JSON.parse(fs.readFileSync(`${work}/sweep/${p}.json`, 'utf8'));
  ok(`sweep ${p}: 6 completed, 0 failed`, j.completed === 6 && j.failed === 0);
}
const svg = fs.readFileSync(`${work}/sweep/sweep.svg`, 'utf8');
// Well-formed enough: one svg root, every opened tag closed in order.
const stack = [];
let wellFormed = svg.startsWith('<?xml');
for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
  if (m[1]) { if (stack.pop() !== m[2]) wellFormed = false; } else if (!m[3]) stack.push(m[2]);
}
ok('SVG: well-formed with two panels', wellFormed && stack.length === 0 &&
   (svg.match(/class="panel"/g) || []).length === 2);
process.exit(bad);
EOF
[[ $? -eq 0 ]] || fail=1
if [[ $fail -ne 0 ]]; then
  echo "--- bench.out"; cat "$work/bench.out"; echo "--- sweep.out"; cat "$work/sweep.out"
  echo "--- serve.log (tail)"; tail -30 "$work/serve.log"
fi
exit $fail
