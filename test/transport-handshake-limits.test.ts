// Inbound peer links that never prove the cluster secret: each one is closed after a deadline,
// and only a bounded number may wait in the handshake at once (before its proof, one link can make
// uWS buffer up to a whole frame's bound of one message); a newer dial takes the oldest one's slot,
// so strangers cannot keep the members out. A message is at most peerMessageBytesMax (a frame
// longer than that goes as several), so that is all one such link can park. Refusals are logged
// at most once per 10 s. In-process, ports 18100-18109.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { pino } from 'pino';
import { loadKernels } from '../src/kernels/index.js';
import { PeerTransport, peerMessageBytesMax, type PeerTransportOptions } from '../src/transport/peers.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { loadNativeUws } from '../src/transport/uws.js';
import { newProof, readChallenge } from '../src/transport/handshake.js';

/** A listener (node 1 of 3) on `port`; returns it and a function that stops it. */
async function listener(port: number, extra: Record<string, unknown>): Promise<{ t: PeerTransport; stop: () => void }> {
  const uws = loadNativeUws();
  const app = uws.App();
  const opts = {
    id: 1,
    peers: new Map([[1, { host: '127.0.0.1', port }], [2, { host: '127.0.0.1', port: port + 1 }], [3, { host: '127.0.0.1', port: port + 2 }]]),
    secret: 'limits', kernels: loadKernels('js'), logger: pino({ level: 'silent' }), onMessage: () => {},
    ...extra,
  } as PeerTransportOptions;
  const t = new PeerTransport(opts);
  t.attach(app, uws);
  const sock = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', port, resolve));
  assert.ok(sock, `listening on ${port}`);
  return { t, stop: () => { t.close(); uws.us_listen_socket_close(sock as never); } };
}

/** Open /peer; resolves with the socket once the challenge arrived, or null if the upgrade was refused. */
function dial(port: number): Promise<{ ws: WebSocket; challenge: Buffer; closed: Promise<number> } | null> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/peer`, { perMessageDeflate: false });
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  return new Promise((resolve) => {
    ws.on('error', () => resolve(null));
    ws.once('message', (data: Buffer) => resolve({ ws, challenge: data, closed }));
  });
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())]);

test('an inbound peer link that never answers the challenge is closed after the handshake deadline', { timeout: 20_000 }, async () => {
  const { t, stop } = await listener(18100, { handshakeTimeoutMs: 300 });
  try {
    const idle = await dial(18100);
    assert.ok(idle !== null, 'the upgrade was accepted and the challenge sent');
    const code = await within(idle.closed, 3000);
    assert.equal(code, 4001, 'a dialer that sends no proof is closed, not held open for ever');
    assert.ok(t.stats.authFailures >= 1, 'counted as a failed handshake');
    // A dialer that answers in time is not affected by the deadline.
    const good = await dial(18100);
    assert.ok(good !== null);
    const c = readChallenge(good.challenge);
    assert.ok('nonce' in c);
    good.ws.send(newProof('limits', c.nonce, 2, 1));
    assert.equal(await within(good.closed, 1000), 'timeout', 'an authenticated link stays up past the deadline');
    good.ws.terminate();
  } finally {
    stop();
  }
});

test('only a bounded number of unauthenticated peer links are held at once, the oldest making room: strangers who hold every slot do not keep a member out', { timeout: 20_000 }, async () => {
  const { t, stop } = await listener(18103, { handshakeTimeoutMs: 60_000 });
  const held: WebSocket[] = [];
  try {
    const attempts = 40;
    for (let i = 0; i < attempts; i++) {
      const d = await dial(18103);
      assert.ok(d !== null, `dial ${i}: the upgrade was accepted`);
      held.push(d.ws);
    }
    // Let the listener's closes arrive.
    await new Promise((r) => setTimeout(r, 300));
    const open = held.filter((ws) => ws.readyState === WebSocket.OPEN);
    assert.equal(open.length, 8, `unauthenticated links held open by the listener (bound: 8 for 3 members)`);
    assert.deepEqual(open, held.slice(-8), 'the newest are held, the oldest were closed');
    assert.equal(t.stats.authFailures, attempts - 8);
    // Every slot held by a stranger, a member dials and proves itself: it gets in and stays.
    const good = await dial(18103);
    assert.ok(good !== null, 'a member dials in while strangers hold every slot');
    const c = readChallenge(good.challenge);
    assert.ok('nonce' in c);
    good.ws.send(newProof('limits', c.nonce, 2, 1));
    assert.equal(await within(good.closed, 1000), 'timeout', 'the member\'s link stays up');
    assert.equal(held.filter((ws) => ws.readyState === WebSocket.OPEN).length, 7, 'the oldest stranger made room for it');
    good.ws.terminate();
  } finally {
    for (const ws of held) ws.terminate();
    stop();
  }
});

test('a message before the proof holds at most peerMessageBytesMax; a member\'s frame longer than that crosses in several', { timeout: 30_000 }, async () => {
  const got: Message[] = [];
  const { stop } = await listener(18106, { handshakeTimeoutMs: 60_000, onMessage: (m: Message) => got.push(m) });
  const peers = new Map([[1, { host: '127.0.0.1', port: 18106 }], [2, { host: '127.0.0.1', port: 18107 }], [3, { host: '127.0.0.1', port: 18108 }]]);
  const member = new PeerTransport({ id: 2, peers, secret: 'limits', kernels: loadKernels('js'), logger: pino({ level: 'silent' }), onMessage: () => {} } as PeerTransportOptions);
  try {
    // A stranger's message one byte over the bound: uWS closes the link rather than buffer it.
    const stranger = await dial(18106);
    assert.ok(stranger !== null);
    stranger.ws.send(Buffer.alloc(peerMessageBytesMax + 1));
    // uWS drops it unread (1006 here); a message within the bound would have been read as a
    // proof and refused with 4001.
    const code = await within(stranger.closed, 3000);
    assert.ok(code !== 'timeout' && code !== 4001, `closed by uWS for its size, not read: ${code}`);

    // A member's Accept of 3 MiB (three times the bound) arrives whole.
    member.start();
    for (let i = 0; i < 200 && !member.connected.includes(1); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(member.connected.includes(1), 'the member\'s link is up');
    const value = Uint8Array.from({ length: 3 * peerMessageBytesMax }, (_, i) => (i * 31) & 0xff);
    member.send({ type: MsgType.Accept, from: 2, to: 1, ballot: 5, chosenPrefix: 1, entries: [{ slot: 1, ballot: 5, value }] });
    member.flush();
    for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(got.length, 1, 'the Accept arrived');
    const m = got[0];
    assert.ok(m.type === MsgType.Accept && m.entries.length === 1);
    assert.ok(Buffer.from(m.entries[0].value).equals(Buffer.from(value)), 'byte for byte');
  } finally {
    member.close();
    stop();
  }
});

test('refused handshakes are logged at most once per 10 s, with the count of the others: a stranger cannot fill the log', { timeout: 20_000 }, async () => {
  const lines: { msg: string; refusalsSinceLastLine?: number }[] = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const { t, stop } = await listener(18109, { handshakeTimeoutMs: 60_000, logger });
  try {
    const dials = 30;
    for (let i = 0; i < dials; i++) {
      const d = await dial(18109);
      assert.ok(d !== null, `dial ${i}: the upgrade was accepted`);
      d.ws.send(Buffer.alloc(38, 7)); // not a proof
      assert.equal(await within(d.closed, 3000), 4001, `dial ${i} refused`);
    }
    assert.equal(t.stats.authFailures, dials, 'every refusal is counted');
    const refusals = lines.filter((l) => l.msg === 'peer refused at handshake');
    assert.equal(refusals.length, 1, `${refusals.length} lines for ${dials} refusals`);
    assert.equal(refusals[0].refusalsSinceLastLine, 0);
  } finally {
    stop();
  }
});
