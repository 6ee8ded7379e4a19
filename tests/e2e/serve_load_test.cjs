// `strata serve` under load with the openai SDK: 64 simultaneous streams complete and give the
// same greedy outputs as one-at-a-time requests; a client that disconnects mid-stream frees its
// KV blocks; 1,000 mixed requests with aborts leak no block.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./strata_server.cjs');

const skip = !h.assetsPresent() && 'test assets missing: run scripts/fetch-test-assets';
let server;
let client;

before(async () => {
  if (skip) return;
  const OpenAI = require('openai');
  server = await h.startServer(h.tinyModel('load-model'), ['--served-model-name', 'tiny',
    '--max-num-seqs', '64', '--max-model-len', '512']);
  client = new OpenAI({ apiKey: 'unused', baseURL: server.baseURL + '/v1', maxRetries: 0 });
});

after(async () => {
  if (server) assert.equal((await server.stop()).code, 0);
});

const kvUsed = () => h.metric(server.baseURL, 'strata_kv_cache_blocks_used');
const running = () => h.metric(server.baseURL, 'strata_num_requests_running');

async function streamChat(prompt, maxTokens) {
  const stream = await client.chat.completions.create({ model: 'tiny', temperature: 0,
    max_tokens: maxTokens, stream: true, messages: [{ role: 'user', content: prompt }] });
  let text = '';
  let finish = null;
  let done = 0;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content || '';
    if (c.choices[0]?.finish_reason) {
      finish = c.choices[0].finish_reason;
      ++done;
    }
  }
  return { text, finish, done };
}

test('64 concurrent streams finish complete and equal the one-at-a-time outputs', { skip },
    async () => {
      const prompts = Array.from({ length: 64 }, (_, i) => `Request number ${i}: tell a story`);
      const alone = [];
      for (const p of prompts.slice(0, 16)) alone.push(await streamChat(p, 16));
      const together = await Promise.all(prompts.map((p) => streamChat(p, 16)));
      for (let i = 0; i < 64; ++i) {
        assert.equal(together[i].done, 1, `stream ${i} has exactly one finish chunk`);
        assert.ok(['stop', 'length'].includes(together[i].finish));
      }
      for (let i = 0; i < 16; ++i) {
        assert.equal(together[i].text, alone[i].text, `prompt ${i}: batched == alone`);
      }
      // The one-at-a-time check of the remaining prompts, after the fact.
      for (let i = 16; i < 64; i += 8) {
        assert.equal(together[i].text, (await streamChat(prompts[i], 16)).text, `prompt ${i}`);
      }
      assert.ok(await h.waitFor(async () => (await kvUsed()) === 0));
    });

test('a client that disconnects mid-stream frees its KV blocks', { skip }, async () => {
  assert.ok(await h.waitFor(async () => (await kvUsed()) === 0));
  const controller = new AbortController();
  const stream = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time',
    max_tokens: 480, ignore_eos: true, stream: true }, { signal: controller.signal });
  const cancelled = () => h.metric(server.baseURL, 'strata_http_requests_total', 'status="499"')
      .catch(() => 0);
  const cancelledBefore = await cancelled();
  let chunks = 0;
  for await (const c of stream) {  // the SDK ends the iteration quietly on abort
    if (++chunks === 5) {
      assert.ok((await kvUsed()) > 0, 'the stream holds blocks');
      controller.abort();
    }
  }
  assert.ok(chunks < 100, `the stream ended early (${chunks} chunks)`);
  assert.ok(await h.waitFor(async () => (await kvUsed()) === 0 && (await running()) === 0, 5000),
      'KV usage returns to baseline');
  assert.equal(await cancelled(), cancelledBefore + 1, 'the server saw the client go (499)');
  // Non-streaming requests are cancelled too when their socket closes.
  const c2 = new AbortController();
  const pending = client.completions.create({ model: 'tiny', prompt: 'Long story', max_tokens: 480,
    ignore_eos: true }, { signal: c2.signal }).catch((e) => e);
  assert.ok(await h.waitFor(async () => (await running()) === 1, 5000));
  c2.abort();
  await pending;
  assert.ok(await h.waitFor(async () => (await kvUsed()) === 0 && (await running()) === 0, 5000));
  assert.equal(await cancelled(), cancelledBefore + 2);
});

test('1,000 mixed requests with aborts leak no KV block', { skip }, async () => {
  let next = 0;
  let ok = 0;
  let aborted = 0;
  async function worker(w) {
    while (next < 1000) {
      const i = next++;
      const kind = i % 5;
      const controller = new AbortController();
      const stream = kind === 1 || kind === 3;
      const req = kind === 0 || kind === 1
        ? client.chat.completions.create({ model: 'tiny', max_tokens: 1 + (i % 4), stream,
          messages: [{ role: 'user', content: `hi ${i}` }], temperature: i % 2 ? 0 : 0.8,
          seed: i }, { signal: controller.signal })
        : client.completions.create({ model: 'tiny', prompt: `p${i % 37} ${w}`,
          max_tokens: kind === 4 ? 200 : 1 + (i % 3), ignore_eos: kind === 4, stream, n: 1 + (i % 2) },
        { signal: controller.signal });
      if (kind === 4) setTimeout(() => controller.abort(), 5 + (i % 20));
      try {
        const r = await req;
        if (stream) for await (const _ of r) { /* drain */ }
        ++ok;
      } catch (e) {
        ++aborted;
      }
    }
  }
  await Promise.all(Array.from({ length: 24 }, (_, w) => worker(w)));
  assert.equal(ok + aborted, 1000);
  assert.ok(aborted >= 100, `aborted ${aborted}`);
  assert.ok(ok >= 750, `ok ${ok}`);
  assert.ok(await h.waitFor(async () => (await kvUsed()) === 0 && (await running()) === 0, 10000),
      'every block is back');
  assert.equal(await h.metric(server.baseURL, 'strata_num_requests_waiting'), 0);
});
