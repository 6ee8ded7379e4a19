// Reference tokenization with transformers.js (@lenml/tokenizers), for tokenizer_parity_test.
// Usage: node tokenizer_reference.js ASSETS_DIR INPUT.json OUTPUT.json
//   INPUT:  {"models": ["qwen3", ...], "texts": ["...", ...], "id_lists": [[ids], ...]}
//   OUTPUT: {"<model>": {"with_special": [[ids]], "without_special": [[ids]],
//                        "decoded": ["..."], "decoded_skip_special": ["..."],
//                        "id_lists_decoded": ["..."], "id_lists_decoded_skip_special": ["..."]}}
// decoded* decode the without_special ids; id_lists_decoded* decode the given id lists. The tokenizer files are read from
// ASSETS_DIR/tokenizers/<model>/, the same files the C++ tokenizer loads.
'use strict';
const fs = require('fs');
const path = require('path');

const [assets, inputPath, outputPath] = process.argv.slice(2);
const { TokenizerLoader } = require(path.join(assets, 'node_modules', '@lenml', 'tokenizers'));
const input = JSON.parse(fs.readFileSync(inputPath, 'utf8'));
const output = {};
for (const model of input.models) {
  const dir = path.join(assets, 'tokenizers', model);
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')),
    tokenizerConfig: JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')),
  });
  const result = { with_special: [], without_special: [], decoded: [], decoded_skip_special: [] };
  for (const text of input.texts) {
    const without = tok.encode(text, { add_special_tokens: false });
    result.with_special.push(tok.encode(text, { add_special_tokens: true }));
    result.without_special.push(without);
    // transformers.js throws on an empty id list; its text is "".
    const decode = (skip) => (without.length ? tok.decode(without, { skip_special_tokens: skip }) : '');
    result.decoded.push(decode(false));
    result.decoded_skip_special.push(decode(true));
  }
  result.id_lists_decoded = [];
  result.id_lists_decoded_skip_special = [];
  for (const ids of input.id_lists || []) {
    result.id_lists_decoded.push(ids.length ? tok.decode(ids, { skip_special_tokens: false }) : '');
    result.id_lists_decoded_skip_special.push(
        ids.length ? tok.decode(ids, { skip_special_tokens: true }) : '');
  }
  output[model] = result;
}
fs.writeFileSync(outputPath, JSON.stringify(output));
