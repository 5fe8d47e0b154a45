// Transport: the native-uWS-only loader, the secret handshake, and links that send bad frames.
// Real processes on loopback, ports 17300-17399.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { loadKernels } from '../src/kernels/index.js';
import { MsgType } from '../src/protocol/messages.js';
import { defaultConfig } from '../src/protocol/types.js';
import { checkProof, clusterShape, encodeChallenge, newNonce, newProof, readChallenge } from '../src/transport/handshake.js';
import { loadNativeUws, UwsUnavailableError } from '../src/transport/uws.js';
import { ProcCluster } from './node-harness.js';

/** The timing of a node started by the harness: its 20 ms tick and the core's default ticks. */
const timing = { tickMs: 20, ...defaultConfig(1, [1, 2, 3]) };

test('uWS loads its native binary for this Node.js', () => {
  const uws = loadNativeUws();
  assert.equal(typeof uws.App, 'function');
});

test('uWS refuses, with a clear error, to run without a native binary (never the JS fallback)', () => {
  assert.throws(() => loadNativeUws({ modules: '1' }), (e: Error) =>
    e instanceof UwsUnavailableError && /no native binary/.test(e.message) && /refuses to run on the package's JavaScript fallback/.test(e.message));
  assert.throws(() => loadNativeUws({ platform: 'plan9' }), UwsUnavailableError);
});

test('handshake: the right secret passes; a wrong secret, another id or a replay to another listener fails', () => {
  const nonce = newNonce();
  const c = readChallenge(encodeChallenge(1, nonce));
  assert.ok('nonce' in c && c.listenerId === 1);
  assert.deepEqual(checkProof('s3cret', nonce, 1, newProof('s3cret', nonce, 2, 1)), { dialerId: 2 });
  assert.match((checkProof('s3cret', nonce, 1, newProof('wrong', nonce, 2, 1)) as { error: string }).error, /does not know the cluster secret/);
  const forged = newProof('s3cret', nonce, 2, 1);
  forged.writeUInt16LE(3, 4); // claim another id with node 2's proof
  assert.ok('error' in checkProof('s3cret', nonce, 1, forged));
  assert.ok('error' in checkProof('s3cret', nonce, 3, newProof('s3cret', nonce, 2, 1)), 'a proof for listener 1 fails at listener 3');
  assert.ok('error' in checkProof('s3cret', newNonce(), 1, newProof('s3cret', nonce, 2, 1)), 'a proof for another nonce fails');
  assert.ok('error' in readChallenge(new Uint8Array(10)));
});

test('handshake: a proof covers the cluster\'s shape (protocol, member ids, timing): nodes started with another member list, protocol or tick are refused', () => {
  const nonce = newNonce();
  const shape = clusterShape('multipaxos', [3, 1, 2], timing);
  assert.equal(shape, clusterShape('multipaxos', [1, 2, 3], timing), 'the members\' order does not matter');
  assert.deepEqual(checkProof('s3cret', nonce, 1, newProof('s3cret', nonce, 2, 1, shape), shape), { dialerId: 2 });
  const others = [
    clusterShape('multipaxos', [1], timing), clusterShape('multipaxos', [1, 2, 3, 4, 5], timing), clusterShape('raft', [1, 2, 3], timing), '',
    clusterShape('multipaxos', [1, 2, 3], { ...timing, tickMs: 150 }), clusterShape('multipaxos', [1, 2, 3], { ...timing, leaseTicks: timing.leaseTicks + 1 }),
    clusterShape('multipaxos', [1, 2, 3], { ...timing, electionTicksMin: timing.electionTicksMin - 1 }),
  ];
  for (const other of others) {
    const refused = checkProof('s3cret', nonce, 1, newProof('s3cret', nonce, 2, 1, other), shape);
    assert.ok('error' in refused, `a dialer of ${other || 'no shape'} passes`);
    assert.match(refused.error, /does not know the cluster secret, or was started with another protocol, member list or timing/);
  }
});

/** Dial a node's /peer as `dialerId`, answer its challenge with `secret`; resolves once the proof is sent. */
async function dialPeer(port: number, dialerId: number, secret: string, shape = clusterShape('multipaxos', [1, 2, 3], timing)): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/peer`, { perMessageDeflate: false });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('message', (data: Buffer) => {
      const c = readChallenge(data);
      if ('error' in c) return reject(new Error(c.error));
      ws.send(newProof(secret, c.nonce, dialerId, c.listenerId, shape));
      resolve();
    });
    ws.once('close', () => reject(new Error('closed before the challenge')));
  });
  return { ws, closed };
}

describe('links to a running cluster', { timeout: 60_000 }, () => {
  // Node 3 is started with a wrong secret.
  // --new-cluster: nodes 1 and 2 bootstrap without ever hearing from node 3.
  const c = new ProcCluster({ nodes: 3, basePort: 17300, secretOf: (id) => (id === 3 ? 'not-the-secret' : 'test-secret'), extraArgs: ['--new-cluster'] });
  before(async () => {
    c.startAll();
    await c.waitFor('nodes 1 and 2 to agree on a leader', async () => {
      const [a, b] = await Promise.all([c.status(1), c.status(2)]);
      return a !== null && b !== null && a.leader !== 0 && a.leader === b.leader ? true : undefined;
    });
  });
  after(async () => {
    await c.stop();
  });

  test('a node with the wrong secret is refused: it learns nothing while the others serve', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await c.put(1 + (i % 2), `s${i}`, 'v')).status, 200);
    const s3 = (await c.status(3))!;
    assert.equal(s3.appliedPrefix, 1, 'node 3 applied nothing');
    assert.equal(s3.leader, 0, 'node 3 knows no leader');
    const metrics = (await c.http(1, 'GET', '/metrics')).body;
    const failures = Number(/^paxlog_peer_auth_failures (\d+)/m.exec(metrics)?.[1]);
    assert.ok(failures > 0, 'node 1 counted the refused handshakes');
    await c.waitFor('node 1 to log the refusal', async () => (/peer refused at handshake/.test(c.output.get(1) ?? '') ? true : undefined), 5000);
    // A write on node 3 has no leader to go to: surely not proposed, so 503 with Retry-After.
    const r = await c.http(3, 'PUT', '/kv/x', 'v');
    assert.equal(r.status, 503);
    assert.equal(r.headers.get('retry-after'), '1');
  });

  test('a dialer that does not prove the secret is closed before any of its frames is read', async () => {
    const { ws, closed } = await dialPeer(17300, 2, 'wrong');
    const frame = loadKernels('js').encode({ type: MsgType.Prepare, from: 2, to: 1, ballot: 99 * 65536 + 2, fromSlot: 1 });
    ws.send(frame);
    const { code } = await closed;
    assert.equal(code, 4001);
    const s1 = (await c.status(1))!;
    assert.ok((s1.ballot as number) < 99 * 65536, 'the Prepare behind a failed handshake was never read');
  });

  test('a dialer with the secret but started with another member list, protocol or tick is refused too', async () => {
    for (const shape of [clusterShape('multipaxos', [1, 2], timing), clusterShape('raft', [1, 2, 3], timing), clusterShape('multipaxos', [1, 2, 3], { ...timing, tickMs: 21 })]) {
      const { closed } = await dialPeer(17300, 2, 'test-secret', shape);
      assert.equal((await closed).code, 4001, shape);
    }
  });

  test('a frame that fails to decode closes that link with a logged reason; the node runs on', async () => {
    const kernels = loadKernels('js');
    // A heartbeat with one flipped byte: its CRC fails.
    const good = kernels.encode({ type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: 1, chosenPrefix: 1, seq: 1 });
    const bad = new Uint8Array(good);
    bad[bad.length - 1] ^= 0xff;
    for (const [what, bytes] of [['bad CRC', bad], ['garbage header', new Uint8Array(64).fill(0xab)]] as const) {
      const { ws, closed } = await dialPeer(17300, 2, 'test-secret');
      ws.send(bytes);
      const { code, reason } = await closed;
      assert.equal(code, 4002, what);
      assert.match(reason, /bad frame/, what);
    }
    // A well-formed frame that claims to come from another node than the link's.
    const { ws, closed } = await dialPeer(17300, 2, 'test-secret');
    ws.send(kernels.encode({ type: MsgType.HeartbeatAck, from: 3, to: 1, ballot: 1, chosenPrefix: 1, seq: 1 }));
    assert.equal((await closed).code, 4002);
    // The log line travels through a pipe: wait for it rather than race it.
    await c.waitFor('node 1 to log the bad frame', async () =>
      (/peer link closed: it sent a frame that does not decode/.test(c.output.get(1) ?? '') ? true : undefined), 5000);
    // Node 1 still serves.
    assert.equal((await c.put(1, 'after-bad-frames', 'ok')).status, 200);
    assert.equal((await c.http(2, 'GET', '/kv/after-bad-frames')).body, 'ok');
  });
});
