// The client API of one KV node (a one-member cluster, in this process): HTTP and /client, their
// answers to bad input, /status and /metrics; and the KV state machine itself. Ports 17400-17499.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { PaxlogClient } from '../src/api/client.js';
import { ClientOp, encodeRequest } from '../src/api/client-protocol.js';
import { oneNodeKv } from './one-node-kv.js';
import { decodeOp, encodeOp } from '../src/kv/ops.js';
import { KvStore } from '../src/kv/store.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('the KV state machine', () => {
  test('put, delete and compare-and-set give the documented results', () => {
    const kv = new KvStore();
    assert.equal(kv.apply(encodeOp({ op: 'put', key: 'a', value: bytes('1') })), 'ok');
    assert.equal(kv.apply(encodeOp({ op: 'cas', key: 'a', expect: bytes('2'), value: bytes('3') })), 'mismatch');
    assert.equal(kv.apply(encodeOp({ op: 'cas', key: 'a', expect: bytes('1'), value: bytes('3') })), 'ok');
    assert.equal(text(kv.get('a')!), '3');
    assert.equal(kv.apply(encodeOp({ op: 'cas', key: 'nope', expect: bytes(''), value: bytes('x') })), 'mismatch');
    assert.equal(kv.apply(encodeOp({ op: 'delete', key: 'a' })), 'ok');
    assert.equal(kv.apply(encodeOp({ op: 'delete', key: 'a' })), 'not-found');
    assert.equal(kv.apply(new Uint8Array([9, 1, 0, 65])), 'bad');
    assert.equal(kv.size, 0);
    assert.equal(kv.bytes, 0);
  });

  test('a snapshot restores an equal store, and bad snapshot bytes are refused without harm', () => {
    const kv = new KvStore();
    for (let i = 0; i < 100; i++) kv.apply(encodeOp({ op: 'put', key: `k${i}é`, value: bytes(`v${i}`.repeat(i)) }));
    const copy = new KvStore();
    copy.restore(kv.snapshot());
    assert.equal(copy.size, 100);
    assert.equal(copy.bytes, kv.bytes);
    assert.equal(text(copy.get('k42é')!), 'v42'.repeat(42));
    const snap = kv.snapshot();
    assert.throws(() => copy.restore(snap.subarray(0, snap.length - 1)), /bad KV snapshot/);
    assert.equal(copy.size, 100, 'a refused snapshot leaves the state as it was');
    const one = new KvStore();
    one.apply(encodeOp({ op: 'put', key: 'a', value: bytes('1') }));
    const entry = Buffer.from(one.snapshot()).subarray(4);
    const twice = Buffer.concat([Buffer.from([2, 0, 0, 0]), entry, entry]);
    assert.throws(() => copy.restore(twice), /bad KV snapshot: a key appears twice/);
    assert.equal(copy.size, 100);
  });

  test('snapshotAsync gives the bytes of snapshot() at the call, though applies go on while it is written', async () => {
    // A small store is written at once; this one takes the path of big stores, a slice per turn.
    const kv = new KvStore(undefined, 0);
    for (let i = 0; i < 25_000; i++) kv.apply(encodeOp({ op: 'put', key: `k${i}`, value: bytes(`v${i}`) }));
    const want = Buffer.from(kv.snapshot());
    const pending = kv.snapshotAsync();
    // Written over several turns (10,000 entries a turn): change the store between them.
    let changes = 0;
    const change = (): void => {
      kv.apply(encodeOp({ op: 'put', key: `k${changes}`, value: bytes('changed') }));
      kv.apply(encodeOp({ op: 'delete', key: `k${24_999 - changes}` }));
      kv.apply(encodeOp({ op: 'put', key: `new${changes}`, value: bytes('new') }));
      changes++;
    };
    change();
    const timer = setInterval(change, 0);
    const got = Buffer.from(await pending);
    clearInterval(timer);
    assert.ok(changes >= 2, `the store changed while the snapshot was written (${changes} rounds)`);
    assert.ok(got.equals(want), 'the snapshot is of the state at the call');
    assert.ok(!Buffer.from(kv.snapshot()).equals(want), 'and the store did change');
    const small = new KvStore();
    for (let i = 0; i < 1000; i++) small.apply(encodeOp({ op: 'put', key: `s${i}`, value: bytes(`v${i}`) }));
    assert.ok(Buffer.from(await small.snapshotAsync()).equals(Buffer.from(small.snapshot())), 'a small store: the same bytes, written at once');
  });

  test('the op decoder refuses truncated and oversized input with a reason', () => {
    const good = encodeOp({ op: 'cas', key: 'k', expect: bytes('e'), value: bytes('v') });
    for (let cut = 0; cut < good.length - 1; cut++) {
      const d = decodeOp(good.subarray(0, cut));
      // Every prefix either fails with a reason or (cut inside the value) is a shorter valid op.
      if ('error' in d) assert.ok(d.error.length > 0);
    }
    assert.ok('error' in decodeOp(new Uint8Array([1, 0, 0])), 'empty key');
    assert.ok('error' in decodeOp(new Uint8Array([1, 1, 0, 0xff])), 'key not UTF-8');
    // A key that opens with U+FEFF keeps it, as the store does (it keys by bytes).
    const bom = encodeOp({ op: 'put', key: '\uFEFFa', value: bytes('v') });
    const d = decodeOp(bom);
    assert.ok(!('error' in d) && d.key === '\uFEFFa', JSON.stringify(d));
    assert.deepEqual(encodeOp(d), bom);
  });
});

describe('the HTTP and /client API of a one-node cluster', { timeout: 60_000 }, () => {
  const base = oneNodeKv(17400, 'api-test');
  const req = async (method: string, p: string, body?: string | Uint8Array) => {
    const payload = body === undefined || typeof body === 'string' ? body : new Blob([new Uint8Array(body) as Uint8Array<ArrayBuffer>]);
    const r = await fetch(base + p, { method, body: payload });
    return { status: r.status, body: await r.text(), headers: r.headers };
  };


  test('each port serves its own routes: the peer port only /peer, the client port never /peer', async () => {
    const onPeerPort = await fetch('http://127.0.0.1:17400/status');
    assert.equal(onPeerPort.status, 404);
    assert.match(await onPeerPort.text(), /peer port: it serves \/peer only/);
    assert.equal((await fetch('http://127.0.0.1:17400/kv/k', { method: 'PUT', body: 'v' })).status, 404);
    // A WebSocket upgrade to /peer on the client port is not taken (before, one app listened on
    // both ports, so a firewalled peer port left /peer open on the client port).
    const ws = new WebSocket(`${base.replace('http', 'ws')}/peer`);
    const outcome = await new Promise<string | number>((resolve) => {
      ws.on('open', () => resolve('open'));
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => resolve('error'));
    });
    ws.terminate();
    assert.equal(outcome, 404);
    assert.equal((await req('GET', '/status')).status, 200, 'the client port serves the API');
  });

  test('keys are percent-decoded UTF-8 and values are bytes', async () => {
    const value = new Uint8Array(256).map((_, i) => i);
    assert.equal((await req('PUT', `/kv/${encodeURIComponent('a key/with é')}`, value)).status, 200);
    const r = await fetch(`${base}/kv/${encodeURIComponent('a key/with é')}`);
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), value);
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
  });

  test('malformed requests get 400 with a JSON reason; too large gets 413', async () => {
    const cases: [string, string, string | Uint8Array | undefined, number, RegExp][] = [
      ['PUT', '/kv/', 'x', 400, /empty/],
      ['GET', '/kv/%E0%A4%A', undefined, 400, /percent-encoded/],
      ['GET', '/kv/a?read=sometimes', undefined, 400, /read=sometimes/],
      ['POST', '/kv/a', 'x', 400, /expect/],
      ['PUT', `/kv/${'k'.repeat(1025)}`, 'x', 413, /at most 1024/],
      ['PUT', '/kv/big', new Uint8Array(1024 * 1024 + 1), 413, /at most 1048576|over 1048576/],
      ['PATCH', '/kv/a', 'x', 405, /use GET/],
      ['GET', '/nowhere', undefined, 404, /no route/],
    ];
    for (const [method, p, body, status, reason] of cases) {
      const r = await req(method, p, body);
      assert.equal(r.status, status, `${method} ${p.slice(0, 40)}: ${r.body}`);
      assert.match((JSON.parse(r.body) as { error: string }).error, reason, `${method} ${p.slice(0, 40)}`);
    }
    // A value of exactly 1 MiB is accepted, and kept byte for byte (it reaches the node in many
    // chunks, where a small value comes in one).
    const big = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(30_000).slice(0, 1024 * 1024);
    assert.equal((await req('PUT', '/kv/big', big)).status, 200);
    // Read locally: a lease read can meet a lease lapsed while the 1 MiB went by in a loaded run (503).
    const got = (await req('GET', '/kv/big?read=local')).body;
    assert.equal(got.length, big.length);
    assert.ok(got === big, 'the 1 MiB value read back differs from the one written');
  });

  test('a chunked body over 1 MiB without a content-length is cut off with 413', async () => {
    const r = await fetch(`${base}/kv/chunked`, {
      method: 'PUT', duplex: 'half',
      body: new ReadableStream({
        start(ctl) {
          for (let i = 0; i < 20; i++) ctl.enqueue(new Uint8Array(64 * 1024));
          ctl.close();
        },
      }),
    } as RequestInit).catch((e: Error) => e);
    // uWS answers 413 and closes; the client sees either the 413 or the closed socket.
    if (!(r instanceof Error)) assert.equal(r.status, 413);
    // Read locally: a one-node cluster applies every write it takes, and a lease read could meet a
    // lease lapsed while the 1 MiB went by (503, retry) in a loaded run.
    assert.equal((await req('GET', '/kv/chunked?read=local')).status, 404, 'nothing was written');
  });

  test('garbage on the HTTP port gets no answer and the node keeps serving', async () => {
    // uWS ignores bytes it cannot parse as HTTP (it answers nothing and drops the connection at
    // its idle timeout): no error text is possible there, but nothing else is disturbed.
    const s = net.connect(17401, '127.0.0.1');
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.write('NOT HTTP AT ALL\r\n\x00\x01\x02\r\n\r\n');
    s.write('GET / HTTP/1.1\r\nBad Header Line\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await req('GET', '/kv/warmup')).body, 'x');
    assert.equal((await req('PUT', '/kv/after-garbage', 'y')).status, 200);
    s.destroy();
  });

  test('/status has the contract fields and /metrics the Paxos figures', async () => {
    const s = JSON.parse((await req('GET', '/status')).body) as Record<string, unknown>;
    for (const f of ['id', 'protocol', 'role', 'leader', 'ballot', 'chosenPrefix', 'applied', 'fsync']) assert.ok(f in s, `status lacks ${f}`);
    assert.deepEqual([s.id, s.protocol, s.role, s.leader, s.fsync], [1, 'multipaxos', 'leader', 1, 'on']);
    const m = await req('GET', '/metrics');
    assert.equal(m.status, 200);
    for (const name of ['paxlog_ballot', 'paxlog_chosen_prefix', 'paxlog_holes_open', 'paxlog_slots_in_flight',
      'paxlog_batch_commands_bucket', 'paxlog_decide_latency_seconds_bucket', 'paxlog_fsync_latency_seconds_bucket',
      'paxlog_forwarded_total', 'paxlog_fsync_enabled 1']) {
      assert.ok(m.body.includes(name), `metrics lack ${name}`);
    }
  });

  test('/client carries pipelined operations answered by id', async () => {
    const c = await PaxlogClient.connect('ws://127.0.0.1:17401/client');
    try {
      const puts = await Promise.all(Array.from({ length: 50 }, (_, i) => c.put(`p${i}`, bytes(`v${i}`))));
      assert.ok(puts.every((a) => a.status === 200));
      const got = await Promise.all(Array.from({ length: 50 }, (_, i) => c.get(`p${i}`)));
      assert.deepEqual(got.map((a) => text(a.body)), Array.from({ length: 50 }, (_, i) => `v${i}`));
      assert.equal((await c.cas('p1', bytes('nope'), bytes('x'))).status, 412);
      assert.equal((await c.cas('p1', bytes('v1'), bytes('x'))).status, 200);
      assert.equal(text((await c.get('p1', 'local')).body), 'x');
      assert.equal((await c.delete('p1')).status, 200);
      assert.equal((await c.get('p1', 'quorum')).status, 404);
      // A read mode the protocol has no code for is refused here, not sent as mode 255.
      await assert.rejects(c.get('p1', 'bogus' as 'local'), new RangeError('read mode "bogus" is not one of linearizable, lease, quorum, local'));
    } finally {
      c.close();
    }
  });

  test('/client writes of one message each get their own answer and effect (puts and deletes are built in place)', async () => {
    const c = await PaxlogClient.connect('ws://127.0.0.1:17401/client');
    const answers = new Map<number, number>();
    const ws = (c as unknown as { ws: import('ws').WebSocket }).ws;
    ws.on('message', (d: Buffer) => {
      for (let at = 0; at < d.length; at += d.readUInt32LE(at)) answers.set(d.readUInt32LE(at + 4), d.readUInt16LE(at + 8));
    });
    try {
      const badKey = encodeRequest({ id: 203, op: ClientOp.Put, key: 'x', value: bytes('no') });
      badKey[16] = 0xff; // the key's one byte: not UTF-8
      const withExpect = encodeRequest({ id: 205, op: ClientOp.Put, key: 'm2', expect: bytes('ignored'), value: bytes('two') });
      c.sendRaw(Buffer.concat([
        encodeRequest({ id: 201, op: ClientOp.Put, key: 'm1', value: bytes('one') }),
        encodeRequest({ id: 202, op: ClientOp.Delete, key: 'm-absent' }),
        badKey,
        encodeRequest({ id: 204, op: ClientOp.Put, key: 'm3', value: bytes('three') }),
        withExpect,
        encodeRequest({ id: 206, op: ClientOp.Delete, key: 'm3' }),
      ]));
      const deadline = Date.now() + 5000;
      while (answers.size < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual([...answers].sort((a, b) => a[0] - b[0]), [[201, 200], [202, 404], [203, 400], [204, 200], [205, 200], [206, 200]]);
      assert.equal(text((await c.get('m1')).body), 'one');
      assert.equal(text((await c.get('m2')).body), 'two', 'a put ignores an expect, as before');
      assert.equal((await c.get('m3')).status, 404);
    } finally {
      c.close();
    }
  });

  test('/client answers malformed binary requests with 400 and a reason, and keeps the connection', async () => {
    const c = await PaxlogClient.connect('ws://127.0.0.1:17401/client');
    const answers: { id: number; status: number; reason: string }[] = [];
    const ws = (c as unknown as { ws: import('ws').WebSocket }).ws;
    ws.on('message', (d: Buffer) => answers.push({ id: d.readUInt32LE(4), status: d.readUInt16LE(8), reason: d.subarray(12).toString() }));
    try {
      c.sendRaw(new Uint8Array([1, 2, 3]));
      const unknownOp = encodeRequest({ id: 77, op: ClientOp.Put, key: 'k', value: bytes('v') });
      unknownOp[8] = 42;
      c.sendRaw(unknownOp);
      const longLength = encodeRequest({ id: 78, op: ClientOp.Get, key: 'k' });
      new DataView(longLength.buffer).setUint32(0, 9999, true);
      c.sendRaw(longLength);
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(answers.map((a) => [a.id, a.status]), [[0, 400], [77, 400], [78, 400]]);
      assert.match(answers[1].reason, /unknown op 42/);
      assert.equal((await c.put('still', bytes('works'))).status, 200, 'the connection still serves');
    } finally {
      c.close();
    }
  });
});
