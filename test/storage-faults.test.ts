// Storage faults in the manner of Paxos Made Live: a replica whose disk flipped a bit, or lost
// state, must never vote as if it remembered. A real node writes a log and stops; then, a hundred
// times from one seed, a copy of its data directory gets one bit flipped inside one stored record
// (the record's value or its header: version, kind, flags, length, CRC, position, ballot), found
// by searching the LMDB file for the record's stored bytes. Every flip must be detected before the
// data is used: the store reports that slot corrupt and never serves it, every other record comes
// back byte for byte, and the node refuses to start with a message naming the slot.
// Ports 24000-24019.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { open as openLmdb } from 'lmdb';
import { createNode, RequestError, type PaxlogNode, type StateMachine } from '../src/index.js';
import { PaxlogNode as Node } from '../src/node/node.js';
import { loadKernels } from '../src/kernels/index.js';
import { parsePeers } from '../src/transport/addresses.js';
import { LogStore, StorageError } from '../src/storage/log-store.js';
import { Prng } from '../src/sim/prng.js';

const kernels = loadKernels('js');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-storage-faults-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
const peers = '1=127.0.0.1:24001';
const silent = pino({ level: 'silent' });

/** Counts applied commands; enough of a state machine for a log to exist. */
class Counter implements StateMachine<number> {
  /** How many commands were applied. */
  count = 0;
  apply(): number { return ++this.count; }
  snapshot(): Uint8Array { return Uint8Array.of(this.count & 0xff); }
  restore(bytes: Uint8Array): void { this.count = bytes[0]; }
}

async function proposeRetrying(node: PaxlogNode<number>, command: Uint8Array): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await node.propose(command);
      return;
    } catch (e) {
      if (!(e instanceof RequestError) || !e.surelyNotProposed || attempt > 200) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** One stored record as the LMDB file holds it. */
interface Stored {
  position: number;
  /** The exact bytes LMDB returns for it (header and value). */
  bytes: Buffer;
  /** Where those bytes start in the LMDB file. Invariant: they occur there and nowhere else. */
  fileOffset: number;
}

/** The record header's fields by byte offset (src/kernels/js/codec.ts: 28 bytes, then the value). */
const recordHeaderBytes = 28;
function fieldAt(offset: number): string {
  if (offset < 4) return 'version/kind/flags';
  if (offset < 8) return 'length';
  if (offset < 12) return 'crc';
  if (offset < 20) return 'position';
  if (offset < recordHeaderBytes) return 'ballot';
  return 'value';
}

/**
 * Run a real one-node cluster, write commands of mixed sizes (some large enough for LMDB's
 * overflow pages), stop it, and take a compacted copy of its LMDB file: a compacted copy holds
 * each live page once, so every record's bytes occur exactly once and a flip lands in live data.
 */
async function writeReplica(): Promise<{ image: string; stored: Stored[]; chosenPrefix: number }> {
  const dir = path.join(base, 'replica');
  const node = await createNode({ id: 1, peers, dataDir: dir, stateMachine: new Counter(), tickMs: 10, logger: silent });
  try {
    for (let i = 0; i < 40; i++) {
      const size = i % 9 === 4 ? 3000 + 700 * (i % 5) : 10 + 13 * i;
      await proposeRetrying(node, new Uint8Array(size).fill(0x41 + (i % 26)));
    }
  } finally {
    await node.stop();
  }
  const image = path.join(base, 'image');
  fs.mkdirSync(image);
  const root = openLmdb({ path: path.join(dir, 'paxlog.mdb'), maxDbs: 4 });
  await root.backup(path.join(image, 'paxlog.mdb'), true);
  await root.close();

  const file = fs.readFileSync(path.join(image, 'paxlog.mdb'));
  const copy = openLmdb({ path: path.join(image, 'paxlog.mdb'), maxDbs: 4, readOnly: true });
  const log = copy.openDB<Buffer, number>({ name: 'log', encoding: 'binary' });
  const stored: Stored[] = [];
  for (const { key, value } of log.getRange({})) {
    const bytes = Buffer.from(value);
    const at = file.indexOf(bytes);
    assert.ok(at >= 0, `record ${key} not found in the LMDB file`);
    assert.equal(file.indexOf(bytes, at + 1), -1, `record ${key} occurs twice in the compacted file`);
    stored.push({ position: key, bytes, fileOffset: at });
  }
  await copy.close();
  fs.rmSync(path.join(image, 'paxlog.mdb-lock'), { force: true });

  const s = LogStore.open({ dir: image, fsync: false, kernels });
  const { restored, corrupt } = s.load();
  await s.close();
  fs.rmSync(path.join(image, 'paxlog.lock'), { force: true });
  assert.deepEqual(corrupt, []);
  assert.deepEqual(restored.records.map((r) => r.position), stored.map((r) => r.position));
  return { image, stored, chosenPrefix: restored.chosenPrefix };
}

/** A fresh copy of the replica's image, for one trial. */
function copyImage(image: string, name: string): string {
  const dir = path.join(base, name);
  fs.mkdirSync(dir);
  fs.copyFileSync(path.join(image, 'paxlog.mdb'), path.join(dir, 'paxlog.mdb'));
  return dir;
}

test('a hundred single-bit flips in stored records are each detected before the data is used', { timeout: 120_000 }, async (t) => {
  const { image, stored, chosenPrefix } = await writeReplica();
  assert.ok(stored.length >= 10, `the replica wrote ${stored.length} records`);
  assert.ok(stored.some((r) => r.bytes.length > 4096), 'some record is larger than an LMDB page');
  assert.equal(chosenPrefix, stored[stored.length - 1].position + 1, 'every stored slot is chosen');
  const byPosition = new Map(stored.map((r) => [r.position, r]));

  const rng = new Prng(20261127);
  const landed = new Map<string, number>();
  const reasons = new Map<string, number>();
  let detected = 0;
  for (let trial = 0; trial < 100; trial++) {
    const victim = stored[rng.int(0, stored.length)];
    const inHeader = victim.bytes.length === recordHeaderBytes || rng.next() < 0.5;
    const offset = inHeader ? rng.int(0, recordHeaderBytes) : rng.int(recordHeaderBytes, victim.bytes.length);
    const bit = rng.int(0, 8);
    const field = fieldAt(offset);
    const where = `trial ${trial}: slot ${victim.position}, byte ${offset} (${field}), bit ${bit}`;

    const dir = copyImage(image, `trial-${trial}`);
    const fd = fs.openSync(path.join(dir, 'paxlog.mdb'), 'r+');
    const one = Buffer.alloc(1);
    fs.readSync(fd, one, 0, 1, victim.fileOffset + offset);
    one[0] ^= 1 << bit;
    fs.writeSync(fd, one, 0, 1, victim.fileOffset + offset);
    fs.closeSync(fd);

    // The store: that slot is reported corrupt and never served; every other record is intact.
    const s = LogStore.open({ dir, fsync: false, kernels });
    const { restored, corrupt } = s.load();
    assert.deepEqual(corrupt.map((c) => c.key), [victim.position], `${where}: the corruption was not reported`);
    assert.equal(s.get(victim.position), null, `${where}: a corrupt record was served`);
    assert.equal(restored.chosenPrefix, chosenPrefix, `${where}: the chosen prefix moved`);
    assert.deepEqual(restored.records.map((r) => r.position), stored.filter((r) => r !== victim).map((r) => r.position));
    for (const r of restored.records) {
      const want = kernels.decodeRecord(byPosition.get(r.position)!.bytes);
      assert.deepEqual(r, want, `${where}: slot ${r.position} came back different`);
    }
    reasons.set(corrupt[0].reason, (reasons.get(corrupt[0].reason) ?? 0) + 1);
    await s.close();

    // The node: refuses to start, naming the slot.
    assert.throws(
      () => Node.open({ id: 1, peers: parsePeers(peers), dataDir: dir, stateMachine: new Counter(), logger: silent, kernels: 'js' }),
      (e: Error) => e instanceof StorageError && new RegExp(`corrupt accepted slots \\(${victim.position}\\); refusing to start`).test(e.message),
      `${where}: the node did not refuse to start`);

    detected++;
    landed.set(field, (landed.get(field) ?? 0) + 1);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  t.diagnostic(`flips by field: ${JSON.stringify(Object.fromEntries(landed))}`);
  t.diagnostic(`reasons: ${JSON.stringify(Object.fromEntries(reasons))}`);
  assert.equal(detected, 100);
  for (const field of ['version/kind/flags', 'length', 'crc', 'position', 'ballot', 'value']) {
    assert.ok((landed.get(field) ?? 0) > 0, `no flip landed in the record's ${field}`);
  }
});
