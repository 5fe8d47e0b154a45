// The load generator's pieces and the generator itself against fake servers: requests it writes
// decode with the node's own /client decoder, the in-flight table tells stale answers apart, and
// the child process (driven over IPC as `paxlog bench` drives it) counts every distinct answer
// exactly once, holds its in-flight bound, sheds in open loop and fails requests of a dropped
// connection. Ports: 26180-26189.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { ClientOp, decodeRequests, encodeResponse, type ClientRequest } from '../src/api/client-protocol.js';
import { contentLength, FlightTable, requestBytes, statusOf, writeRequest, type LoadConfig, type LoadResult } from '../src/bench/loadgen.js';

const loadgenPath = fileURLToPath(new URL('../src/bench/loadgen.js', import.meta.url));

describe('request encoding', () => {
  test('requests written in place decode with the node\'s decoder: op, read mode, key digits, value, id', () => {
    const value = Buffer.from('a value of some bytes');
    const cases: [number, boolean, number][] = [
      [0, false, 1], [7, true, 1], [10, false, 0xffffffff], [99, true, 2], [12345, false, 42], [2 ** 31 - 2, true, 7],
    ];
    const b = Buffer.alloc(4096, 0xee);
    let at = 0;
    for (const [key, read, id] of cases) {
      const n = writeRequest(b, at, id, read, read ? 2 : 0, key, value);
      assert.equal(n, requestBytes(key, read ? 0 : value.length), `bytes of key ${key}`);
      at += n;
    }
    const { requests, error } = decodeRequests(b.subarray(0, at));
    assert.equal(error, null);
    assert.deepEqual(requests.map((r: ClientRequest) => [r.key, r.op, r.readMode, r.id, Buffer.from(r.value).toString()]), cases.map(([key, read, id]) =>
      [`k${key}`, read ? ClientOp.Get : ClientOp.Put, read ? 'quorum' : 'linearizable', id, read ? '' : value.toString()]));
    assert.equal(b[at], 0xee, 'wrote past the last request');
  });
});

describe('HTTP response heads', () => {
  const head = (text: string): [Buffer, number] => {
    const b = Buffer.from(text, 'latin1');
    return [b, b.indexOf('\r\n\r\n')];
  };
  test('status and Content-Length are read whatever the header\'s case and spacing; absent means 0', () => {
    const cases: [string, number, number][] = [
      ['HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 17\r\n\r\nbody', 200, 17],
      ['HTTP/1.1 404 Not Found\r\ncontent-length:3\r\n\r\nabc', 404, 3],
      ['HTTP/1.1 503 Service Unavailable\r\nCONTENT-LENGTH: \t 1234 \r\nretry-after: 1\r\n\r\n', 503, 1234],
      ['HTTP/1.1 200 OK\r\nuWebSockets: 20\r\n\r\n', 200, 0],
      ['HTTP/1.1 200 OK\r\nx-note: content-length: 99\r\nContent-Lengthy: 5\r\n\r\n', 200, 0],
      ['HTTP/1.1 2x0 OK\r\nContent-Length: 4\r\n\r\n', 0, 4],
      ['HTTP/1.1200 OK\r\n\r\n', 0, 0],
    ];
    for (const [text, status, length] of cases) {
      const [b, end] = head(text);
      assert.equal(statusOf(b), status, `status of ${JSON.stringify(text)}`);
      assert.equal(contentLength(b, end), length, `length of ${JSON.stringify(text)}`);
    }
  });
});

describe('in-flight table', () => {
  test('an answer frees its request once; a duplicate, a stray id or an id of a reused slot matches nothing', () => {
    const t = new FlightTable(4, 100);
    const slots = [t.acquire(), t.acquire(), t.acquire()];
    const ids = slots.map((s) => t.idOf(s));
    assert.equal(new Set(ids).size, 3, `ids ${ids} repeat`);
    assert.ok(ids.every((id) => id !== 0), 'an id is 0');
    t.dueMs[slots[1]] = 12.5;
    assert.equal(t.release(ids[1]), slots[1]);
    assert.equal(t.dueMs[slots[1]], 12.5, 'a freed slot\'s times are readable until reused');
    assert.equal(t.release(ids[1]), -1, 'a duplicate answer matched');
    assert.equal(t.release(ids[1] ^ 0x40), -1, 'a stray id matched');
    const again = t.acquire();
    assert.equal(again, slots[1], 'the freed slot is taken next');
    assert.notEqual(t.idOf(again), ids[1]);
    assert.equal(t.release(ids[1]), -1, 'an answer to the slot\'s earlier request matched its new one');
    assert.equal(t.size, 3);
  });

  test('the table grows to its bound keeping what is in flight, and refuses more', () => {
    const t = new FlightTable(1, 1000);
    assert.equal(t.capacityMax, 1024);
    const ids: number[] = [];
    for (let i = 0; i < 1024; i++) {
      const s = t.acquire();
      t.dueMs[s] = i;
      ids.push(t.idOf(s));
    }
    assert.equal(t.capacity, 1024);
    assert.equal(new Set(ids).size, 1024);
    assert.throws(() => t.acquire(), /more than 1024 requests in flight/);
    ids.forEach((id, i) => {
      const s = t.release(id);
      assert.ok(s >= 0, `request ${i} was lost in a growth`);
      assert.equal(t.dueMs[s], i);
    });
    assert.equal(t.size, 0);
  });

  test('generations wrap without ever giving id 0 or repeating the id just answered', () => {
    const t = new FlightTable(1, 2 ** 24); // 8 bits of generation: wraps after 255 reuses
    let last = -1;
    for (let i = 0; i < 600; i++) {
      const id = t.idOf(t.acquire());
      assert.ok(id !== 0 && id !== last, `reuse ${i}: id ${id} after ${last}`);
      assert.equal(t.release(id), 0);
      last = id;
    }
  });
});

/** The generator as `paxlog bench` runs it: a child with an IPC channel and its config as argv[2]. */
function startLoadgen(cfg: LoadConfig): { child: ChildProcess; next(type: string): Promise<unknown> } {
  const child = fork(loadgenPath, [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const got: { type: string }[] = [];
  const waiting: (() => void)[] = [];
  child.on('message', (m: { type: string }) => {
    got.push(m);
    for (const w of waiting.splice(0)) w();
  });
  child.on('exit', () => {
    for (const w of waiting.splice(0)) w();
  });
  return {
    child,
    async next(type) {
      for (;;) {
        const i = got.findIndex((m) => m.type === type || m.type === 'error');
        if (i >= 0) {
          const m = got.splice(i, 1)[0];
          assert.equal(m.type, type, `the load generator said ${JSON.stringify(m)}`);
          return m;
        }
        assert.equal(child.exitCode, null, `the load generator exited before '${type}'`);
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * One measured window against a fake server: 'measure' is in before `open` lets the first answer
 * go, and the last answers are in before 'stop' (once `done` holds). Resolves to the result.
 */
async function measure(lg: ReturnType<typeof startLoadgen>, open: () => void, what: string, done: () => boolean): Promise<LoadResult> {
  await lg.next('ready');
  lg.child.send({ type: 'measure' });
  await sleep(200);
  open();
  await until(what, done);
  await sleep(300);
  lg.child.send({ type: 'stop' });
  return ((await lg.next('result')) as { result: LoadResult }).result;
}

const baseConfig: LoadConfig = {
  api: 'ws', host: '127.0.0.1', ports: [0], mode: 'closed', clients: 64, connections: 2, rate: 1000, payloadBytes: 40,
  readRatio: 0.3, read: 'lease', keys: 1000, seed: 5, outstandingMax: 1000,
};

describe('the load generator against a fake /client server', () => {
  test('closed loop: every distinct answer counts once (duplicates and stray ids do not), by status, within the in-flight bound', { timeout: 60_000 }, async () => {
    const answersMax = 3000;
    let go = false;
    let answered = 0;
    let maxUnanswered = 0;
    const problems: string[] = [];
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 26180, path: '/client' });
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (ws: WebSocket) => {
      const unanswered = new Map<number, ClientRequest>();
      const answer = (): void => {
        if (!go) return;
        const out: Uint8Array[] = [];
        // Newest first: the generator must match answers by id, not by order.
        for (const r of [...unanswered.values()].reverse()) {
          if (answered === answersMax) break;
          answered++;
          unanswered.delete(r.id);
          const status = r.op === ClientOp.Get ? 404 : answered % 10 === 0 ? 500 : answered % 13 === 0 ? 503 : 200;
          const response = encodeResponse(r.id, status);
          out.push(response, response); // the duplicate must be ignored
        }
        if (out.length > 0) ws.send(Buffer.concat([...out, encodeResponse(0, 200), encodeResponse(0xffffffff, 200)]));
      };
      ws.on('message', (data: Buffer) => {
        const { requests, error } = decodeRequests(data);
        if (error !== null) problems.push(`request does not decode: ${error.reason}`);
        for (const r of requests) {
          const key = /^k(\d+)$/.exec(r.key);
          if (key === null || Number(key[1]) >= baseConfig.keys) problems.push(`key ${r.key}`);
          if (r.op === ClientOp.Get ? r.readMode !== 'lease' || r.value.length !== 0 : r.op !== ClientOp.Put || r.value.length !== baseConfig.payloadBytes) {
            problems.push(`request ${r.op} ${r.readMode} with ${r.value.length} value bytes`);
          }
          if (unanswered.has(r.id)) problems.push(`id ${r.id} reused while in flight`);
          unanswered.set(r.id, r);
        }
        maxUnanswered = Math.max(maxUnanswered, unanswered.size);
        setImmediate(answer);
      });
      const timer = setInterval(answer, 5);
      ws.on('close', () => clearInterval(timer));
    });
    const lg = startLoadgen({ ...baseConfig, ports: [26180] });
    try {
      const result = await measure(lg, () => (go = true), `${answersMax} answers`, () => answered === answersMax);
      assert.deepEqual(problems, []);
      const errors = Object.values(result.errors).reduce((a, b) => a + b, 0);
      assert.equal(result.writesOk + result.readsOk + errors, answersMax, `counted ${JSON.stringify(result)}`);
      assert.deepEqual(Object.keys(result.errors).sort(), ['500', '503']);
      assert.ok(result.readsOk > 0 && result.writesOk > 0, `reads ${result.readsOk}, writes ${result.writesOk}`);
      assert.equal(result.latency.count, result.writesOk + result.readsOk);
      assert.equal(result.latencyUncorrected, null);
      assert.ok(result.latency.p50 >= 1 && result.latency.p50 <= result.latency.max);
      assert.ok(maxUnanswered <= baseConfig.clients / baseConfig.connections, `${maxUnanswered} requests in flight on one connection`);
    } finally {
      lg.child.kill('SIGKILL');
      await new Promise((r) => wss.close(r));
    }
  });

  test('open loop: at outstandingMax in flight it sheds; a dropped connection fails what it carried (status 0)', { timeout: 60_000 }, async () => {
    const outstandingMax = 20;
    let received = 0;
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 26181, path: '/client' });
    await new Promise((r) => wss.once('listening', r));
    const sockets: WebSocket[] = [];
    wss.on('connection', (ws: WebSocket) => {
      sockets.push(ws);
      ws.on('message', (data: Buffer) => {
        received += decodeRequests(data).requests.length;
      });
    });
    const lg = startLoadgen({ ...baseConfig, ports: [26181], mode: 'open', rate: 400, connections: 1, outstandingMax });
    try {
      await lg.next('ready');
      lg.child.send({ type: 'measure' });
      await until(`${outstandingMax} requests`, () => received >= outstandingMax);
      await sleep(300); // due requests go on arriving while the bound is held
      assert.equal(received, outstandingMax, 'more requests in flight than outstandingMax');
      sockets[0].terminate();
      await sleep(300);
      lg.child.send({ type: 'stop' });
      const { result } = (await lg.next('result')) as { result: LoadResult };
      assert.equal(result.errors['0'], outstandingMax, `errors ${JSON.stringify(result.errors)}`);
      assert.ok(result.shed > 0, 'nothing shed');
      assert.equal(result.writesOk + result.readsOk, 0);
      assert.notEqual(result.latencyUncorrected, null);
    } finally {
      lg.child.kill('SIGKILL');
      await new Promise((r) => wss.close(r));
    }
  });

  test('HTTP closed loop: every answer counts once, reads as GET with the read mode, writes as PUT with the value', { timeout: 60_000 }, async () => {
    const answersMax = 500;
    let go = false;
    let answered = 0;
    const held: http.ServerResponse[] = [];
    const problems: string[] = [];
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const get = /^\/kv\/k(\d+)\?read=quorum$/.exec(req.url ?? '');
        const put = /^\/kv\/k(\d+)$/.exec(req.url ?? '');
        if (req.method === 'GET' ? get === null || body.length !== 0 : req.method !== 'PUT' || put === null || body.length !== baseConfig.payloadBytes) {
          problems.push(`${req.method} ${req.url} with ${body.length} bytes`);
        }
        res.statusCode = req.method === 'GET' ? 404 : 200;
        held.push(res);
        release();
      });
    });
    const release = (): void => {
      while (go && answered < answersMax && held.length > 0) {
        answered++;
        held.shift()!.end();
      }
    };
    await new Promise<void>((r) => server.listen(26182, '127.0.0.1', r));
    const lg = startLoadgen({ ...baseConfig, ports: [26182], api: 'http', clients: 4, read: 'quorum' });
    try {
      const result = await measure(lg, () => {
        go = true;
        release();
      }, `${answersMax} answers`, () => answered === answersMax);
      assert.deepEqual(problems, []);
      assert.deepEqual(result.errors, {});
      assert.equal(result.writesOk + result.readsOk, answersMax);
      assert.ok(result.readsOk > 0 && result.writesOk > 0, `reads ${result.readsOk}, writes ${result.writesOk}`);
      assert.equal(result.latency.count, answersMax);
    } finally {
      lg.child.kill('SIGKILL');
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('--connect all: connections are spread over every node\'s port, the first (the leader) first', { timeout: 60_000 }, async () => {
    const ports = [26184, 26185];
    const conns = [0, 0];
    const requests = [0, 0];
    const servers = ports.map((port, i) => {
      const server = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          requests[i]++;
          res.statusCode = 200;
          res.end();
        });
      });
      server.on('connection', () => conns[i]++);
      return server;
    });
    for (const [i, server] of servers.entries()) await new Promise<void>((r) => server.listen(ports[i], '127.0.0.1', r));
    const lg = startLoadgen({ ...baseConfig, ports, api: 'http', clients: 5, readRatio: 0 });
    try {
      const result = await measure(lg, () => {}, '200 answers on each port', () => requests[0] >= 200 && requests[1] >= 200);
      assert.deepEqual(conns, [3, 2], 'clients 0, 2, 4 on the first port; 1, 3 on the second');
      assert.deepEqual(result.errors, {});
      assert.ok(result.writesOk > 0);
    } finally {
      lg.child.kill('SIGKILL');
      for (const server of servers) {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    }
  });

  test('HTTP: answers split across two writes at every byte count once, by status (reads share one buffer)', { timeout: 60_000 }, async () => {
    const answersMax = 600;
    let go = false;
    const sent = { ok: 0, unavailable: 0 };
    const held: (() => void)[] = [];
    // A raw server: each answer leaves in two writes cut at a different byte, so partial heads and
    // bodies are left over in the load generator between reads of other connections.
    const server = net.createServer((s) => {
      let buf = Buffer.alloc(0);
      s.setNoDelay(true);
      s.on('error', () => {});
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) return;
          const length = contentLength(buf, end);
          if (buf.byteLength < end + 4 + length) return;
          buf = buf.subarray(end + 4 + length);
          held.push(() => {
            const i = sent.ok + sent.unavailable;
            const refused = i % 7 === 3;
            const body = 'x'.repeat(i % 5);
            const bytes = Buffer.from(refused
              ? `HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: ${body.length}\r\n\r\n${body}`
              : `HTTP/1.1 200 OK\r\n${i % 2 === 0 ? 'content-length' : 'CONTENT-LENGTH'}: ${body.length}\r\n\r\n${body}`, 'latin1');
            const cut = 1 + (i % (bytes.byteLength - 1));
            s.write(bytes.subarray(0, cut));
            setImmediate(() => s.write(bytes.subarray(cut)));
            if (refused) sent.unavailable++;
            else sent.ok++;
          });
          release();
        }
      });
    });
    const release = (): void => {
      while (go && sent.ok + sent.unavailable < answersMax && held.length > 0) held.shift()!();
    };
    await new Promise<void>((r) => server.listen(26183, '127.0.0.1', r));
    const lg = startLoadgen({ ...baseConfig, ports: [26183], api: 'http', clients: 8, readRatio: 0 });
    try {
      const result = await measure(lg, () => {
        go = true;
        release();
      }, `${answersMax} answers`, () => sent.ok + sent.unavailable === answersMax);
      assert.equal(result.writesOk, sent.ok);
      assert.deepEqual(result.errors, { 503: sent.unavailable });
      assert.equal(result.latency.count, sent.ok);
    } finally {
      lg.child.kill('SIGKILL');
      server.close();
    }
  });
});
