#!/usr/bin/env bash
# The binary's command-line contract: --help lists subcommands; unknown subcommands and flags
# exit 2 with a message naming them.
set -u
strata="$1"
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; else echo "ok: $1"; fi; }

out=$("$strata" --help); rc=$?
check "--help exits 0" "[[ $rc -eq 0 ]]"
check "--help lists info" "grep -q 'info' <<<\"\$out\""

out=$("$strata" info --help); rc=$?
check "info --help exits 0 and documents --json" "[[ $rc -eq 0 ]] && grep -q -- '--json' <<<\"\$out\""
check "help shows env var" "grep -q 'STRATA_JSON' <<<\"\$out\""

err=$("$strata" frobnicate 2>&1 >/dev/null); rc=$?
check "unknown subcommand exits 2" "[[ $rc -eq 2 ]]"
check "unknown subcommand is named" "grep -q frobnicate <<<\"\$err\""

err=$("$strata" info --bogus-flag 2>&1 >/dev/null); rc=$?
check "unknown flag exits 2" "[[ $rc -eq 2 ]]"
check "unknown flag is named" "grep -q -- --bogus-flag <<<\"\$err\""

err=$("$strata" --log-level loud info 2>&1 >/dev/null); rc=$?
check "bad --log-level exits 2 naming it" "[[ $rc -eq 2 ]] && grep -q -- --log-level <<<\"\$err\""

model_dir=$(mktemp -d)
err=$("$strata" decode --model "$model_dir" --router 127.0.0.1:1 --ep 2 --ep-transport nccl 2>&1 >/dev/null); rc=$?
check "decode --ep over nccl exits 2 naming --ep-transport" "[[ $rc -eq 2 ]] && grep -q -- --ep-transport <<<\"\$err\""
err=$("$strata" generate --model "$model_dir" --prompt hi --ep 2 --ep-transport rdma 2>&1 >/dev/null); rc=$?
check "generate --ep-transport rdma exits 2 naming it" "[[ $rc -eq 2 ]] && grep -q -- --ep-transport <<<\"\$err\""
err=$("$strata" prefill --model "$model_dir" --router 127.0.0.1:1 --admission-threads 0 2>&1 >/dev/null); rc=$?
check "prefill --admission-threads 0 exits 2 naming it" "[[ $rc -eq 2 ]] && grep -q -- --admission-threads <<<\"\$err\""
err=$("$strata" kvcache --listen 127.0.0.1:0 --capacity-bytes 1000000000000000000 2>&1 >/dev/null); rc=$?
check "kvcache larger than the memory exits 2 naming --capacity-bytes" "[[ $rc -eq 2 ]] && grep -q -- --capacity-bytes <<<\"\$err\""
err=$("$strata" serve --disaggregated --model "$model_dir" --kvcache 2 --kvcache-capacity-bytes 1000000000000000000 2>&1 >/dev/null); rc=$?
check "serve --disaggregated with pools larger than the memory exits 2 naming --kvcache-capacity-bytes" "[[ $rc -eq 2 ]] && grep -q -- --kvcache-capacity-bytes <<<\"\$err\""
err=$("$strata" decode --model "$model_dir" --router 127.0.0.1:1 --kv-cache-bytes 1000000000000000000 2>&1 >/dev/null); rc=$?
check "decode KV cache larger than the memory exits 2 naming --kv-cache-bytes" "[[ $rc -eq 2 ]] && grep -q -- --kv-cache-bytes <<<\"\$err\""
err=$("$strata" kvcache --listen 127.0.0.1:0 --ucx-tls sm 2>&1 >/dev/null); rc=$?
check "kvcache over shared memory alone exits 2 naming --ucx-tls" "[[ $rc -eq 2 ]] && grep -q -- --ucx-tls <<<\"\$err\""
err=$("$strata" decode --model "$model_dir" --router strata-router:http 2>&1 >/dev/null); rc=$?
check "decode --router with a bad port exits 2 naming --router (no endless retries)" "[[ $rc -eq 2 ]] && grep -q -- '--router: bad port' <<<\"\$err\""
err=$("$strata" prefill --model "$model_dir" --router 127.0.0.1:0 2>&1 >/dev/null); rc=$?
check "prefill --router port 0 exits 2 naming --router" "[[ $rc -eq 2 ]] && grep -q -- '--router: .*port 0' <<<\"\$err\""
err=$("$strata" prefill --model "$model_dir" --router 127.0.0.1:7100 --kvcache 127.0.0.1:7300,pool 2>&1 >/dev/null); rc=$?
check "prefill --kvcache entry without a port exits 2 naming --kvcache" "[[ $rc -eq 2 ]] && grep -q -- '--kvcache: .*pool' <<<\"\$err\""
err=$("$strata" kvcache --listen :7300 2>&1 >/dev/null); rc=$?
check "kvcache --listen without a host exits 2 naming --listen" "[[ $rc -eq 2 ]] && grep -q -- '--listen: no host' <<<\"\$err\""
err=$("$strata" kvcache --listen 127.0.0.1:0 --capacity-bytes -5 2>&1 >/dev/null); rc=$?
check "kvcache --capacity-bytes -5 exits 2 (not a wrapped 2^64 - 5)" "[[ $rc -eq 2 ]] && grep -q -- \"--capacity-bytes: '-5' is not a byte count\" <<<\"\$err\""
err=$(STRATA_KV_CACHE_BYTES=2Qi "$strata" decode --model "$model_dir" --router 127.0.0.1:1 2>&1 >/dev/null); rc=$?
check "STRATA_KV_CACHE_BYTES with an unknown unit exits 2 naming --kv-cache-bytes" "[[ $rc -eq 2 ]] && grep -q -- '--kv-cache-bytes: .*unknown unit' <<<\"\$err\""
err=$("$strata" server --model "$model_dir" --routing-policy cache 2>&1 >/dev/null); rc=$?
check "server --routing-policy cache exits 2 naming it and the choices" "[[ $rc -eq 2 ]] && grep -q -- '--routing-policy: .*load, round-robin or random' <<<\"\$err\""
err=$("$strata" serve --disaggregated --model "$model_dir" --decode-threads -1 2>&1 >/dev/null); rc=$?
check "serve --disaggregated --decode-threads -1 exits 2 naming it" "[[ $rc -eq 2 ]] && grep -q -- '--decode-threads' <<<\"\$err\""
# Each KV cache fits, the four together do not: refused before any role starts.
each=$(( $(awk '/^MemAvailable/ {print $2}' /proc/meminfo) * 1024 * 2 / 5 ))
err=$(timeout 20 "$strata" serve --disaggregated --model "$model_dir" --prefill 2 --decode 2 --kvcache 0 --kv-cache-bytes "$each" 2>&1 >/dev/null); rc=$?
check "serve --disaggregated whose KV caches together exceed the memory exits 2 naming --kv-cache-bytes" "[[ $rc -eq 2 ]] && grep -q -- '--kv-cache-bytes: the KV caches of 2 prefill' <<<\"\$err\""
out=$("$strata" serve --help); rc=$?
check "serve --help shows byte sizes with units" "[[ $rc -eq 0 ]] && grep -q -- '--kv-cache-bytes BYTES=1Gi' <<<\"\$out\""
rmdir "$model_dir"

out=$("$strata" info --json); rc=$?
check "info --json prints JSON" "[[ $rc -eq 0 ]] && node -e 'JSON.parse(process.argv[1])' \"\$out\""
exit $fail
