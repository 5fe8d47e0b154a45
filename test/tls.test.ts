// TLS: a throwaway CA and a node certificate (made with openssl), a 3-node cluster whose peer links
// and client API run over TLS; writes and reads over https and wss; a plain-http client and a
// client or peer that does not trust the CA are refused.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PaxlogClient } from '../src/api/client.js';
import { bin, ProcCluster } from './node-harness.js';

const hasOpenssl = ((): boolean => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = hasOpenssl ? false : 'openssl is not on this machine: the test cannot make a throwaway CA';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-tls-test-'));
const file = (name: string): string => path.join(dir, name);

/** A CA, and a certificate for 127.0.0.1 signed by it (every node on loopback shares it). */
function makeCerts(): void {
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=paxlog test CA');
  ssl('req', ...ec, '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=127.0.0.1');
  fs.writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', 'node.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'node.crt', '-days', '1', '-extfile', 'san.ext');
}

const tlsArgs = (withCa: boolean): string[] =>
  ['--tls-cert', file('node.crt'), '--tls-key', file('node.key'), ...(withCa ? ['--tls-ca', file('ca.crt')] : [])];

/** Clusters made in before(): one that trusts the CA, one whose nodes do not (no --tls-ca). */
let good: ProcCluster;
let untrusting: ProcCluster;

before(() => {
  if (!hasOpenssl) return;
  makeCerts();
  good = new ProcCluster({ nodes: 3, basePort: 23000, extraArgs: tlsArgs(true) });
  untrusting = new ProcCluster({ nodes: 3, basePort: 23010, extraArgs: tlsArgs(false) });
  good.startAll();
});

after(async () => {
  await good?.stop();
  await untrusting?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: string;
}

/** An https request to a node's client port; `ca` null trusts only the system store. */
function request(port: number, method: string, p: string, body?: string, ca: Buffer | null = fs.readFileSync(file('ca.crt'))): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, method, path: p, agent: false, timeout: 10_000, ...(ca !== null ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.on('timeout', () => r.destroy(new Error('timed out')));
    r.end(body);
  });
}

async function statusOf(c: ProcCluster, id: number): Promise<Record<string, unknown> | null> {
  try {
    const a = await request(c.httpPort(id), 'GET', '/status');
    return a.status === 200 ? JSON.parse(a.body) as Record<string, unknown> : null;
  } catch {
    return null;
  }
}

test('a 3-node cluster over TLS elects a leader, writes and reads over https and wss', { skip }, async () => {
  const leader = await good.waitFor('a leader every node agrees on, over https', async () => {
    const ss = await Promise.all([1, 2, 3].map((id) => statusOf(good, id)));
    if (ss.some((s) => s === null)) return undefined;
    const l = ss[0]!.leader as number;
    return l !== 0 && ss.every((s) => s!.leader === l) ? l : undefined;
  });
  assert.ok(leader >= 1 && leader <= 3);
  let put: Answer = { status: 0, body: '' };
  for (let i = 0; i < 50 && put.status !== 200; i++) put = await request(good.httpPort(1), 'PUT', '/kv/secure', 'over tls');
  assert.equal(put.status, 200, put.body);
  const got = await request(good.httpPort(2), 'GET', '/kv/secure');
  assert.deepEqual(got, { status: 200, body: 'over tls' });

  const client = await PaxlogClient.connect(`wss://127.0.0.1:${good.httpPort(3)}/client`, { ca: fs.readFileSync(file('ca.crt')) });
  try {
    assert.equal((await client.put('ws-secure', new TextEncoder().encode('wss'))).status, 200);
    const a = await client.get('ws-secure');
    assert.equal(a.status, 200);
    assert.equal(new TextDecoder().decode(a.body), 'wss');
  } finally {
    client.close();
  }
});

test('a plain-http client and an https client that does not trust the CA are refused', { skip }, async () => {
  await good.waitFor('node 1 answering over https', async () => ((await statusOf(good, 1)) !== null ? true : undefined));
  await assert.rejects(fetch(`http://127.0.0.1:${good.httpPort(1)}/status`, { signal: AbortSignal.timeout(5000) }));
  await assert.rejects(request(good.httpPort(1), 'GET', '/status', undefined, null), /self[- ]signed|unable to verify|certificate/i);
  await assert.rejects(PaxlogClient.connect(`ws://127.0.0.1:${good.httpPort(1)}/client`));
});

test('peers that do not trust the CA refuse each other\'s certificates and say so', { skip }, async () => {
  untrusting.startAll();
  await untrusting.waitFor('a node to log the TLS refusal', async () =>
    [1, 2, 3].some((id) => (untrusting.output.get(id) ?? '').includes('TLS refused the peer')) ? true : undefined);
  const s = await untrusting.waitFor('node 1 answering over https', () => statusOf(untrusting, 1).then((x) => x ?? undefined));
  assert.deepEqual(s.peersConnected, [], 'a link came up although no node trusts the others\' certificate');
  assert.equal(s.leader, 0, 'a leader was elected without working peer links');
});

test('serve refuses TLS files that do not work, with a clear message', { skip }, () => {
  const args = ['serve', '--id', '1', '--peers', '1=127.0.0.1:23020', '--data', path.join(dir, 'bad'), '--tls-cert', file('ca.key'), '--tls-key', file('node.key')];
  let out = '';
  let code = 0;
  try {
    execFileSync(process.execPath, [bin, ...args], { stdio: 'pipe', timeout: 10_000 });
  } catch (e) {
    const err = e as { status: number; stderr: Buffer; stdout: Buffer };
    code = err.status;
    out = err.stderr.toString() + err.stdout.toString();
  }
  assert.notEqual(code, 0, 'serve started with a key as its certificate');
  assert.match(out, /TLS files do not work together/);
  assert.ok(!out.includes('BEGIN'), 'the error printed key material');

  try {
    execFileSync(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:23020', '--data', path.join(dir, 'bad'), '--tls-cert', file('node.crt')], { stdio: 'pipe' });
    assert.fail('serve started with a certificate but no key');
  } catch (e) {
    assert.equal((e as { status: number }).status, 2);
    assert.match((e as { stderr: Buffer }).stderr.toString(), /needs both --tls-cert and --tls-key/);
  }
});
