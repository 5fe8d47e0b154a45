// An outbound peer link to a node that stops reading (SIGSTOP) buffers at most its bound; beyond
// it frames are dropped and counted, like any message loss. Ports 17380-17389.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadKernels } from '../src/kernels/index.js';
import { MsgType } from '../src/protocol/messages.js';
import { PeerTransport } from '../src/transport/peers.js';
import { bin } from './node-harness.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-backpressure-'));
const listener = spawn(process.execPath, [bin, 'serve', '--id', '1', '--peers', '1=127.0.0.1:17380,2=127.0.0.1:17381',
  '--data', dir, '--http-port', '17382', '--log-level', 'warn'], { stdio: 'ignore', env: { ...process.env, PAXLOG_SECRET: 'bp' } });
after(() => {
  listener.kill('SIGCONT');
  listener.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a link to a peer that stops reading holds at most its buffer bound and drops the rest', { timeout: 60_000 }, async (tc) => {
  const boundBytes = 256 * 1024;
  const kernels = loadKernels('js');
  const t = new PeerTransport({
    id: 2, peers: new Map([[1, { host: '127.0.0.1', port: 17380 }]]), secret: 'bp', kernels,
    logger: pino({ level: 'silent' }), onMessage: () => {}, linkBufferBytesMax: boundBytes,
  });
  t.start();
  try {
    // The listener is a node process started with this file: on a loaded machine it takes seconds.
    for (let i = 0; i < 1500 && !t.connected.includes(1); i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(t.connected, [1], 'the link came up');
    listener.kill('SIGSTOP');
    const frameBytes = kernels.encode({ type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: 1, chosenPrefix: 1, seq: 1 }).byteLength;
    const turns = 400;
    const perTurn = 2000;
    for (let turn = 0; turn < turns; turn++) {
      for (let i = 0; i < perTurn; i++) t.send({ type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: 1, chosenPrefix: 1, seq: turn * perTurn + i });
      await new Promise((r) => setImmediate(r)); // one turn: the frames go out together
    }
    const offeredBytes = turns * perTurn * frameBytes;
    const sentBytes = t.stats.framesSent * frameBytes;
    tc.diagnostic(`offered ${offeredBytes} bytes; sent ${sentBytes}; frames dropped ${t.stats.framesDropped}`);
    assert.ok(t.stats.framesDropped > 0, 'frames beyond the bound were dropped');
    assert.equal(t.stats.framesSent + t.stats.framesDropped, turns * perTurn, 'every frame was either sent or counted as dropped');
    // What left for the stopped peer is its bound plus what the kernel's socket buffers took.
    assert.ok(sentBytes < boundBytes + 32 * 1024 * 1024,
      `${sentBytes} bytes handed to the socket of a peer that reads nothing (offered ${offeredBytes})`);
    assert.ok(sentBytes < offeredBytes / 2, `most of the ${offeredBytes} offered bytes were refused`);
  } finally {
    t.close();
  }
});
