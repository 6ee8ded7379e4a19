// Disaggregated serving as real processes (`strata serve --disaggregated`: server, KV pools,
// prefill and decode instances under one supervisor, UCX on 127.0.0.1), driven with the
// official openai SDK:
//  - greedy outputs of a 2P + 2D + 2KV cluster equal embedded mode's, for every architecture;
//  - killing a prefill, a decode or a KV pool process under load: no request hangs, the
//    supervisor restarts the role, it registers again and takes traffic, KV returns to baseline;
//  - killing the server role: it comes back on its ports and the instances register again;
//  - the KV pools' figures (strata_kvpool_*) are in the server's /metrics;
//  - with --routing-policy round-robin (qwen3) the outputs are the same and every instance of
//    a role gets as many requests (strata_router_requests_total);
//  - prefill and decode instances with different thread counts and KV caches (llama:
//    --prefill-threads 2 --decode-threads 1, 32 and 64 MiB of KV) give the same outputs.
'use strict';
const test = require('node:test');
const assert = require('node:assert');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { assetsPresent, startServer, metric, waitFor, STRATA } = require('../e2e/strata_server.cjs');

const skip = assetsPresent() ? false : 'test assets missing (run scripts/fetch-test-assets)';
const WORK = process.env.STRATA_E2E_WORK;
const OpenAI = skip ? null : require('openai');
const TOKENIZER = { deepseek_v3: 'deepseek_v3', qwen3_moe: 'qwen3', mixtral: 'llama3', llama: 'llama3',
  qwen3: 'qwen3' };
const CLUSTER = ['--disaggregated', '--prefill', '2', '--decode', '2', '--kvcache', process.env.DISAGG_TEST_POOLS || '2',
  '--kvcache-capacity-bytes', String(32 << 20), '--ucx-tls', 'tcp'];

function model(arch) {
  const out = path.join(WORK, arch);
  if (!fs.existsSync(path.join(out, 'config.json'))) {
    fs.mkdirSync(WORK, { recursive: true });
    execFileSync(STRATA, ['gen-model', '--arch', arch, '--preset', 'tiny', '--tokenizer',
      path.join(process.env.STRATA_TEST_ASSETS, 'tokenizers', TOKENIZER[arch]), '--out', out,
      '--seed', '3'], { stdio: 'inherit' });
  }
  return out;
}

const PROMPTS = [
  'The quick brown fox',
  'In the beginning the universe was created. This has made a lot of people very angry',
  'Disaggregated serving moves the KV cache of a prompt from one machine to another',
  '1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22',
];

async function completions(baseURL, name, prompts, maxTokens) {
  const client = new OpenAI({ baseURL: baseURL + '/v1', apiKey: 'x', maxRetries: 0 });
  return Promise.all(prompts.map(async (prompt) => {
    const r = await client.completions.create({ model: name, prompt, max_tokens: maxTokens,
      temperature: 0, ignore_eos: true });
    return r.choices[0].text;
  }));
}

for (const arch of Object.keys(TOKENIZER)) {
  test(`${arch}: greedy outputs of 2P + 2D + 2KV equal embedded mode's`, { skip }, async () => {
    const dir = model(arch);
    const embedded = await startServer(dir);
    let expected;
    try {
      expected = await completions(embedded.baseURL, arch, PROMPTS, 12);
    } finally {
      await embedded.stop();
    }
    const roundRobin = arch === 'qwen3';
    const threads = arch === 'llama' ? ['--prefill-threads', '2', '--decode-threads', '1',
      '--prefill-kv-cache-bytes', '32Mi', '--decode-kv-cache-bytes', '64Mi'] : [];
    const cluster = await startServer(dir, [...CLUSTER, ...threads,
      ...(roundRobin ? ['--routing-policy', 'round-robin'] : [])]);
    try {
      if (roundRobin) {  // ready means one of each role: wait for the second ones too
        assert.ok(await waitFor(() => ['prefill-0', 'prefill-1', 'decode-0', 'decode-1'].every(
          (id) => cluster.log().includes(`instance ${id} at`)), 30000), 'not every instance registered');
      }
      const got = await completions(cluster.baseURL, arch, PROMPTS, 12);
      assert.deepStrictEqual(got, expected);
      // Once more, all at the same time with the prompts repeated (pool and prefix hits).
      const again = await completions(cluster.baseURL, arch, [...PROMPTS, ...PROMPTS], 12);
      assert.deepStrictEqual(again, [...expected, ...expected]);
      if (threads.length > 0) {
        assert.match(cluster.log(), /started 'prefill-1' .* prefill --model .* --threads 2 --kv-cache-bytes 33554432 /);
        assert.match(cluster.log(), /started 'decode-1' .* decode --model .* --threads 1 --kv-cache-bytes 67108864 /);
      }
      if (roundRobin) {
        for (const instance of ['prefill-0', 'prefill-1', 'decode-0', 'decode-1']) {
          assert.strictEqual(await metric(cluster.baseURL, 'strata_router_requests_total',
            `instance="${instance}"`), 6, `${instance}: not half of the 12 requests`);
        }
        assert.strictEqual(await metric(cluster.baseURL, 'strata_instance_up'), 4);
        assert.ok(await metric(cluster.baseURL, 'strata_instance_kv_blocks_total',
          'role="decode"') > 0, 'no decode KV capacity in /metrics');
      }
      if (arch === 'deepseek_v3' && Number(process.env.DISAGG_TEST_POOLS || '2') > 0) {
        // The pools report their figures to the router: the server's /metrics shows them.
        const pools = Number(process.env.DISAGG_TEST_POOLS || '2');
        const poolMetric = async (name, labels = '') => {
          try { return await metric(cluster.baseURL, name, labels); } catch { return -1; }
        };
        assert.ok(await waitFor(async () => (await poolMetric('strata_kvpool_capacity_bytes'))
          === pools * (32 << 20), 10000), 'the pools\' capacity is not in the server\'s /metrics');
        assert.ok(await waitFor(async () => (await poolMetric('strata_kvpool_in_bytes_total')) > 0
          && (await poolMetric('strata_kvpool_blocks', 'instance="kvcache-')) > 0, 10000),
        'no block stored in a pool, as the server\'s /metrics has it');
      }
    } finally {
      const { code } = await cluster.stop();
      assert.strictEqual(code, 0, cluster.log().slice(-3000));
    }
  });
}

// EP groups inside the instances: with BF16 dispatch the outputs are those of `strata generate
// --ep 1` (an EP group rounds the expert inputs to BF16, so they are not the plain runner's; the
// EP tests show EP=1, 2 and 4 agree), whatever the batching of the serving path. The instances
// are data-parallel: each of their two rank processes runs its own requests (rank 0 spreads them:
// decode by free KV, prefill by queued prompt tokens), and every rank must have served some;
// every rank's KV returns to 0.
test('prefill and decode instances as EP groups (--prefill-ep 2 --decode-ep 2, bf16 dispatch) '
  + 'equal strata generate --ep 1; every rank serves', { skip }, async () => {
  for (const arch of ['deepseek_v3', 'qwen3_moe']) {
    const dir = model(arch);
    const expected = PROMPTS.map((prompt) => JSON.parse(execFileSync(STRATA, ['generate',
      '--model', dir, '--prompt', prompt, '--max-tokens', '10', '--ignore-eos', '--json',
      '--threads', '1', '--ep', '1', '--ep-dispatch-dtype', 'bf16'],
    { stdio: ['ignore', 'pipe', 'ignore'] }).toString()).text);
    const cluster = await startServer(dir, ['--disaggregated', '--prefill', '1', '--decode', '1',
      '--kvcache', '1', '--prefill-ep', '2', '--decode-ep', '2', '--ep-dispatch-dtype', 'bf16',
      '--ucx-tls', 'tcp']);
    let stopped = false;
    try {
      assert.ok(await waitFor(() => ['prefill', 'decode'].every((role) => new RegExp(
        `EP rank 1 \\(${role}-0/rank1\\) joined rank 0`).test(cluster.log())), 30000),
      'rank 1 did not join rank 0');
      assert.deepStrictEqual(await completions(cluster.baseURL, arch, PROMPTS, 10), expected, arch);
      // All at once, twice over: the requests spread over both ranks.
      assert.deepStrictEqual(await completions(cluster.baseURL, arch, [...PROMPTS, ...PROMPTS], 10),
        [...expected, ...expected], arch);
      assert.match(cluster.log(), /decode --model .* --ep 2/, 'the decode instance is no EP group');
      assert.ok(await waitFor(async () => (await metric(cluster.baseURL,
        'strata_kv_cache_blocks_used')) === 0, 10000), `${arch}: KV blocks stay used`);
      // Each group's rank 0 reports its EP figures; the server's /metrics shows them per
      // instance: both ranks' experts received tokens, both ranks got requests.
      const epMetric = async (name, labels) => {
        try { return await metric(cluster.baseURL, name, labels); } catch { return -1; }
      };
      for (const role of ['prefill', 'decode']) {
        const inst = `instance="${role}-0"`;
        assert.ok(await waitFor(async () => (await epMetric('strata_ep_requests',
          `${inst},rank="1"`)) > 0 && (await epMetric('strata_ep_requests', `${inst},rank="0"`)) > 0,
        10000), `${arch}: no per-rank request counts of ${role}-0 in /metrics`);
        for (const rank of ['0', '1']) {
          assert.ok(await epMetric('strata_ep_tokens_received', `${inst},layer="1",rank="${rank}"`)
            > 0, `${arch}: ${role}-0 rank ${rank} received no tokens in layer 1`);
        }
        assert.strictEqual(await epMetric('strata_ep_ranks', inst), 2);
        assert.ok(await epMetric('strata_ep_max_mean_load_ratio', inst) >= 1);
        assert.ok(await epMetric('strata_ep_moe_rounds', inst) > 0);
      }
      const { code } = await cluster.stop();
      stopped = true;
      assert.strictEqual(code, 0, cluster.log().slice(-3000));
      const log = cluster.log();
      for (const role of ['prefill', 'decode']) {
        const perRank = new RegExp(`${role} instance ${role}-0 \\(EP group of 2\\): requests per `
          + 'rank \\[(\\d+), (\\d+)\\]').exec(log);
        assert.ok(perRank, `${arch}: no per-rank summary of ${role}-0 in the log`);
        assert.ok(Number(perRank[1]) > 0 && Number(perRank[2]) > 0,
          `${arch}: a ${role} rank served nothing: ${perRank[0]}`);
        assert.strictEqual(Number(perRank[1]) + Number(perRank[2]), 3 * PROMPTS.length, perRank[0]);
        for (const rank of [`${role}-0 \\(EP rank 0\\)`, `${role}-0/rank1 \\(EP rank 1\\)`]) {
          assert.match(log, new RegExp(`${role} instance ${rank}: stopping with 0 KV block\\(s\\) `
            + 'in use, 0 request'), `${arch}: ${rank} stopped with KV in use`);
        }
      }
    } finally {
      if (!stopped) await cluster.stop();
    }
  }
});

// Starts `count` requests of `maxTokens` tokens through `run(i, maxTokens)`, SIGKILLs `pid`
// 300 ms in, and waits for every request to end; how they ended and how long that took.
async function killUnderLoad(run, count, maxTokens, pid) {
  const started = Date.now();
  const load = Array.from({ length: count }, (_, i) => run(i, maxTokens));
  await new Promise((r) => setTimeout(r, 300));
  process.kill(pid, 'SIGKILL');
  const results = await Promise.all(load);
  return { results, ms: Date.now() - started };
}

// The pid of the role `name` started by this cluster's supervisor.
function rolePid(cluster, name) {
  const out = execFileSync('pgrep', ['-P', String(cluster.proc.pid), '-f', `instance-id ${name}( |$)`])
    .toString().trim().split('\n').filter(Boolean);
  assert.ok(out.length === 1, `one ${name} process, found ${out.length}`);
  return Number(out[0]);
}
function poolPid(cluster, index) {
  const all = execFileSync('pgrep', ['-P', String(cluster.proc.pid), '-f', 'strata kvcache'])
    .toString().trim().split('\n').filter(Boolean).map(Number).sort((a, b) => a - b);
  return all[index];
}

test('killing prefill, decode and KV pool processes under load: nothing hangs, they come back',
  { skip }, async () => {
    const dir = model('deepseek_v3');
    const cluster = await startServer(dir, [...CLUSTER, '--request-timeout', '60']);
    const client = new OpenAI({ baseURL: cluster.baseURL + '/v1', apiKey: 'x', maxRetries: 0,
      timeout: 90000 });
    const run = (i, maxTokens) => client.completions.create({ model: 'deepseek_v3',
      prompt: PROMPTS[i % PROMPTS.length] + ' #' + i, max_tokens: maxTokens, temperature: 0,
      ignore_eos: true, stream: true }).then(async (stream) => {
      let n = 0;
      let finish = null;
      for await (const chunk of stream) {
        if (chunk.choices[0]?.text) n += 1;
        if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason;
      }
      return { ok: true, n, finish };
    }).catch((e) => ({ ok: false, status: e.status, message: String(e.message) }));
    // /health is 200 once one prefill and one decode instance are in: wait for all of them, or
    // the first load may all land on the victim.
    const everyone = ['prefill-0', 'prefill-1', 'decode-0', 'decode-1'];
    assert.ok(await waitFor(() => everyone.every((id) =>
      cluster.log().includes(`instance ${id} at`)), 30000), 'not every instance registered');
    // Every role's lines name it, so one log of the whole cluster can be read.
    for (const tag of ['[serve:0]', '[server:0]', '[prefill-1:0]', '[decode-0:0]']) {
      assert.ok(cluster.log().includes(`${tag} [req=`), `no log line is tagged ${tag}`);
    }
    try {
      for (const victim of ['decode-0', 'prefill-0', 'kvcache-0'].filter((v) => !v.startsWith('kvcache') || process.env.DISAGG_TEST_POOLS !== '0')) {
        const pid = victim.startsWith('kvcache') ? poolPid(cluster, 0) : rolePid(cluster, victim);
        const { results, ms } = await killUnderLoad(run, 12, 48, pid);
        assert.ok(ms < 80000, 'requests took too long to end');
        const ok = results.filter((r) => r.ok && r.finish === 'length');
        for (const r of results) {
          if (!r.ok) assert.ok([503, undefined].includes(r.status) || /unavailable|instance/i.test(r.message),
            `${victim}: unexpected error ${JSON.stringify(r)}`);
        }
        assert.ok(ok.length > 0, `${victim}: no request survived: ${JSON.stringify(results)}`);
        // The supervisor restarts it; it registers again and the cluster serves again.
        assert.ok(await waitFor(() => cluster.log().split(`started '${victim}'`).length > 2, 30000),
          `${victim} was not restarted`);
        if (!victim.startsWith('kvcache')) {
          const role = victim.split('-')[0];
          const registered = `registered ${role} instance ${victim} at`;
          if (!await waitFor(() => cluster.log().split(registered).length > 2, 60000)) {
            fs.writeFileSync(path.join(WORK, 'kill-test.log'), cluster.log());
            assert.fail(`${victim} did not register again after its restart (log: kill-test.log)`);
          }
        }
        assert.ok(await waitFor(async () => {
          const after = await Promise.all([0, 1, 2, 3].map((i) => run(100 + i, 4)));
          return after.every((r) => r.ok && r.finish === 'length');
        }, 30000), `${victim}: the cluster does not serve after the restart`);
        assert.ok(await waitFor(async () => (await metric(cluster.baseURL,
          'strata_kv_cache_blocks_used')) === 0, 10000), `${victim}: KV blocks stay used`);
      }
    } finally {
      await cluster.stop();
    }
  });

// The server role (HTTP API + router) dies: the supervisor starts it again on the same ports
// (the router's, which the instances know, lies in TIME_WAIT after the kill), the instances
// register with it again and the cluster serves; the supervisor does not give up.
test('killing the server role: it comes back on its ports, the instances register again',
  { skip }, async () => {
    const dir = model('deepseek_v3');
    const cluster = await startServer(dir, [...CLUSTER, '--request-timeout', '60']);
    const client = new OpenAI({ baseURL: cluster.baseURL + '/v1', apiKey: 'x', maxRetries: 0,
      timeout: 30000 });
    const one = (i) => client.completions.create({ model: 'deepseek_v3', prompt: PROMPTS[i % 4],
      max_tokens: 4, temperature: 0, ignore_eos: true })
      .then((r) => r.choices[0].finish_reason === 'length', () => false);
    const everyone = ['prefill-0', 'prefill-1', 'decode-0', 'decode-1'];
    const registeredTimes = (id) => cluster.log().split(`instance ${id} at`).length - 1;
    try {
      assert.ok(await waitFor(() => everyone.every((id) => registeredTimes(id) >= 1), 30000),
        'not every instance registered');
      assert.ok(await one(0), 'the cluster does not serve before the kill');
      const pids = execFileSync('pgrep', ['-P', String(cluster.proc.pid), '-f', 'strata server'])
        .toString().trim().split('\n').filter(Boolean).map(Number);
      assert.strictEqual(pids.length, 1, `one server process, found ${pids.length}`);
      process.kill(pids[0], 'SIGKILL');
      assert.ok(await waitFor(() => everyone.every((id) => registeredTimes(id) >= 2), 30000),
        `the instances did not register with the restarted server:\n${cluster.log().slice(-3000)}`);
      assert.ok(await waitFor(async () => (await Promise.all([1, 2, 3].map(one))).every(Boolean),
        30000), 'the cluster does not serve after the server restarted');
      assert.ok(!/crash-looping/.test(cluster.log()), 'the supervisor gave up');
      assert.strictEqual(cluster.log().split("started 'server'").length - 1, 2,
        'the server needed more than one restart');
    } finally {
      await cluster.stop();
    }
  });

// A rank of a data-parallel decode group dies under load: the group fails fast, every request
// ends (done, or an error) and none hangs; the instance comes back whole and serves again.
test('killing a rank of a decode EP group under load: nothing hangs, the group comes back',
  { skip }, async () => {
    const dir = model('deepseek_v3');
    const cluster = await startServer(dir, ['--disaggregated', '--prefill', '1', '--decode', '1',
      '--kvcache', '0', '--decode-ep', '2', '--ep-dispatch-dtype', 'bf16', '--ucx-tls', 'tcp',
      '--request-timeout', '60']);
    const client = new OpenAI({ baseURL: cluster.baseURL + '/v1', apiKey: 'x', maxRetries: 0,
      timeout: 90000 });
    const run = (i, maxTokens) => client.completions.create({ model: 'deepseek_v3',
      prompt: PROMPTS[i % PROMPTS.length] + ' #' + i, max_tokens: maxTokens, temperature: 0,
      ignore_eos: true }).then((r) => ({ ok: true, finish: r.choices[0].finish_reason }))
      .catch((e) => ({ ok: false, status: e.status, message: String(e.message) }));
    const joined = () => cluster.log().split('EP rank 1 (decode-0/rank1) joined rank 0').length - 1;
    try {
      assert.ok(await waitFor(() => joined() === 1, 30000), 'decode rank 1 did not join');
      const rank0 = rolePid(cluster, 'decode-0');
      const rank1 = Number(execFileSync('pgrep', ['-P', String(rank0), '-f', 'ep-rank 1'])
        .toString().trim());
      const { results, ms } = await killUnderLoad(run, 6, 400, rank1);
      assert.ok(ms < 60000, 'requests took too long to end');
      for (const r of results) {
        if (!r.ok) assert.strictEqual(r.status, 503, `unexpected error ${JSON.stringify(r)}`);
        else assert.strictEqual(r.finish, 'length');
      }
      // The supervisor starts the instance again; its rank 1 joins and it serves.
      assert.ok(await waitFor(() => joined() === 2, 60000), 'the group did not come back');
      assert.ok(await waitFor(async () => {
        const after = await Promise.all([0, 1, 2, 3].map((i) => run(100 + i, 4)));
        return after.every((r) => r.ok && r.finish === 'length');
      }, 30000), 'the cluster does not serve after the restart');
      assert.ok(await waitFor(async () => (await metric(cluster.baseURL,
        'strata_kv_cache_blocks_used')) === 0, 10000), 'KV blocks stay used');
    } finally {
      await cluster.stop();
    }
  });
