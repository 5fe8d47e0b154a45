// Peer links across reconnects: what one peer sends reaches the listener in the order it was
// sent, and an outbound link that is not answered is given up and redialed. In-process, ports
// 27900-27919.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { pino } from 'pino';
import { loadKernels } from '../src/kernels/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { PeerTransport, type PeerTransportOptions } from '../src/transport/peers.js';
import { loadNativeUws } from '../src/transport/uws.js';
import { newProof, readChallenge } from '../src/transport/handshake.js';

const secret = 'links';
const kernels = loadKernels('js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function options(port: number, extra: Partial<PeerTransportOptions>): PeerTransportOptions {
  return {
    id: 1,
    peers: new Map([[1, { host: '127.0.0.1', port }], [2, { host: '127.0.0.1', port: port + 1 }], [3, { host: '127.0.0.1', port: port + 2 }]]),
    secret, kernels, logger: pino({ level: 'silent' }), onMessage: () => {},
    ...extra,
  };
}

/** Dial /peer as node `id` and prove the secret; resolves once the proof is sent. */
async function authenticated(port: number, id: number): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/peer`, { perMessageDeflate: false });
  ws.on('error', () => {});
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  const challenge = await new Promise<Buffer>((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve(data));
    ws.once('close', () => reject(new Error('closed before the challenge')));
  });
  const c = readChallenge(challenge);
  assert.ok('nonce' in c, 'a challenge');
  ws.send(newProof(secret, c.nonce, id, c.listenerId));
  return { ws, closed };
}

const ack = (from: number, seq: number) =>
  kernels.encode({ type: MsgType.HeartbeatAck, from, to: 1, ballot: 1, chosenPrefix: 1, seq });

test('once a newer link from a peer is read, nothing more is read from its older link', { timeout: 20_000 }, async () => {
  const uws = loadNativeUws();
  const app = uws.App();
  const got: [number, number][] = [];
  const t = new PeerTransport(options(27900, {
    onMessage: (m: Message) => got.push([m.from, (m as { seq: number }).seq]),
  }));
  t.attach(app, uws);
  const sock = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', 27900, resolve));
  assert.ok(sock, 'listening on 27900');
  const links: WebSocket[] = [];
  const waitFor = async (n: number) => {
    for (let i = 0; i < 100 && got.length < n; i++) await sleep(20);
  };
  try {
    // Node 2's link A, and node 3's link.
    const a = await authenticated(27900, 2);
    const three = await authenticated(27900, 3);
    links.push(a.ws, three.ws);
    a.ws.send(ack(2, 1));
    await waitFor(1);
    // Node 2 gave up on A (its keepalive found the listener silent, say) and dialed B. What was
    // still on its way on A was sent before anything on B: read after B's frames, it would come
    // out of order on node 2's link.
    const b = await authenticated(27900, 2);
    links.push(b.ws);
    b.ws.send(ack(2, 2));
    await waitFor(2);
    a.ws.send(ack(2, 3)); // the stale tail of A
    three.ws.send(ack(3, 1));
    await waitFor(3);
    await sleep(200);
    assert.deepEqual(got, [[2, 1], [2, 2], [3, 1]], 'nothing from the older link after the newer link\'s frames; node 3 unaffected');
    const code = await Promise.race([a.closed, sleep(2000).then(() => 'still open' as const)]);
    assert.equal(code, 4003, 'the superseded link was closed');
    b.ws.send(ack(2, 4));
    await waitFor(4);
    assert.deepEqual(got.at(-1), [2, 4], 'the newer link still delivers');
  } finally {
    for (const ws of links) ws.terminate();
    t.close();
    uws.us_listen_socket_close(sock as never);
  }
});

test('an outbound link whose listener never sends its challenge is given up and redialed', { timeout: 20_000 }, async () => {
  // Not a paxlog listener at node 2's address: it accepts the upgrade and answers pings, but never
  // challenges; the link cannot come up, and must not be held open for ever.
  let connections = 0;
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 27911, path: '/peer' });
  wss.on('connection', (ws) => {
    connections++;
    ws.on('error', () => {});
  });
  const t = new PeerTransport(options(27910, { keepaliveMs: 600, peers: new Map([[1, { host: '127.0.0.1', port: 27910 }], [2, { host: '127.0.0.1', port: 27911 }]]) }));
  t.start();
  try {
    for (let i = 0; i < 250 && connections < 2; i++) await sleep(20);
    assert.ok(connections >= 2, `dialed ${connections} time(s) in 5 s: a link that never got its challenge was kept`);
    assert.deepEqual(t.connected, [], 'no link counts as up without a challenge');
  } finally {
    t.close();
    for (const c of wss.clients) c.terminate();
    wss.close();
  }
});

test('a transport that closes ends its inbound links with 1001, so their dialers can tell a node that stops from a failure', { timeout: 20_000 }, async () => {
  const uws = loadNativeUws();
  const app = uws.App();
  let heard = 0;
  const t = new PeerTransport(options(27912, { onMessage: () => heard++ }));
  t.attach(app, uws);
  const sock = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', 27912, resolve));
  assert.ok(sock, 'listening on 27912');
  try {
    const link = await authenticated(27912, 2);
    link.ws.send(ack(2, 1));
    for (let i = 0; i < 100 && heard === 0; i++) await sleep(20);
    assert.equal(heard, 1, 'the link is up');
    t.close();
    assert.equal(await link.closed, 1001);
  } finally {
    t.close();
    uws.us_listen_socket_close(sock as never);
  }
});

test('a peer whose host name does not resolve is said once, naming the host, while it is redialed', { timeout: 20_000 }, async () => {
  const lines: { msg: string; peer?: number; host?: string }[] = [];
  let dials = 0;
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const t = new PeerTransport(options(27912, {
    logger, peers: new Map([[1, { host: '127.0.0.1', port: 27912 }], [2, { host: 'no-such-peer.invalid', port: 27913 }]]),
  }));
  const dial = (t as unknown as { dial(o: unknown): void }).dial.bind(t);
  (t as unknown as { dial(o: unknown): void }).dial = (o: unknown) => { dials++; dial(o); };
  t.start();
  try {
    for (let i = 0; i < 400 && dials < 3; i++) await sleep(20);
    assert.ok(dials >= 3, `dialed ${dials} times`);
    const said = lines.filter((l) => /does not resolve/.test(l.msg));
    assert.equal(said.length, 1, `${said.length} lines for ${dials} dials`);
    assert.equal(said[0].peer, 2);
    assert.equal(said[0].host, 'no-such-peer.invalid');
  } finally {
    t.close();
  }
});

test('a peer that links in (it is up again) is dialed at once, not when the backed-off redial comes due', { timeout: 20_000 }, async () => {
  const uws = loadNativeUws();
  const app = uws.App();
  const t = new PeerTransport(options(27914, {
    reconnectDelayMsMin: 5000, reconnectDelayMsMax: 5000,
    peers: new Map([[1, { host: '127.0.0.1', port: 27914 }], [2, { host: '127.0.0.1', port: 27915 }]]),
  }));
  const dials: number[] = [];
  const dial = (t as unknown as { dial(o: unknown): void }).dial.bind(t);
  (t as unknown as { dial(o: unknown): void }).dial = (o: unknown) => { dials.push(performance.now()); dial(o); };
  t.attach(app, uws);
  const sock = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', 27914, resolve));
  assert.ok(sock, 'listening on 27914');
  let wss: WebSocketServer | null = null;
  try {
    t.start(); // node 2 is down: the dial fails, and the next waits 2.5 to 5 s
    for (let i = 0; i < 100 && dials.length < 1; i++) await sleep(20);
    await sleep(300);
    assert.equal(dials.length as number, 1, 'one dial, then a backed-off wait');
    // Node 2 comes up: it listens, and its own link to node 1 proves the secret.
    let connections = 0;
    wss = new WebSocketServer({ host: '127.0.0.1', port: 27915, path: '/peer' });
    wss.on('connection', (ws) => { connections++; ws.on('error', () => {}); });
    const linkedIn = performance.now();
    const link = await authenticated(27914, 2);
    for (let i = 0; i < 50 && connections === 0; i++) await sleep(20);
    assert.equal(connections, 1, 'node 1 dialed node 2 back');
    assert.ok(dials.length === 2 && dials[1] - linkedIn < 1000, `dialed ${Math.round(dials[1] - linkedIn)} ms after the link in`);
    link.ws.terminate();
  } finally {
    t.close();
    uws.us_listen_socket_close(sock as never);
    if (wss !== null) {
      for (const c of wss.clients) c.terminate();
      wss.close();
    }
  }
});
