// --rejoin-without-voting sets a damaged log aside by moving its files (the LMDB file and its
// snapshot files) into damaged-<time>/ one rename at a time. A crash between those renames must
// not lose any of them: a snapshot file left behind once the LMDB file has gone is taken, at the
// next start, for one a crash left over, and removed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { flipStoredBits } from './lmdb-faults.js';
import { PaxlogNode } from '../src/node/node.js';
import { loadKernels } from '../src/kernels/index.js';
import { parsePeers } from '../src/transport/addresses.js';
import { LogStore } from '../src/storage/log-store.js';

const kernels = loadKernels('js');
const rec = (p: number) => ({ position: p, ballot: 65537, value: Uint8Array.of(p) });
const counter = { apply: () => 0, snapshot: () => new Uint8Array(8), restore: () => undefined };
const options = (dataDir: string) => ({ id: 1, peers: parsePeers('1=127.0.0.1:18700'), dataDir, stateMachine: counter, logger: pino({ level: 'silent' }), kernels: 'js' as const, rejoinWithoutVoting: true });

test('a crash while a damaged log is set aside loses none of its files', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-set-aside-'));
  const s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  await s.persist({ snapshot: null, hardState: { ballot: 65537, vote: 0 }, truncateFrom: 0, records: [1, 2, 3, 4, 5].map(rec), chosenPrefix: 6 });
  assert.equal(await s.saveSnapshot({ prefix: 3, ballot: 0, bytes: new Uint8Array(8) }), true);
  await s.close();
  // A flipped bit in an accepted slot above the snapshot: damage the node sets aside.
  await flipStoredBits(dir, 'log', 4, -1, 0x04);
  assert.ok(fs.existsSync(path.join(dir, 'paxlog.mdb.snapshot-3')));

  // A process that sets the log aside and is killed right after the rename of the LMDB file. Its
  // directory lists names in sorted order, as a file system may (ext4's order is its hash's).
  const child = `
    import fs from 'node:fs';
    import { pino } from 'pino';
    import { PaxlogNode } from ${JSON.stringify(new URL('../src/node/node.js', import.meta.url).href)};
    import { parsePeers } from ${JSON.stringify(new URL('../src/transport/addresses.js', import.meta.url).href)};
    const readdirSync = fs.readdirSync, renameSync = fs.renameSync;
    fs.readdirSync = (...a) => { const r = readdirSync(...a); return typeof r[0] === 'string' ? [...r].sort() : r; };
    fs.renameSync = (from, to) => { renameSync(from, to); if (from.endsWith('paxlog.mdb')) process.kill(process.pid, 'SIGKILL'); };
    PaxlogNode.open({ id: 1, peers: parsePeers('1=127.0.0.1:18700'), dataDir: ${JSON.stringify(dir)},
      stateMachine: { apply: () => 0, snapshot: () => new Uint8Array(8), restore: () => undefined },
      logger: pino({ level: 'silent' }), kernels: 'js', rejoinWithoutVoting: true });
  `;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', child], { cwd: process.cwd(), encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.signal, 'SIGKILL', `the child was to be killed inside the set-aside: ${run.status} ${run.stderr}`);

  // The restart after the crash.
  const node = PaxlogNode.open(options(dir));
  await node.stop();
  const kept = fs.readdirSync(dir).filter((f) => f.startsWith('damaged-')).flatMap((d) => fs.readdirSync(path.join(dir, d)));
  assert.ok(kept.includes('paxlog.mdb'), `the LMDB file is kept aside (${kept.join(', ')})`);
  assert.ok(kept.includes('paxlog.mdb.snapshot-3'), `the snapshot file of the damaged log is kept aside too (kept: ${kept.join(', ')}; in ${dir}: ${fs.readdirSync(dir).join(', ')})`);
});
