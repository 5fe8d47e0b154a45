// The load generator's HTTP client against a raw TCP server that splits every response across
// two writes at a different byte each time: every answer is counted once, by its status, however
// the bytes arrive. Port 17650.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { LoadConfig, LoadResult } from '../src/bench/loadgen.js';

const port = 17650;
const loadgenPath = fileURLToPath(new URL('../src/bench/loadgen.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('every HTTP answer is counted once by its status, however its bytes are split', { timeout: 30_000 }, async () => {
  let answering = false;
  const sent = { ok: 0, unavailable: 0 };
  let nth = 0;
  const held: (() => void)[] = [];
  const server = net.createServer((s) => {
    s.setNoDelay(true);
    let buf = Buffer.alloc(0);
    s.on('error', () => {});
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: (\d+)/i.exec(buf.subarray(0, end).toString('latin1'))?.[1] ?? 0);
        if (buf.byteLength < end + 4 + length) return;
        buf = buf.subarray(end + 4 + length);
        const answer = (): void => {
          const i = nth++;
          // Every 7th is refused; bodies and header case vary, so no two answers split alike.
          const refused = i % 7 === 3;
          const body = 'x'.repeat(i % 5);
          const text = refused
            ? `HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: ${body.length}\r\n\r\n${body}`
            : `HTTP/1.1 200 OK\r\n${i % 2 === 0 ? 'content-length' : 'CONTENT-LENGTH'}: ${body.length}\r\n\r\n${body}`;
          const bytes = Buffer.from(text, 'latin1');
          const cut = 1 + (i % (bytes.byteLength - 1));
          s.write(bytes.subarray(0, cut));
          setImmediate(() => s.write(bytes.subarray(cut)));
          if (refused) sent.unavailable++;
          else sent.ok++;
        };
        if (answering) answer();
        else held.push(answer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const cfg: LoadConfig = {
    api: 'http', host: '127.0.0.1', port, mode: 'closed', clients: 8, connections: 0, rate: 1, payloadBytes: 100,
    readRatio: 0, read: 'lease', keys: 1000, seed: 3, outstandingMax: 1000,
  };
  const child = fork(loadgenPath, [JSON.stringify(cfg)]);
  try {
    const messages: { type: string; result?: LoadResult }[] = [];
    child.on('message', (m: { type: string; result?: LoadResult }) => messages.push(m));
    while (!messages.some((m) => m.type === 'ready')) await sleep(5);
    // Nothing is answered before the window opens, and nothing after it closes until the result.
    child.send({ type: 'measure' });
    await sleep(200);
    answering = true;
    for (const a of held.splice(0)) a();
    await sleep(1000);
    answering = false;
    await sleep(300);
    const before = { ...sent };
    child.send({ type: 'stop' });
    while (!messages.some((m) => m.type === 'result')) await sleep(5);
    const r = messages.find((m) => m.type === 'result')!.result!;
    assert.ok(before.ok > 100, `only ${before.ok} answers in a second`);
    assert.equal(r.writesOk, before.ok);
    assert.deepEqual(r.errors, { 503: before.unavailable });
    assert.equal(r.latency.count, before.ok);
  } finally {
    child.kill();
    server.close();
  }
});
