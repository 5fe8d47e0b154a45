// Storage faults in the manner of Paxos Made Live: a replica whose disk flipped a bit, or lost
// state, must never vote as if it remembered. A real node writes a log and stops; then, a hundred
// times from one seed, a copy of its data directory gets one bit flipped inside one stored record
// (the record's value or its header: version, kind, flags, length, CRC, position, ballot), found
// by searching the LMDB file for the record's stored bytes. Every flip must be detected before the
// data is used: the store reports that slot corrupt and never serves it, every other record comes
// back byte for byte, and the node refuses to start with a message naming the slot.
// Missing state is refused too: a lost hard state (Multi-Paxos promise, Raft term and vote), and
// a lost record below the persisted chosen prefix (an error, never a gap). So is an LMDB file cut
// short or overwritten, which LMDB itself would crash on (SIGBUS, SIGSEGV) rather than report, and
// a damaged key, which a record's CRC does not cover.
// The same for a Raft replica. Ports 24000-24019.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { open as openLmdb } from 'lmdb';
import { createNode, RequestError, type PaxlogNode, type StateMachine } from '../src/index.js';
import { PaxlogNode as Node } from '../src/node/node.js';
import { loadKernels } from '../src/kernels/index.js';
import { parsePeers } from '../src/transport/addresses.js';
import { LogDamagedError, LogStore, StorageError } from '../src/storage/log-store.js';
import { Prng } from '../src/sim/prng.js';

const kernels = loadKernels('js');
const base = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-storage-faults-'));
after(() => fs.rmSync(base, { recursive: true, force: true }));
const peersMultiPaxos = '1=127.0.0.1:24001';
const peersRaft = '1=127.0.0.1:24002';
const peersRaftReplica = '1=127.0.0.1:24003';
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

/** An LMDB leaf node's header: lo u16, hi u16 (the value's size), flags u16, key size u16. */
const lmdbNodeBytes = 8;

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
async function writeReplica(protocol: 'multipaxos' | 'raft'): Promise<{ image: string; stored: Stored[]; chosenPrefix: number }> {
  const dir = path.join(base, `replica-${protocol}`);
  const peers = protocol === 'raft' ? peersRaftReplica : peersMultiPaxos;
  const node = await createNode({ id: 1, peers, dataDir: dir, stateMachine: new Counter(), tickMs: 10, logger: silent, protocol });
  try {
    for (let i = 0; i < 40; i++) {
      const size = i % 9 === 4 ? 3000 + 700 * (i % 5) : 10 + 13 * i;
      await proposeRetrying(node, new Uint8Array(size).fill(0x41 + (i % 26)));
    }
  } finally {
    await node.stop();
  }
  const image = path.join(base, `image-${protocol}`);
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

/** The Multi-Paxos replica the missing-state tests damage copies of; written once. */
let replica: ReturnType<typeof writeReplica> | null = null;
const theReplica = (): ReturnType<typeof writeReplica> => (replica ??= writeReplica('multipaxos'));

for (const protocol of ['multipaxos', 'raft'] as const) test(`${protocol}: a hundred single-bit flips in stored records are each detected before the data is used`, { timeout: 120_000 }, async (t) => {
  const { image, stored, chosenPrefix } = protocol === 'multipaxos' ? await theReplica() : await writeReplica(protocol);
  assert.ok(stored.length >= 10, `the replica wrote ${stored.length} records`);
  assert.ok(stored.some((r) => r.bytes.length > 4096), 'some record is larger than an LMDB page');
  assert.equal(chosenPrefix, stored[stored.length - 1].position + 1, 'every stored slot is chosen');
  const byPosition = new Map(stored.map((r) => [r.position, r]));

  const rng = new Prng(protocol === 'multipaxos' ? 20261127 : 20261128);
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

    const dir = copyImage(image, `trial-${protocol}-${trial}`);
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
      () => Node.open({ id: 1, peers: parsePeers(peersMultiPaxos), dataDir: dir, stateMachine: new Counter(), logger: silent, kernels: 'js', protocol }),
      (e: Error) => e instanceof StorageError && new RegExp(`corrupt accepted slots \\(${victim.position}\\); refusing to start`).test(e.message),
      `${where}: the node did not refuse to start`);

    detected++;
    landed.set(field, (landed.get(field) ?? 0) + 1);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  t.diagnostic(`${stored.length} records (largest ${Math.max(...stored.map((r) => r.bytes.length))} bytes), chosen prefix ${chosenPrefix}`);
  t.diagnostic(`flips by field: ${JSON.stringify(Object.fromEntries(landed))}`);
  t.diagnostic(`reasons: ${JSON.stringify(Object.fromEntries(reasons))}`);
  assert.equal(detected, 100);
  for (const field of ['version/kind/flags', 'length', 'crc', 'position', 'ballot', 'value']) {
    assert.ok((landed.get(field) ?? 0) > 0, `no flip landed in the record's ${field}`);
  }
});

/** Delete LMDB keys directly, as lost state would (the store must be closed). */
async function deleteStored(dir: string, db: 'log' | 'meta', keys: (number | string)[]): Promise<void> {
  const root = openLmdb({ path: path.join(dir, 'paxlog.mdb'), maxDbs: 4 });
  const d = root.openDB<Buffer, number | string>({ name: db, encoding: 'binary' });
  for (const k of keys) assert.equal(d.removeSync(k), true, `${db} ${k} was not stored`);
  await root.close();
}

/** What the node says when asked to start on dir, or null if it started (then it is stopped). */
async function startError(dir: string, protocol: 'multipaxos' | 'raft'): Promise<string | null> {
  const peers = parsePeers(protocol === 'raft' ? peersRaft : peersMultiPaxos);
  try {
    const node = Node.open({ id: 1, peers, dataDir: dir, stateMachine: new Counter(), logger: silent, kernels: 'js', protocol });
    await node.stop();
    return null;
  } catch (e) {
    assert.ok(e instanceof StorageError, `not a StorageError: ${(e as Error).stack}`);
    return e.message;
  }
}

test('a log whose hard state went missing while records remain refuses to start (Multi-Paxos promise, Raft term and vote)', { timeout: 60_000 }, async () => {
  const { image } = await theReplica();
  const mp = copyImage(image, 'no-hard-multipaxos');
  assert.equal(await startError(mp, 'multipaxos'), null, 'the undamaged copy starts');
  await deleteStored(mp, 'meta', ['hard']);
  assert.match((await startError(mp, 'multipaxos'))!, /hard state is missing .* while the log holds \d+ records .*refusing to start/);

  // Raft keeps its term and vote in the same hard state.
  const dir = path.join(base, 'raft');
  const node = await createNode({ id: 1, peers: peersRaft, dataDir: dir, stateMachine: new Counter(), tickMs: 10, logger: silent, protocol: 'raft' });
  try {
    for (let i = 0; i < 5; i++) await proposeRetrying(node, Uint8Array.of(i));
    assert.ok(node.status().ballot > 0, 'the Raft node has a term');
  } finally {
    await node.stop();
  }
  assert.equal(await startError(dir, 'raft'), null, 'the undamaged Raft log starts');
  await deleteStored(dir, 'meta', ['hard']);
  assert.match((await startError(dir, 'raft'))!, /hard state is missing \(the promised ballot; Raft: term and vote\)/);
});

test('a log that lost records below its chosen prefix refuses to start, naming the slots; above the prefix a gap is allowed', { timeout: 60_000 }, async () => {
  const { image, stored, chosenPrefix } = await theReplica();
  const dir = copyImage(image, 'no-chosen-records');
  await deleteStored(dir, 'log', [stored[2].position, stored[5].position]);
  const message = await startError(dir, 'multipaxos');
  assert.match(message!, new RegExp(`no record for chosen slots \\(${stored[2].position}, ${stored[5].position}\\) below its chosen prefix ${chosenPrefix}; refusing to start`));
  const s = LogStore.open({ dir, fsync: false, kernels });
  assert.deepEqual(s.load().missing, [stored[2].position, stored[5].position], 'the store reports them');
  await s.close();
  // The same damage read by Raft: the log names Multi-Paxos as its protocol, which a Raft start refuses
  // first, so the record goes (as in a log from before identities, which takes the first start's).
  assert.match((await startError(dir, 'raft'))!, /belongs to node 1 of members 1 running multipaxos/);
  await deleteStored(dir, 'meta', ['identity']);
  assert.match((await startError(dir, 'raft'))!, /no record for chosen slots/, 'Raft refuses too, rather than cut its log');

  // The last record, with the chosen prefix moved back below it, is an accepted slot not yet
  // known chosen: losing it is what a crash before its fsync does, and the node starts.
  const fresh = path.join(base, 'above-prefix');
  const rec = (p: number) => ({ position: p, ballot: 65537, value: Uint8Array.of(p) });
  const w = LogStore.open({ dir: fresh, fsync: false, kernels });
  w.load();
  await w.persist({ snapshot: null, hardState: { ballot: 65537, vote: 0 }, truncateFrom: 0, records: [1, 2, 3, 4].map(rec), chosenPrefix: 3 });
  await w.close();
  await deleteStored(fresh, 'log', [4]);
  const r = LogStore.open({ dir: fresh, fsync: false, kernels });
  const loaded = r.load();
  assert.deepEqual(loaded.restored.records.map((x) => x.position), [1, 2, 3]);
  assert.deepEqual(loaded.missing, []);
  await r.close();
  assert.equal(await startError(fresh, 'multipaxos'), null, 'a gap above the chosen prefix starts');
  await deleteStored(fresh, 'log', [2]);
  assert.match((await startError(fresh, 'multipaxos'))!, /no record for chosen slots \(2\) below its chosen prefix 3/);
});

test('a log that holds nothing but a promise refuses to start once that promise is lost', async () => {
  const dir = path.join(base, 'promise-only');
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  await s.persist({ snapshot: null, hardState: { ballot: 3 * 65536 + 2, vote: 0 }, truncateFrom: 0, records: [], chosenPrefix: 0 });
  await s.close();
  await deleteStored(dir, 'meta', ['hard']);
  s = LogStore.open({ dir, fsync: false, kernels });
  assert.throws(() => s.load(), /hard state is missing .* 0 records .*refusing to start/);
  await s.close();
  assert.match((await startError(dir, 'multipaxos'))!, /hard state is missing/);
});

test('a fresh log starts with an all-zero hard state and writes it, so that losing it later is detected', async () => {
  const dir = path.join(base, 'fresh');
  let s = LogStore.open({ dir, fsync: false, kernels });
  assert.deepEqual(s.load().restored.hardState, { ballot: 0, vote: 0 });
  await s.persist({ snapshot: null, hardState: null, truncateFrom: 0, records: [{ position: 1, ballot: 65537, value: Uint8Array.of(1) }], chosenPrefix: 0 });
  await s.close();
  s = LogStore.open({ dir, fsync: false, kernels });
  assert.equal(s.load().restored.records.length, 1, 'a record without any promise is fine while the zero hard state is there');
  await s.close();
  await deleteStored(dir, 'meta', ['hard']);
  s = LogStore.open({ dir, fsync: false, kernels });
  assert.throws(() => s.load(), /hard state is missing/);
  await s.close();
});

test('an LMDB file cut short, or overwritten with zeros or random bytes, is refused naming the file, not a crash; --rejoin-without-voting sets it aside', { timeout: 60_000 }, async (t) => {
  const { image } = await theReplica();
  const size = fs.statSync(path.join(image, 'paxlog.mdb')).size;
  t.diagnostic(`the replica's LMDB file: ${size} bytes`);
  const rng = new Prng(20261129);
  // A compacted copy holds live pages only: whatever a cut takes, LMDB would have read.
  const damage: [string, (file: string) => void, RegExp][] = [
    ['cut to half (at a page boundary)', (f) => fs.truncateSync(f, Math.floor(size / 2 / 4096) * 4096), /cut short: it lacks page \d+ \(of \d+ bytes\), which holds live data/],
    ['without its last 4 KiB', (f) => fs.truncateSync(f, size - 4096), /cut short: it lacks page \d+/],
    ['cut to 4 KiB', (f) => fs.truncateSync(f, 4096), /too short to hold LMDB's meta page 1/],
    ['64 KiB of zeros', (f) => fs.writeFileSync(f, Buffer.alloc(65536)), /meta page 0 does not carry LMDB's magic number/],
    ['64 KiB of random bytes', (f) => fs.writeFileSync(f, Uint8Array.from({ length: 65536 }, () => rng.int(0, 256))), /meta page 0 does not carry LMDB's magic number/],
  ];
  for (const [i, [what, harm, reason]] of damage.entries()) {
    const dir = copyImage(image, `lmdb-damaged-${i}`);
    const file = path.join(dir, 'paxlog.mdb');
    harm(file);
    assert.throws(() => LogStore.open({ dir, fsync: false, kernels }),
      (e: Error) => e instanceof LogDamagedError && e instanceof StorageError && e.message.startsWith(`the log file ${file} is damaged: `) && reason.test(e.message),
      `${what}: not refused as damaged`);
    assert.equal(fs.existsSync(path.join(dir, 'paxlog.lock')), false, `${what}: the directory's lock is released`);
    assert.match((await startError(dir, 'multipaxos'))!, reason, `${what}: the node refuses to start`);
  }
  // With --rejoin-without-voting the damaged file is kept aside and the node starts from an empty log.
  const dir = path.join(base, 'lmdb-damaged-0');
  const node = Node.open({ id: 1, peers: parsePeers(peersMultiPaxos), dataDir: dir, stateMachine: new Counter(), logger: silent, kernels: 'js', rejoinWithoutVoting: true });
  try {
    const aside = fs.readdirSync(dir).filter((f) => f.startsWith('damaged-'));
    assert.equal(aside.length, 1, 'set aside');
    assert.equal(fs.statSync(path.join(dir, aside[0], 'paxlog.mdb')).size, Math.floor(size / 2 / 4096) * 4096, 'kept as it was');
  } finally {
    await node.stop();
  }
});

test('a B-tree page whose node says it reaches past the page (a flipped size or index bound) is refused as damaged, not a SIGBUS', { timeout: 60_000 }, async () => {
  const { image, stored } = await theReplica();
  const file0 = fs.readFileSync(path.join(image, 'paxlog.mdb'));
  const pageSize = file0.readUInt32LE(48);
  // The small record stored furthest into the file: its node (lo u16, hi u16, flags u16, key size
  // u16, the key, then the value) sits in one of the last leaf pages.
  const victim = stored.filter((r) => r.bytes.length < 1000).reduce((a, b) => (b.fileOffset > a.fileOffset ? b : a));
  const node = [...Array(16).keys()].map((k) => victim.fileOffset - lmdbNodeBytes - k)
    .find((at) => file0.readUInt16LE(at) === victim.bytes.length && file0.readUInt16LE(at + 6) === victim.fileOffset - at - lmdbNodeBytes)!;
  assert.ok(node !== undefined, 'the record\'s node header was found');
  const leaf = Math.floor(node / pageSize) * pageSize;
  const damage: [string, (f: Buffer) => void, RegExp][] = [
    // A flipped bit in the size's high half: 16 MiB more, past the end of the file.
    ['a value 16 MiB longer', (f) => f.writeUInt16LE(f.readUInt16LE(node + 2) | 0x100, node + 2), new RegExp(`page ${leaf / pageSize} holds a node past its end`)],
    ['a node index past the page', (f) => f.writeUInt16LE(0xfff0, leaf + 20), new RegExp(`page ${leaf / pageSize} indexes a node past its end`)],
  ];
  for (const [i, [what, harm, reason]] of damage.entries()) {
    const dir = copyImage(image, `lmdb-node-damaged-${i}`);
    const f = Buffer.from(file0);
    harm(f);
    fs.writeFileSync(path.join(dir, 'paxlog.mdb'), f);
    // In a child: LMDB following such a node reads past the end of the mapped file (SIGBUS).
    const child = `
      import { LogStore } from ${JSON.stringify(new URL('../src/storage/log-store.js', import.meta.url).href)};
      import { loadKernels } from ${JSON.stringify(new URL('../src/kernels/index.js', import.meta.url).href)};
      try {
        const s = LogStore.open({ dir: ${JSON.stringify(dir)}, fsync: false, kernels: loadKernels('js') });
        console.log('opened: ' + JSON.stringify(s.load().corrupt));
      } catch (e) { console.log(e.name + ': ' + e.message); }
    `;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', child], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.signal, null, `${what}: the process ended with ${run.signal}`);
    assert.match(run.stdout, /^LogDamagedError: the log file .* is damaged: /, `${what}: ${run.stdout}${run.stderr}`);
    assert.match(run.stdout, reason, what);
  }
});

test('a damaged key (a record\'s CRC covers its value, not the key it is stored under) is refused as a damaged index, never skipped', { timeout: 60_000 }, async () => {
  const { image, stored } = await theReplica();
  const file0 = fs.readFileSync(path.join(image, 'paxlog.mdb'));
  // Small records in the middle of the log: each one's LMDB node (lo u16, hi u16, flags u16, key
  // size u16, the key, then the value) sits right before its value.
  const keyOf = (r: Stored): { at: number; size: number } => {
    const node = [...Array(16).keys()].map((k) => r.fileOffset - lmdbNodeBytes - k)
      .find((at) => file0.readUInt16LE(at) === r.bytes.length && file0.readUInt16LE(at + 6) === r.fileOffset - at - lmdbNodeBytes);
    assert.ok(node !== undefined, `the node header of record ${r.position} was found`);
    return { at: node + lmdbNodeBytes, size: r.fileOffset - node - lmdbNodeBytes };
  };
  const small = stored.filter((r) => r.bytes.length < 1000);
  const [victim, next] = [small[Math.floor(small.length / 2)], small[Math.floor(small.length / 2) + 1]];
  const k = keyOf(victim);
  const damage: [string, (f: Buffer) => void][] = [
    // Before the fix, these two loaded without the record, and a search from slot 1 skipped its
    // intact neighbours too: the node started and voted without slots it had accepted.
    ['the key zeroed', (f) => f.fill(0, k.at, k.at + k.size)],
    ['the key\'s first byte 0xff', (f) => { f[k.at] = 0xff; }],
    ['the next record\'s key copied over it', (f) => { const n = keyOf(next); assert.equal(n.size, k.size); file0.copy(f, k.at, n.at, n.at + n.size); }],
  ];
  for (const [i, [what, harm]] of damage.entries()) {
    const dir = copyImage(image, `lmdb-key-damaged-${i}`);
    const f = Buffer.from(file0);
    harm(f);
    assert.notDeepEqual(f, file0, `${what}: the file changed`);
    fs.writeFileSync(path.join(dir, 'paxlog.mdb'), f);
    const s = LogStore.open({ dir, fsync: false, kernels });
    try {
      assert.throws(() => s.load(), (e: Error) => e instanceof LogDamagedError && /^the log's index is damaged: .*; refusing to start$/.test(e.message), `${what}: not refused`);
    } finally {
      await s.close();
    }
    assert.match((await startError(dir, 'multipaxos'))!, /the log's index is damaged/, `${what}: the node refuses to start`);
  }
  // With --rejoin-without-voting the damaged log is set aside and the node starts from an empty one.
  const dir = path.join(base, 'lmdb-key-damaged-0');
  const node = Node.open({ id: 1, peers: parsePeers(peersMultiPaxos), dataDir: dir, stateMachine: new Counter(), logger: silent, kernels: 'js', rejoinWithoutVoting: true });
  try {
    assert.equal(fs.readdirSync(dir).filter((f) => f.startsWith('damaged-')).length, 1, 'set aside');
  } finally {
    await node.stop();
  }
});

test('a whole LMDB file shorter than its last page says (pages taken at the end and freed unwritten) opens: only pages that hold data count', async () => {
  const dir = path.join(base, 'short-but-whole');
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 65537, value: Uint8Array.of(p) });
  await s.persist({ snapshot: null, hardState: { ballot: 65537, vote: 0 }, truncateFrom: 0, records: [1, 2, 3].map(rec), chosenPrefix: 4 });
  await s.close();
  // One transaction writes large values (overflow pages taken at the end of the file) and deletes
  // them again: LMDB frees those pages without writing them, yet counts them in its last page.
  const file = path.join(dir, 'paxlog.mdb');
  const root = openLmdb({ path: file, maxDbs: 4, overlappingSync: false });
  const log = root.openDB<Buffer, number>({ name: 'log', encoding: 'binary' });
  root.transactionSync(() => {
    for (let p = 100; p < 200; p++) log.putSync(p, Buffer.alloc(3000));
    for (let p = 100; p < 200; p++) log.removeSync(p);
  });
  const { pageSize, lastPageNumber } = root.getStats() as { pageSize: number; lastPageNumber: number };
  await root.close();
  assert.ok(fs.statSync(file).size < (lastPageNumber + 1) * pageSize, `the file (${fs.statSync(file).size} bytes) is shorter than ${lastPageNumber + 1} pages`);
  s = LogStore.open({ dir, fsync: false, kernels });
  const { restored, corrupt, missing } = s.load();
  assert.deepEqual([restored.records.map((r) => r.position), restored.chosenPrefix, corrupt, missing], [[1, 2, 3], 4, [], []]);
  await s.persist({ snapshot: null, hardState: null, truncateFrom: 0, records: Array.from({ length: 50 }, (_, i) => ({ ...rec(4 + i), value: new Uint8Array(3000) })), chosenPrefix: 54 });
  await s.close();
  s = LogStore.open({ dir, fsync: false, kernels });
  assert.equal(s.load().restored.records.length, 53, 'and LMDB writes on past its end');
  await s.close();
});
