// Reference renderer for chat_template_reference_test: reads a cases file (JSON) and writes the
// reference outputs as JSON to stdout, one entry per case, in order:
//   {"ok": true, "text": "..."} or {"ok": false, "error": "..."}
// Model cases render tokenizer_config.json's chat_template with @huggingface/jinja and the
// context transformers.js' apply_chat_template builds; with "lenml": true the case also goes
// through @lenml/tokenizers' apply_chat_template itself ("lenml": text, or null where its
// bundled Jinja cannot parse the template). Template cases use @huggingface/jinja directly.
//
// Usage: node chat_template_reference.js <test-assets dir> <cases.json>
"use strict";
const fs = require("fs");
const path = require("path");

const [assets, casesPath] = process.argv.slice(2);
const modules = path.resolve(assets, "node_modules");
const { Template } = require(path.join(modules, "@huggingface/jinja"));
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));

// transformers.js' apply_chat_template context: messages, add_generation_prompt, tools,
// documents, the special tokens the config defines (strings or AddedToken objects), then extra
// keyword arguments.
const kSpecialTokens = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
  "cls_token", "mask_token"];
const configs = {};
function config(model) {
  if (!configs[model]) {
    const file = path.join(assets, "tokenizers", model, "tokenizer_config.json");
    configs[model] = JSON.parse(fs.readFileSync(file, "utf8"));
  }
  return configs[model];
}
function chatTemplate(cfg, tools) {
  const t = cfg.chat_template;
  if (!Array.isArray(t)) return t;
  const named = Object.fromEntries(t.map((e) => [e.name, e.template]));
  return tools && named.tool_use ? named.tool_use : named.default;
}
function renderModel(c) {
  const cfg = config(c.model);
  const context = {
    messages: c.messages,
    add_generation_prompt: !!c.add_generation_prompt,
    tools: c.tools ?? null,
    documents: null,
  };
  for (const name of kSpecialTokens) {
    const v = cfg[name];
    if (v) context[name] = typeof v === "object" ? v.content : v;
  }
  Object.assign(context, c.extra || {});
  return new Template(chatTemplate(cfg, c.tools)).render(context);
}

// The same case through @lenml/tokenizers' apply_chat_template (transformers.js), which bundles
// an older Jinja. Returns null when that bundled Jinja cannot handle the template.
const tokenizers = {};
function renderLenml(c) {
  try {
    if (!tokenizers[c.model]) {
      const pkg = require(path.join(modules, "@lenml", "tokenizer-" + c.model));
      tokenizers[c.model] = pkg.fromPreTrained();
    }
    return tokenizers[c.model].apply_chat_template(c.messages, {
      tokenize: false,
      add_generation_prompt: !!c.add_generation_prompt,
      tools: c.tools ?? null,
      ...(c.extra || {}),
    });
  } catch (e) {
    return null;
  }
}

function render(c) {
  if (c.model) return renderModel(c);
  return new Template(c.template).render(c.context || {});
}

const out = cases.map((c) => {
  try {
    const result = { ok: true, text: render(c) };
    if (c.model && c.lenml) result.lenml = renderLenml(c);
    return result;
  } catch (e) {
    return { ok: false, error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(out));
