// What all /client connections of a node hold together is bounded: open connections, and answers
// their clients have not read. A client that never reads loses its connection, not the node its
// memory, and clients that read are served on once it is gone.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import WebSocket from 'ws';
import { startKvServer, type KvServer } from '../src/api/server.js';
import { ClientOp, decodeResponses, encodeRequest, type ClientResponse } from '../src/api/client-protocol.js';

const peerPort = 28400;
const httpPort = 28401;
const url = `ws://127.0.0.1:${httpPort}/client`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-client-budget-'));
let server: KvServer;
const big = new Uint8Array(256 * 1024).fill(7);

before(async () => {
  server = await startKvServer({
    id: 1, peers: `1=127.0.0.1:${peerPort}`, dataDir: dir, httpPort, newCluster: true, tickMs: 10,
    logger: pino({ level: 'silent' }), clientConnectionsMax: 3, clientBufferedBytesMax: 1024 * 1024,
  });
  await server.node.whenLeader(10_000);
  assert.equal((await fetch(`http://127.0.0.1:${httpPort}/kv/big`, { method: 'PUT', body: big })).status, 200);
});
after(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const open = (): Promise<WebSocket> => new Promise((resolve, reject) => {
  const ws = new WebSocket(url);
  ws.once('open', () => resolve(ws));
  ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`upgrade answered ${res.statusCode}`), { status: res.statusCode, retryAfter: res.headers['retry-after'] })));
  ws.once('error', reject);
});
const closed = (ws: WebSocket): Promise<void> => new Promise((resolve) => { ws.once('close', () => resolve()); ws.close(); });
/** One GET of `key` on `ws` (local read), answered. */
const get = (ws: WebSocket, id: number, key: string): Promise<ClientResponse> => new Promise((resolve, reject) => {
  ws.once('message', (data: Buffer) => {
    const rs = decodeResponses(new Uint8Array(data));
    if ('error' in rs) return reject(new Error(rs.error));
    resolve(rs[0]);
  });
  ws.send(encodeRequest({ id, op: ClientOp.Get, key, readMode: 'local' }));
});

test('an upgrade past clientConnectionsMax gets 503 with Retry-After; once one closes, another opens', async () => {
  const conns = [await open(), await open(), await open()];
  await assert.rejects(open(), (e: Error & { status?: number; retryAfter?: string }) => {
    assert.equal(e.status, 503);
    assert.equal(e.retryAfter, '1');
    return true;
  });
  await closed(conns.pop()!);
  let again: WebSocket | null = null;
  for (let i = 0; i < 50 && again === null; i++) {
    again = await open().catch(() => null);
    if (again === null) await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(again !== null, 'a connection opens once another closed');
  for (const ws of [...conns, again]) await closed(ws);
});

test('while unread answers pass clientBufferedBytesMax, values are refused with 503; the reader is served again once the one that never read is gone', async () => {
  const reader = await open();
  assert.equal((await get(reader, 1, 'big')).status, 200, 'a value is served at first');
  // A client that asks for 60 values (15 MiB) in one message and reads none of them.
  const stalled = await open();
  (stalled as unknown as { _socket: { pause(): void } })._socket.pause();
  const asks = Array.from({ length: 60 }, (_, i) => encodeRequest({ id: 100 + i, op: ClientOp.Get, key: 'big', readMode: 'local' }));
  stalled.send(Buffer.concat(asks));
  let refused: ClientResponse | null = null;
  for (let i = 0; i < 100 && refused === null; i++) {
    const r = await get(reader, 2 + i, 'big');
    if (r.status === 503) refused = r;
    else await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(refused !== null, 'a value is refused while the node holds the unread answers');
  assert.match(Buffer.from(refused.body).toString(), /bytes of \/client answers its clients have not read/);
  assert.equal((await get(reader, 500, 'nokey')).status, 404, 'a short answer is still sent');
  stalled.terminate();
  let served = false;
  for (let i = 0; i < 100 && !served; i++) {
    served = (await get(reader, 600 + i, 'big')).status === 200;
    if (!served) await new Promise((res) => setTimeout(res, 20));
  }
  assert.ok(served, 'values are served again once the stalled connection is gone');
  await closed(reader);
});
