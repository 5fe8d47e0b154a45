// Answers of the client API that lied or cost the node unbounded memory (found in review). One
// KV node (a one-member cluster, in this process). Ports 18200-18209.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startKvServer, type KvServer } from '../src/api/server.js';

describe('the client API of a one-node cluster, under review', { timeout: 60_000 }, () => {
  let server: KvServer;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-api-review-'));
  const base = 'http://127.0.0.1:18201';
  const req = async (method: string, p: string, body?: string | Uint8Array) => {
    const payload = body === undefined || typeof body === 'string' ? body : new Blob([new Uint8Array(body) as Uint8Array<ArrayBuffer>]);
    const r = await fetch(base + p, { method, body: payload });
    return { status: r.status, body: Buffer.from(await r.arrayBuffer()) };
  };

  before(async () => {
    server = await startKvServer({
      id: 1, peers: new Map([[1, { host: '127.0.0.1', port: 18200 }]]), dataDir: dir, httpPort: 18201,
      logger: pino({ level: 'silent' }), secret: 'api-review-test', tickMs: 10,
    }, pino({ level: 'silent' }));
    for (let i = 0; ; i++) {
      if ((await req('PUT', '/kv/warmup', 'x')).status === 200) break;
      assert.ok(i < 200, 'the one-node cluster never elected itself');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('a compare-and-set whose expect is not percent-encoded UTF-8 gets 400 and swaps nothing', async () => {
    // The value is U+FFFD's bytes; the client expects the single byte 0xFF, which differs.
    const replacement = Buffer.from([0xef, 0xbf, 0xbd]);
    assert.equal((await req('PUT', '/kv/cas-bad-expect', replacement)).status, 200);
    const r = await req('POST', '/kv/cas-bad-expect?expect=%FF', 'swapped');
    assert.equal(r.status, 400, `a CAS expecting byte 0xFF of a value EF BF BD answered ${r.status}`);
    assert.match((JSON.parse(r.body.toString()) as { error: string }).error, /percent-encoded/);
    assert.deepEqual((await req('GET', '/kv/cas-bad-expect')).body, replacement, 'the value was not swapped');
    // A well-formed expect still works, '+' still a space as before.
    assert.equal((await req('PUT', '/kv/cas-bad-expect', 'a b')).status, 200);
    assert.equal((await req('POST', '/kv/cas-bad-expect?expect=a+b', 'c')).status, 200);
    assert.equal((await req('POST', `/kv/cas-bad-expect?expect=${encodeURIComponent('é')}`, 'd')).status, 412);
    assert.equal((await req('GET', '/kv/cas-bad-expect')).body.toString(), 'c');
  });
});
