// A one-member KV cluster in this process for the API tests: started and elected before the
// describe block's tests, stopped and its data directory removed after them.

import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startKvServer, type KvServer } from '../src/api/server.js';

/** Call inside a describe(): peers on peerPort, clients on peerPort + 1 (the base URL returned). */
export function oneNodeKv(peerPort: number, secret: string): string {
  let server: KvServer | null = null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `paxlog-${secret}-`));
  const base = `http://127.0.0.1:${peerPort + 1}`;
  before(async () => {
    server = await startKvServer({
      id: 1, peers: new Map([[1, { host: '127.0.0.1', port: peerPort }]]), dataDir: dir, httpPort: peerPort + 1,
      logger: pino({ level: 'silent' }), secret, tickMs: 10,
    }, pino({ level: 'silent' }));
    for (let i = 0; ; i++) {
      if ((await fetch(`${base}/kv/warmup`, { method: 'PUT', body: 'x' })).status === 200) break;
      assert.ok(i < 200, 'the one-node cluster never elected itself');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  after(async () => {
    await server?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return base;
}
