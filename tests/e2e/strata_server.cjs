// Helpers for e2e tests: make the tiny demo checkpoint and run `strata serve` on a free port.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const STRATA = process.env.STRATA_BIN;
const ASSETS = process.env.STRATA_TEST_ASSETS || '';
const WORK = process.env.STRATA_E2E_WORK || path.join(require('node:os').tmpdir(), 'strata-e2e');

function assetsPresent() {
  return fs.existsSync(path.join(ASSETS, 'node_modules', 'openai')) &&
      fs.existsSync(path.join(ASSETS, 'tokenizers', 'deepseek_v3', 'tokenizer.json'));
}

// The tiny DeepSeek-V3 checkpoint with the real tokenizer (made once per directory).
function tinyModel(name) {
  const out = path.join(WORK, name);
  if (!fs.existsSync(path.join(out, 'config.json'))) {
    fs.mkdirSync(WORK, { recursive: true });
    execFileSync(STRATA, ['gen-model', '--arch', 'deepseek_v3', '--preset', 'tiny', '--tokenizer',
      path.join(ASSETS, 'tokenizers', 'deepseek_v3'), '--out', out, '--seed', '0'],
    { stdio: 'inherit' });
  }
  return out;
}

// Starts `strata serve --port 0 ...args` and resolves once /health is 200.
async function startServer(modelDir, args = [], { apiKey = '' } = {}) {
  const proc = spawn(STRATA, ['serve', '--model', modelDir, '--port', '0', '--threads', '1',
    '--kv-cache-bytes', String(64 << 20),
    ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let port = 0;
  const onData = (d) => {
    log += d.toString();
    const m = /listening on http:\/\/[\d.]+:(\d+)/.exec(log);
    if (m) port = Number(m[1]);
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 60000;
  let sawLoading = false;
  let loadingReply = null;  // a chat request sent while the model loads
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error('strata serve exited early:\n' + log);
    if (port) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/health`);
        if (r.status === 503 && !sawLoading) {
          sawLoading = true;
          const c = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${apiKey}` },
            body: JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }) });
          loadingReply = { status: c.status, retryAfter: c.headers.get('retry-after'),
            body: await c.json() };
        }
        if (r.status === 200) break;
      } catch (e) { /* not listening yet */ }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!port) throw new Error('no port in the log:\n' + log);
  return {
    proc, port, baseURL: `http://127.0.0.1:${port}`, sawLoading, loadingReply, exited,
    log: () => log,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null) proc.kill(signal);
      return exited;
    },
  };
}

// Reads one metric's value (sum over label sets) from /metrics.
async function metric(baseURL, name, labelFilter = '') {
  const text = await (await fetch(`${baseURL}/metrics`)).text();
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] || '').includes(labelFilter)) {
      sum += Number(m[3]);
      found = true;
    }
  }
  if (!found) throw new Error(`metric ${name} not found`);
  return sum;
}

async function waitFor(predicate, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

module.exports = { assetsPresent, tinyModel, startServer, metric, waitFor, STRATA };
