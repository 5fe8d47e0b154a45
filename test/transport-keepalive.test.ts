// Peer links whose other end stops answering (a host that lost power sends no FIN): pings find
// them, and the link is closed (an outbound one redialed) rather than kept until TCP gives up.
// The silent ends are `ws` sockets with their automatic pong turned off. In-process, ports
// 18110-18119.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import WebSocket, { WebSocketServer } from 'ws';
import { pino } from 'pino';
import { loadKernels } from '../src/kernels/index.js';
import { PeerTransport, type PeerTransportOptions } from '../src/transport/peers.js';
import { loadNativeUws } from '../src/transport/uws.js';
import { encodeChallenge, newProof, readChallenge } from '../src/transport/handshake.js';

const secret = 'keepalive';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function options(port: number, keepaliveMs: number): PeerTransportOptions {
  return {
    id: 1,
    peers: new Map([[1, { host: '127.0.0.1', port }], [2, { host: '127.0.0.1', port: port + 1 }], [3, { host: '127.0.0.1', port: port + 2 }]]),
    secret, kernels: loadKernels('js'), logger: pino({ level: 'silent' }), onMessage: () => {}, keepaliveMs,
  } as PeerTransportOptions;
}

/** A fake listener for node `id`: sends a challenge on each connection and counts them; `pongs` says whether it answers pings. */
function fakeListener(port: number, id: number, pongs: boolean): { connections: () => number; close: () => void } {
  let connections = 0;
  const wss = new WebSocketServer({ host: '127.0.0.1', port, path: '/peer', autoPong: pongs });
  wss.on('connection', (ws) => {
    connections++;
    ws.on('error', () => {});
    ws.send(encodeChallenge(id, crypto.randomBytes(32)));
  });
  return { connections: () => connections, close: () => { for (const c of wss.clients) c.terminate(); wss.close(); } };
}

test('an outbound link whose listener stopped answering pings is closed and redialed; one that answers stays', { timeout: 30_000 }, async () => {
  const silent = fakeListener(18111, 2, false);
  const answering = fakeListener(18112, 3, true);
  const t = new PeerTransport(options(18110, 600));
  t.start();
  try {
    const deadline = Date.now() + 10_000;
    while (silent.connections() < 2 && Date.now() < deadline) await sleep(50);
    assert.ok(silent.connections() >= 2, `the silent listener was dialed ${silent.connections()} time(s) in 10 s: its dead link was kept`);
    assert.equal(answering.connections(), 1, 'a link whose listener answers pings is kept');
    assert.ok(t.connected.includes(3), 'the answering link is up');
  } finally {
    t.close();
    silent.close();
    answering.close();
  }
});

test('an inbound link whose dialer stopped answering pings is closed by the listener', { timeout: 60_000 }, async () => {
  const uws = loadNativeUws();
  const app = uws.App();
  const t = new PeerTransport(options(18115, 1000));
  t.attach(app, uws);
  const sock = await new Promise<unknown>((resolve) => app.listen('127.0.0.1', 18115, resolve));
  assert.ok(sock, 'listening on 18115');
  // Node 2, authenticated, then silent: it sends nothing and does not answer pings.
  const ws = new WebSocket('ws://127.0.0.1:18115/peer', { perMessageDeflate: false, autoPong: false });
  try {
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    const challenge = await new Promise<Buffer>((resolve, reject) => {
      ws.once('message', (data: Buffer) => resolve(data));
      ws.once('error', reject);
    });
    const c = readChallenge(challenge);
    assert.ok('nonce' in c, 'a challenge');
    ws.send(newProof(secret, c.nonce, 2, 1));
    const started = Date.now();
    // uWS's idle timeout is 8 s at least, checked at a 4-s grain: ping after one, close after the next.
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([closed, new Promise<'still open'>((r) => (timer = setTimeout(() => r('still open'), 40_000)))]);
    clearTimeout(timer);
    assert.notEqual(code, 'still open', 'the listener kept a link that answered no ping for 40 s');
    assert.ok(Date.now() - started >= 4000, `closed after ${Date.now() - started} ms, before any idle wait`);
  } finally {
    ws.terminate();
    t.close();
    uws.us_listen_socket_close(sock as never);
  }
});
