// The client bearer token and the secret files: a cluster whose client token and cluster secret
// come from files (and one whose token comes from PAXLOG_CLIENT_TOKEN) refuses HTTP and /client
// requests without the token (401 with a JSON reason), serves them with it, and never writes the
// secret or the token to its log.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PaxlogClient } from '../src/api/client.js';
import { bearerCheck } from '../src/api/http.js';
import { bin, ProcCluster } from './node-harness.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-auth-test-'));
const token = 'tok-7f3a9c1e5b2d4e6f8a0b';
const secret = 'sec-0c4e8a2b6d1f3a5c7e9b';
const envToken = 'envtok-5d9e1a3c7b2f4e6a';
const tokenFile = path.join(dir, 'token');
const secretFile = path.join(dir, 'secret');
fs.writeFileSync(tokenFile, `${token}\n`);
fs.writeFileSync(secretFile, `${secret}\n`);

// Each node gets a different PAXLOG_SECRET: only the shared --secret-file lets them form a cluster.
const c = new ProcCluster({
  nodes: 3, basePort: 23100, secretOf: (id) => `wrong-env-secret-${id}`,
  extraArgs: ['--client-token-file', tokenFile, '--secret-file', secretFile, '--log-level', 'debug'],
});
const single = new ProcCluster({ nodes: 1, basePort: 23120, extraArgs: ['--log-level', 'debug'] });

before(() => {
  c.startAll();
  process.env.PAXLOG_CLIENT_TOKEN = envToken;
  single.startAll();
  delete process.env.PAXLOG_CLIENT_TOKEN;
});

after(async () => {
  await c.stop();
  await single.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function call(cl: ProcCluster, id: number, method: string, p: string, auth?: string, body?: string): Promise<{ status: number; body: string }> {
  const r = await fetch(cl.url(id, p), { method, body, headers: auth !== undefined ? { authorization: auth } : {}, signal: AbortSignal.timeout(10_000) });
  return { status: r.status, body: await r.text() };
}

const reasonOf = (body: string): unknown => (JSON.parse(body) as { error?: unknown }).error;

test('bearerCheck accepts exactly the token and, without a token, everything', () => {
  const check = bearerCheck('abc');
  assert.equal(check('Bearer abc'), true);
  for (const bad of ['', 'Bearer abd', 'Bearer abc ', 'bearer abc', 'Bearer ab', 'Basic abc']) assert.equal(check(bad), false, bad);
  assert.equal(bearerCheck(undefined)(''), true);
  assert.equal(bearerCheck('')('anything'), true);
});

test('with --client-token-file, HTTP needs the bearer token: 401 with a JSON reason otherwise', async () => {
  const bearer = `Bearer ${token}`;
  await c.waitFor('a leader, asked with the token', async () => {
    const ss = await Promise.all([1, 2, 3].map((id) => call(c, id, 'GET', '/status', bearer).catch(() => null)));
    if (ss.some((s) => s === null || s.status !== 200)) return undefined;
    const leaders = new Set(ss.map((s) => (JSON.parse(s!.body) as { leader: number }).leader));
    return leaders.size === 1 && !leaders.has(0) ? true : undefined;
  });
  for (const auth of [undefined, 'Bearer wrong', `Bearer ${token}x`, token, `Basic ${token}`]) {
    for (const [method, p] of [['GET', '/status'], ['GET', '/metrics'], ['GET', '/kv/a'], ['PUT', '/kv/a'], ['DELETE', '/kv/a'], ['GET', '/nowhere']]) {
      const a = await call(c, 1, method, p, auth, method === 'PUT' ? 'x' : undefined);
      assert.equal(a.status, 401, `${method} ${p} with ${auth} answered ${a.status}`);
      assert.match(String(reasonOf(a.body)), /Authorization: Bearer/);
    }
  }
  // The refused PUT did nothing; with the token, writes and reads work on any node.
  assert.equal((await call(c, 2, 'GET', '/kv/a', bearer)).status, 404);
  let put = { status: 0, body: '' };
  for (let i = 0; i < 50 && put.status !== 200; i++) put = await call(c, 1, 'PUT', '/kv/a', bearer, 'with token');
  assert.equal(put.status, 200, put.body);
  assert.deepEqual(await call(c, 3, 'GET', '/kv/a', bearer), { status: 200, body: 'with token' });
});

test('/client needs the bearer token too', async () => {
  await assert.rejects(PaxlogClient.connect(`ws://127.0.0.1:${c.httpPort(2)}/client`), /refused the connection \(401\): the node requires a client token; pass \{ token \}/);
  await assert.rejects(PaxlogClient.connect(`ws://127.0.0.1:${c.httpPort(2)}/client`, { token: 'wrong' }), /\(401\): the token is not the node's client token/);
  const client = await PaxlogClient.connect(`ws://127.0.0.1:${c.httpPort(2)}/client`, { token });
  try {
    let a = await client.put('b', new TextEncoder().encode('ws'));
    for (let i = 0; i < 50 && a.status === 503; i++) a = await client.put('b', new TextEncoder().encode('ws'));
    assert.equal(a.status, 200);
    assert.equal(new TextDecoder().decode((await client.get('b')).body), 'ws');
  } finally {
    client.close();
  }
});

test('PAXLOG_CLIENT_TOKEN sets the token as the file does', async () => {
  await single.waitFor('the node answering with the token', async () =>
    (await call(single, 1, 'GET', '/status', `Bearer ${envToken}`).catch(() => null))?.status === 200 ? true : undefined);
  assert.equal((await call(single, 1, 'GET', '/status')).status, 401);
  assert.equal((await call(single, 1, 'GET', '/status', `Bearer ${token}`)).status, 401);
});

test('the logs (at debug level) never hold the cluster secret or a client token', async () => {
  const outputs = [...c.output.values(), ...single.output.values()];
  assert.ok(outputs.length === 4 && outputs.every((o) => o.includes('KV server ready')), 'a node has not logged yet');
  for (const o of outputs) {
    for (const s of [secret, token, envToken]) assert.ok(!o.includes(s), `a node's log holds ${s}`);
  }
});

test('serve refuses a secret file it cannot read, or a flag and a file for one secret, without echoing a secret', () => {
  const run = (...extra: string[]): { status: number; stderr: string } => {
    try {
      execFileSync(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:23130', '--data', path.join(dir, 'x'), ...extra],
        { stdio: 'pipe', timeout: 10_000 });
      return { status: 0, stderr: '' };
    } catch (e) {
      return { status: (e as { status: number }).status, stderr: (e as { stderr: Buffer }).stderr.toString() };
    }
  };
  const missing = run('--secret-file', path.join(dir, 'missing'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /cannot read --secret-file .*missing: ENOENT/);
  const both = run('--client-token', 'flag-token-123', '--client-token-file', tokenFile);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /give --client-token or --client-token-file, not both/);
  assert.ok(!both.stderr.includes('flag-token-123') && !both.stderr.includes(token));
  fs.writeFileSync(path.join(dir, 'empty'), '\n');
  assert.match(run('--secret-file', path.join(dir, 'empty')).stderr, /must hold the cluster secret on one non-empty line/);
  // An empty flag (a shell variable that was unset) would turn client authentication off unseen.
  const emptyToken = run('--client-token', '');
  assert.equal(emptyToken.status, 2);
  assert.match(emptyToken.stderr, /the client token is empty \(--client-token\)/);
  assert.match(run('--secret', '').stderr, /the cluster secret is empty \(--secret\)/);
});

test('paxlog status talks to a node that needs the client token, with the token from a file or the environment', async () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    try {
      return { code: 0, out: execFileSync(process.execPath, [bin, 'status', '--endpoint', `http://127.0.0.1:${c.httpPort(1)}`, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }) };
    } catch (e) {
      const err = e as { status: number; stderr: string };
      return { code: err.status, out: err.stderr };
    }
  };
  const without = run([]);
  assert.notEqual(without.code, 0);
  assert.match(without.out, /answered 401/);
  const withFile = run(['--client-token-file', tokenFile]);
  assert.equal(withFile.code, 0, withFile.out);
  assert.equal((JSON.parse(withFile.out) as { id: number }).id, 1);
  const withEnv = run([], { PAXLOG_CLIENT_TOKEN: token });
  assert.equal(withEnv.code, 0, withEnv.out);
  assert.ok(!withFile.out.includes(token) && !withEnv.out.includes(token), 'the token is never echoed');
});
