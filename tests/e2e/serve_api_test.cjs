// `strata serve` over HTTP with the official openai SDK: every endpoint, streaming and not,
// sampling options, and an OpenAI error object for every bad case.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const h = require('./strata_server.cjs');

const skip = !h.assetsPresent() && 'test assets missing: run scripts/fetch-test-assets';
const KEY = 'e2e-key';
let server;
let client;
let OpenAI;

before(async () => {
  if (skip) return;
  OpenAI = require('openai');
  const model = h.tinyModel('api-model');
  server = await h.startServer(model, ['--served-model-name', 'tiny', '--api-key', KEY,
    '--max-body-bytes', '65536', '--max-model-len', '256'], { apiKey: KEY });
  client = new OpenAI({ apiKey: KEY, baseURL: server.baseURL + '/v1', maxRetries: 0 });
});

after(async () => {
  if (server) {
    const { code } = await server.stop('SIGTERM');
    assert.equal(code, 0, 'SIGTERM drains and exits 0');
  }
});

const chat = (extra = {}) => ({
  model: 'tiny', messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 12,
  temperature: 0, ...extra,
});

async function collectChat(stream) {
  let text = '';
  let finish = null;
  let usage = null;
  let role = null;
  const chunks = [];
  for await (const c of stream) {
    chunks.push(c);
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) {
      if (ch.delta.role) role = ch.delta.role;
      text += ch.delta.content || '';
      if (ch.finish_reason) finish = ch.finish_reason;
    }
  }
  return { text, finish, usage, role, chunks };
}

test('503 with an error object while the model loads', { skip }, async () => {
  // Loading the tokenizer and weights takes seconds; the port is open from the start.
  assert.ok(server.sawLoading, '/health answered 503 before 200');
  assert.equal(server.loadingReply.status, 503);
  assert.equal(server.loadingReply.retryAfter, '1');
  assert.equal(server.loadingReply.body.error.type, 'service_unavailable_error');
});

test('models list and retrieve', { skip }, async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['tiny']);
  assert.equal(list.data[0].object, 'model');
  const m = await client.models.retrieve('tiny');
  assert.equal(m.id, 'tiny');
  await assert.rejects(client.models.retrieve('nope'), (e) => e.status === 404);
});

test('chat completion, non-streaming and streaming agree', { skip }, async () => {
  const r = await client.chat.completions.create(chat());
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, 'tiny');
  assert.equal(typeof r.created, 'number');
  assert.equal(typeof r.system_fingerprint, 'string');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(typeof r.usage.prompt_tokens_details.cached_tokens, 'number');

  const s = await collectChat(await client.chat.completions.create(
      chat({ stream: true, stream_options: { include_usage: true } })));
  assert.equal(s.role, 'assistant');
  assert.equal(s.text, r.choices[0].message.content);
  assert.equal(s.finish, r.choices[0].finish_reason);
  assert.deepEqual(s.usage.completion_tokens, r.usage.completion_tokens);
  assert.equal(s.chunks.at(-1).choices.length, 0);  // the usage chunk
  for (const c of s.chunks) {
    assert.equal(c.object, 'chat.completion.chunk');
    assert.equal(c.id, s.chunks[0].id);
  }
});

test('completions: string, token ids, several prompts, echo, streaming', { skip }, async () => {
  const r = await client.completions.create({ model: 'tiny', prompt: 'The quick brown fox',
    max_tokens: 8, temperature: 0 });
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].index, 0);
  assert.equal(r.choices[0].finish_reason, r.usage.completion_tokens < 8 ? 'stop' : 'length');

  let streamed = '';
  for await (const c of await client.completions.create({ model: 'tiny',
    prompt: 'The quick brown fox', max_tokens: 8, temperature: 0, stream: true })) {
    streamed += c.choices.map((x) => x.text).join('');
  }
  assert.equal(streamed, r.choices[0].text);

  const ids = await client.completions.create({ model: 'tiny', prompt: [1, 500, 700, 900],
    max_tokens: 4, temperature: 0 });
  assert.equal(ids.usage.prompt_tokens, 4);

  const many = await client.completions.create({ model: 'tiny',
    prompt: ['The quick brown fox', 'Once upon a time'], max_tokens: 5, temperature: 0,
    echo: true });
  assert.equal(many.choices.length, 2);
  assert.ok(many.choices[0].text.startsWith('The quick brown fox'));
  assert.ok(many.choices[1].text.startsWith('Once upon a time'));
  assert.equal(many.choices[0].text, 'The quick brown fox' + r.choices[0].text.slice(0,
      many.choices[0].text.length - 'The quick brown fox'.length));
});

test('n > 1 and seeded sampling is reproducible', { skip }, async () => {
  const req = chat({ n: 3, temperature: 1.0, seed: 1234, max_tokens: 16 });
  const a = await client.chat.completions.create(req);
  const b = await client.chat.completions.create(req);
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  assert.deepEqual(a.choices.map((c) => c.message.content), b.choices.map((c) => c.message.content));
  const distinct = new Set(a.choices.map((c) => c.message.content));
  assert.ok(distinct.size > 1, 'the n choices use different seeds');
  const c = await client.chat.completions.create({ ...req, seed: 99 });
  assert.notDeepEqual(c.choices.map((x) => x.message.content), a.choices.map((x) => x.message.content));
});

test('stop strings never reach the client, streaming or not', { skip }, async () => {
  const full = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time',
    max_tokens: 24, temperature: 0, ignore_eos: true });
  const text = full.choices[0].text;
  assert.ok(text.length >= 6, `need some output, got ${JSON.stringify(text)}`);
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
  const expected = text.slice(0, text.indexOf(stop));
  const r = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time',
    max_tokens: 24, temperature: 0, ignore_eos: true, stop: [stop, 'zzzz-never'] });
  assert.equal(r.choices[0].text, expected);
  assert.equal(r.choices[0].finish_reason, 'stop');
  let streamed = '';
  let finish = null;
  for await (const c of await client.completions.create({ model: 'tiny',
    prompt: 'Once upon a time', max_tokens: 24, temperature: 0, ignore_eos: true, stop,
    stream: true })) {
    streamed += c.choices[0].text;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(streamed, expected);
  assert.equal(finish, 'stop');
});

test('logprobs in chat and completions formats', { skip }, async () => {
  const r = await client.chat.completions.create(chat({ logprobs: true, top_logprobs: 3 }));
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  for (const t of content) {
    assert.equal(typeof t.token, 'string');
    assert.ok(t.logprob <= 0);
    assert.ok(Array.isArray(t.bytes));
    assert.equal(t.top_logprobs.length, 3);
    assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[2].logprob);
    // Greedy: the sampled token is the most likely one.
    assert.equal(t.logprob, t.top_logprobs[0].logprob);
  }
  const c = await client.completions.create({ model: 'tiny', prompt: 'Once upon a time',
    max_tokens: 6, temperature: 0, logprobs: 2, ignore_eos: true });
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 6);
  assert.equal(lp.token_logprobs.length, 6);
  assert.equal(lp.top_logprobs.length, 6);
  assert.equal(lp.text_offset.length, 6);
  assert.equal(lp.text_offset[0], 0);
  for (let i = 1; i < 6; ++i) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  assert.ok(Object.keys(lp.top_logprobs[0]).length <= 2);
});

test('completions: echo with logprobs scores the prompt tokens too', { skip }, async () => {
  const P = [1, 500, 700, 900, 1100];
  const req = { model: 'tiny', prompt: P, max_tokens: 3, temperature: 0, ignore_eos: true,
    echo: true, logprobs: 3 };
  const r = await client.completions.create(req);
  const c = r.choices[0];
  const lp = c.logprobs;
  const n = P.length + r.usage.completion_tokens;
  assert.equal(r.usage.completion_tokens, 3);
  for (const k of ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset']) {
    assert.equal(lp[k].length, n, k);
  }
  // Nothing precedes the first prompt token: null, as OpenAI sends it.
  assert.equal(lp.token_logprobs[0], null);
  assert.equal(lp.top_logprobs[0], null);
  assert.equal(lp.text_offset[0], 0);
  for (let i = 1; i < n; ++i) {
    assert.equal(typeof lp.token_logprobs[i], 'number');
    assert.ok(lp.token_logprobs[i] <= 0);
    const alts = Object.values(lp.top_logprobs[i]);
    assert.ok(alts.length >= 1 && alts.length <= 3);
    // The prompt token is never more likely than the best alternative.
    assert.ok(lp.token_logprobs[i] <= Math.max(...alts) + 1e-6);
    assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  }
  // The echoed text is the prompt's text; the generated text starts right after it.
  const plain = await client.completions.create({ ...req, echo: false, logprobs: 3 });
  const echoLen = c.text.length - plain.choices[0].text.length;
  assert.equal(c.text.slice(echoLen), plain.choices[0].text);
  assert.equal(Buffer.byteLength(c.text.slice(0, echoLen)), lp.text_offset[P.length]);
  assert.deepEqual(lp.tokens.slice(P.length), plain.choices[0].logprobs.tokens);

  // Prompt token k's alternatives are the distribution after P[0..k): the same distribution a
  // request for the prompt P[0..k) samples its first token from (computed by a separate path:
  // the last-row logits of a shorter prefill).
  for (let k = 1; k < P.length; ++k) {
    const g = await client.completions.create({ model: 'tiny', prompt: P.slice(0, k),
      max_tokens: 1, temperature: 0, ignore_eos: true, logprobs: 3 });
    const want = g.choices[0].logprobs.top_logprobs[0];
    const got = lp.top_logprobs[k];
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `position ${k}`);
    for (const t of Object.keys(want)) assert.ok(Math.abs(got[t] - want[t]) < 2e-3, `${k} ${t}`);
  }

  // Streaming: the first chunk carries the echo and the prompt's logprobs; all chunks together
  // equal the non-streaming answer.
  const s = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let text = '';
  for await (const chunk of await client.completions.create({ ...req, stream: true })) {
    for (const ch of chunk.choices) {
      text += ch.text;
      if (ch.logprobs) for (const k of Object.keys(s)) s[k].push(...ch.logprobs[k]);
    }
  }
  assert.equal(text, c.text);
  assert.deepEqual(s.tokens, lp.tokens);
  assert.deepEqual(s.text_offset, lp.text_offset);
  assert.equal(s.token_logprobs[0], null);
  for (let i = 1; i < n; ++i) assert.ok(Math.abs(s.token_logprobs[i] - lp.token_logprobs[i]) < 1e-5);

  // A cached prompt has no logits: with prompt logprobs the prompt is computed again.
  const long = 'Strata serves mixture-of-experts models. '.repeat(8);
  const a = await client.completions.create({ model: 'tiny', prompt: long, max_tokens: 2,
    temperature: 0, echo: true, logprobs: 1 });
  const b = await client.completions.create({ model: 'tiny', prompt: long, max_tokens: 2,
    temperature: 0, echo: true, logprobs: 1 });
  assert.equal(b.usage.prompt_tokens_details.cached_tokens, 0);
  assert.equal(b.choices[0].logprobs.tokens.length, b.usage.prompt_tokens + 2);
  assert.deepEqual(b.choices[0].logprobs.token_logprobs, a.choices[0].logprobs.token_logprobs);
  assert.ok(b.choices[0].text.startsWith(long));
});

test('serve --device: a device this machine lacks is a clean start-up error naming --device',
  { skip }, async () => {
    const { spawnSync, execFileSync } = require('node:child_process');
    const info = JSON.parse(execFileSync(h.STRATA, ['info', '--json']).toString());
    const haveGpu = info.cuda_built && (info.gpus || []).length > 0;
    const cases = [['cuda:99', 'there are|no CUDA device|without it'], ['tpu', 'cpu, cuda or cuda:N']];
    if (!haveGpu) cases.push(['cuda', info.cuda_built ? 'no CUDA device' : 'built without it']);
    const model = h.tinyModel('api-model');
    for (const [device, why] of cases) {
      const r = spawnSync(h.STRATA, ['serve', '--model', model, '--port', '0', '--device', device],
        { timeout: 30000 });
      const err = r.stderr.toString() + r.stdout.toString();
      assert.equal(r.signal, null, `${device}: ended by a signal: ${err}`);
      assert.equal(r.status, 2, `${device}: exit code: ${err}`);
      assert.match(err, /--device/, device);
      assert.match(err, new RegExp(why), device);
      assert.doesNotMatch(err, /terminate called|Aborted|Segmentation|listening on/, device);
    }
  });

test('prefix caching is reported as cached_tokens', { skip }, async () => {
  const long = 'Strata serves mixture-of-experts models. '.repeat(8);
  const msgs = { messages: [{ role: 'user', content: long }], max_tokens: 2 };
  await client.chat.completions.create(chat(msgs));
  const again = await client.chat.completions.create(chat(msgs));
  assert.ok(again.usage.prompt_tokens_details.cached_tokens >= 16,
      JSON.stringify(again.usage));
  assert.ok(await h.metric(server.baseURL, 'strata_prefix_cache_hit_tokens_total') >= 16);
});

async function rawPost(path, body, headers = {}) {
  const r = await fetch(server.baseURL + path, { method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...headers },
    body });
  return { status: r.status, headers: r.headers, json: await r.json() };
}

function assertErrorShape(j) {
  assert.equal(typeof j.error.message, 'string');
  assert.equal(typeof j.error.type, 'string');
  assert.ok('param' in j.error && 'code' in j.error);
}

test('errors: OpenAI error objects with the right status', { skip }, async () => {
  const bad = await rawPost('/v1/chat/completions', '{"model": "tiny", "messages": [');
  assert.equal(bad.status, 400);
  assertErrorShape(bad.json);

  const cases = [
    [chat({ max_tokens: 'ten' }), 400, 'max_tokens'],
    [chat({ temperature: 7 }), 400, 'temperature'],
    [chat({ top_p: 0 }), 400, 'top_p'],
    [chat({ n: 0 }), 400, 'n'],
    [chat({ messages: [{ role: 'wizard', content: 'x' }] }), 400, 'messages[0].role'],
    [chat({ max_tokens: 1000 }), 400, 'max_tokens'],
    [chat({ model: 'gpt-17' }), 404, null],
  ];
  for (const [body, status, param] of cases) {
    await assert.rejects(client.chat.completions.create(body), (e) => {
      assert.equal(e.status, status, JSON.stringify(body));
      assert.equal(e.error.param ?? null, param);
      assert.equal(typeof e.error.message, 'string');
      return true;
    });
  }
  await assert.rejects(client.chat.completions.create(chat({ max_tokens: 1000 })),
      (e) => e.code === 'context_length_exceeded');
  await assert.rejects(client.completions.create({ model: 'tiny', prompt: [10 ** 8] }),
      (e) => e.status === 400);

  const big = await rawPost('/v1/completions',
      JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(70000) }));
  assert.equal(big.status, 413);
  assertErrorShape(big.json);

  const wrongKey = new OpenAI({ apiKey: 'wrong', baseURL: server.baseURL + '/v1', maxRetries: 0 });
  await assert.rejects(wrongKey.chat.completions.create(chat()), (e) => e.status === 401);
  const noKey = await fetch(server.baseURL + '/v1/models');
  assert.equal(noKey.status, 401);
  assertErrorShape(await noKey.json());
  assert.equal((await fetch(server.baseURL + '/health')).status, 200);
});

test('version, health and metrics', { skip }, async () => {
  const v = await (await fetch(server.baseURL + '/version')).json();
  assert.equal(typeof v.version, 'string');
  const text = await (await fetch(server.baseURL + '/metrics')).text();
  for (const name of ['strata_time_to_first_token_seconds', 'strata_time_per_output_token_seconds',
    'strata_e2e_request_latency_seconds', 'strata_prompt_tokens_total',
    'strata_generation_tokens_total', 'strata_num_requests_running', 'strata_num_requests_waiting',
    'strata_kv_cache_usage_ratio', 'strata_prefix_cache_hit_tokens_total',
    'strata_http_requests_total']) {
    assert.ok(text.includes(name), name);
  }
  assert.ok(await h.metric(server.baseURL, 'strata_http_requests_total', 'status="404"') >= 1);
});

test('queue full is 429 with Retry-After; deadline ends with an error', { skip }, async () => {
  const small = await h.startServer(h.tinyModel('api-model'), ['--served-model-name', 'tiny',
    '--max-num-seqs', '1', '--max-waiting', '1', '--request-timeout', '0.2']);
  try {
    const body = JSON.stringify({ model: 'tiny', prompt: 'Once upon a time', max_tokens: 200,
      ignore_eos: true });
    const post = () => fetch(small.baseURL + '/v1/completions', { method: 'POST',
      headers: { 'content-type': 'application/json' }, body });
    const results = await Promise.all(Array.from({ length: 6 }, post));
    const statuses = results.map((r) => r.status);
    const limited = results.filter((r) => r.status === 429);
    assert.ok(limited.length >= 1, `statuses: ${statuses}`);
    assert.equal(limited[0].headers.get('retry-after'), '1');
    const j = await limited[0].json();
    assert.equal(j.error.type, 'rate_limit_error');
    for (const r of results) if (!r.bodyUsed) await r.text();

    // 480 tokens over a 129k vocabulary take well over 0.2 s on a CPU.
    const slow = await fetch(small.baseURL + '/v1/completions', { method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: 'x', max_tokens: 480, ignore_eos: true }) });
    assert.equal(slow.status, 504);
    const timeout = await slow.json();
    assert.equal(timeout.error.type, 'timeout_error');
  } finally {
    const { code } = await small.stop('SIGINT');
    assert.equal(code, 0);
  }
});
