// The LMDB log: what is persisted comes back after a reopen; corrupt records are reported and
// never served; a corrupt hard state refuses to start.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';
import { loadKernels } from '../src/kernels/index.js';
import { LogDamagedError, LogStore, StorageError, type LogIdentity } from '../src/storage/log-store.js';
import { makeDirs } from '../src/storage/dirs.js';
import { failCommits, flipStoredBits } from './lmdb-faults.js';
import type { Snapshot } from '../src/protocol/types.js';

const kernels = loadKernels('js');
const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-storage-'));
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const none = { snapshot: null, hardState: null, truncateFrom: 0, records: [], chosenPrefix: 0 };

/** Damage one stored byte directly in LMDB, as a bad disk would (the LogStore must be closed). */
const flipStoredByte = (dir: string, db: 'log' | 'meta', key: number | string, at: number): Promise<void> => flipStoredBits(dir, db, key, at, 0x10);

test('makeDirs makes the missing directories and names them, outermost first (a new log syncs each one\'s parent); a file in the way fails', () => {
  const dir = tmp();
  assert.deepEqual(makeDirs(path.join(dir, 'a', 'b', 'c')), [path.join(dir, 'a'), path.join(dir, 'a', 'b'), path.join(dir, 'a', 'b', 'c')]);
  assert.ok(fs.statSync(path.join(dir, 'a', 'b', 'c')).isDirectory());
  assert.deepEqual(makeDirs(path.join(dir, 'a', 'b')), []);
  fs.writeFileSync(path.join(dir, 'f'), '');
  assert.throws(() => makeDirs(path.join(dir, 'f', 'g')), /ENOTDIR/);
  const s = LogStore.open({ dir: path.join(dir, 'x', 'y'), fsync: true, kernels });
  assert.equal(s.load().restored.chosenPrefix, 1);
  return s.close();
});

test('persisted hard state, records and chosen prefix come back after a reopen', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  assert.deepEqual(s.load().restored, { hardState: { ballot: 0, vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: true });
  await s.persist({
    snapshot: null, hardState: { ballot: 65537, vote: 0 }, truncateFrom: 0, chosenPrefix: 2,
    records: [{ position: 1, ballot: 65537, value: bytes('a') }, { position: 3, ballot: 65537, value: bytes('ccc') }],
  });
  await s.persist({ ...none, records: [{ position: 3, ballot: 131073, value: bytes('C') }] });
  await s.close();

  s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt } = s.load();
  assert.deepEqual(corrupt, []);
  assert.deepEqual(restored.hardState, { ballot: 65537, vote: 0 });
  assert.equal(restored.chosenPrefix, 2);
  assert.deepEqual(restored.records.map((r) => [r.position, r.ballot, Buffer.from(r.value).toString()]),
    [[1, 65537, 'a'], [3, 131073, 'C']]);
  assert.equal(Buffer.from(s.get(1)!.value).toString(), 'a');
  assert.equal(s.get(2), null);
  await s.close();
});

test('newCluster: a log that holds nothing comes back rejoining with newCluster, until it holds a ballot or says rejoined', async () => {
  const dir = tmp();
  const open = (newCluster: boolean) => LogStore.open({ dir, fsync: true, kernels, newCluster });
  let s = open(true);
  assert.deepEqual(s.load().restored, { hardState: { ballot: 0, vote: 0 }, records: [], chosenPrefix: 1, appliedPrefix: 1, snapshot: null, rejoining: true, newCluster: true });
  await s.close();
  s = open(false);
  assert.equal(s.load().restored.newCluster, undefined, 'only when the node is told it starts a new cluster');
  await s.close();
  // A crash after a promise and before `rejoined`: the log holds a ballot, so it rejoins in full.
  s = open(true);
  await s.persist({ ...none, hardState: { ballot: 65537, vote: 0 } });
  await s.close();
  s = open(true);
  let r = s.load().restored;
  assert.equal(r.rejoining, true);
  assert.equal(r.newCluster, undefined);
  await s.persist({ ...none, hardState: { ballot: 65537, vote: 0 }, rejoined: true });
  await s.close();
  s = open(true);
  r = s.load().restored;
  assert.equal(r.rejoining, false);
  assert.equal(r.newCluster, undefined);
  await s.close();
});

test('preallocation: a new log file is grown with zeros, LMDB writes into and past them, and every record comes back', async () => {
  const dir = tmp();
  const file = path.join(dir, 'paxlog.mdb');
  let s = LogStore.open({ dir, fsync: true, kernels, preallocateBytes: 1024 * 1024 });
  assert.equal(fs.statSync(file).size, 1024 * 1024);
  s.load();
  // 2 MiB of records: through the zeros and past them.
  const value = (p: number): Uint8Array => new Uint8Array(8 * 1024).fill(p % 251);
  for (let p = 1; p <= 256; p += 16) {
    const records = Array.from({ length: 16 }, (_, i) => ({ position: p + i, ballot: 65537, value: value(p + i) }));
    await s.persist({ ...none, records, chosenPrefix: p + 16 });
  }
  await s.close();
  assert.ok(fs.statSync(file).size > 2 * 1024 * 1024, `the file grew past the zeros: ${fs.statSync(file).size} bytes`);

  // An existing log at least as long as the option is left as it is; a shorter one (as paxlog
  // compact leaves it) is grown to it, and LMDB goes on writing into the zeros.
  const size = fs.statSync(file).size;
  s = LogStore.open({ dir, fsync: true, kernels, preallocateBytes: 1024 * 1024 });
  assert.equal(fs.statSync(file).size, size);
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels, preallocateBytes: 64 * 1024 * 1024 });
  assert.equal(fs.statSync(file).size, 64 * 1024 * 1024);
  s.load();
  await s.persist({ ...none, records: [{ position: 257, ballot: 65537, value: value(257) }], chosenPrefix: 258 });
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels, preallocateBytes: 64 * 1024 * 1024 });
  const { restored, corrupt } = s.load();
  assert.deepEqual(corrupt, []);
  assert.equal(restored.chosenPrefix, 258);
  assert.equal(restored.records.length, 257);
  for (const r of restored.records) assert.deepEqual(r.value, value(r.position), `record ${r.position}`);
  await s.close();
});

test('truncateFrom deletes every record at or above it before the new records are written', async () => {
  const s = LogStore.open({ dir: tmp(), fsync: true, kernels });
  s.load();
  const rec = (p: number, v: string) => ({ position: p, ballot: 1, value: bytes(v) });
  await s.persist({ ...none, records: [rec(1, 'a'), rec(2, 'b'), rec(3, 'c'), rec(4, 'd')] });
  await s.persist({ ...none, truncateFrom: 3, records: [rec(3, 'x')] });
  const { restored } = s.load();
  assert.deepEqual(restored.records.map((r) => Buffer.from(r.value).toString()), ['a', 'b', 'x']);
  await s.close();
});

test('a record that fails its CRC is reported at load and never served', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  const value = bytes('a value that will be damaged');
  await s.persist({ ...none, records: [{ position: 1, ballot: 7, value }, { position: 2, ballot: 7, value }] });
  await s.close();
  await flipStoredByte(dir, 'log', 2, 40); // a byte inside record 2's value
  s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt } = s.load();
  assert.deepEqual(restored.records.map((r) => r.position), [1]);
  assert.equal(corrupt.length, 1);
  assert.equal(corrupt[0].key, 2);
  assert.match(corrupt[0].reason, /checksum|crc/i);
  assert.equal(s.get(2), null, 'a corrupt record must not be served');
  assert.equal(Buffer.from(s.get(1)!.value).toString(), 'a value that will be damaged');
  assert.ok(s.corruptCount >= 2);
  await s.close();
});

test('a log keeps the identity it was made with: another node id, member set or protocol is refused, the lock released; the members\' order and a log from before identities are not', async () => {
  const dir = tmp();
  const me: LogIdentity = { id: 1, protocol: 'multipaxos', members: [1, 2, 3] };
  let s = LogStore.open({ dir, fsync: true, kernels, identity: me });
  await s.persist({ ...none, hardState: { ballot: 7, vote: 0 } });
  await s.close();
  const refused = (other: LogIdentity, says: RegExp): void => {
    assert.throws(() => LogStore.open({ dir, fsync: true, kernels, identity: other }), (e: Error) =>
      e instanceof StorageError && !(e instanceof LogDamagedError) &&
      e.message.includes('belongs to node 1 of members 1,2,3 running multipaxos') && says.test(e.message));
  };
  refused({ ...me, id: 2 }, /this start is node 2 of members 1,2,3 running multipaxos/);
  refused({ ...me, members: [1] }, /this start is node 1 of members 1 running multipaxos/);
  refused({ ...me, members: [1, 2, 3, 4, 5] }, /members 1,2,3,4,5/);
  refused({ ...me, protocol: 'raft' }, /running raft/);
  // Each refusal let the directory go, and the log is as it was.
  s = LogStore.open({ dir, fsync: true, kernels, identity: { ...me, members: [3, 1, 2] } });
  assert.equal(s.load().restored.hardState.ballot, 7);
  await s.close();
  // A log made without one (as before identities) takes the first one it is opened with, then keeps it.
  const old = tmp();
  s = LogStore.open({ dir: old, fsync: true, kernels });
  await s.close();
  s = LogStore.open({ dir: old, fsync: true, kernels, identity: { id: 2, protocol: 'raft', members: [1, 2, 3] } });
  await s.close();
  assert.throws(() => LogStore.open({ dir: old, fsync: true, kernels, identity: { id: 1, protocol: 'raft', members: [1, 2, 3] } }),
    /belongs to node 2 of members 1,2,3 running raft/);
  // A damaged identity record is damage (set aside with --rejoin-without-voting), not a mismatch.
  await flipStoredByte(dir, 'meta', 'identity', 9);
  assert.throws(() => LogStore.open({ dir, fsync: true, kernels, identity: me }),
    (e: Error) => e instanceof LogDamagedError && /identity record is damaged \(CRC32C mismatch\)/.test(e.message));
});

test('commits counts LMDB commits (the syncs): an inline persist is one, persists queued together share one', async () => {
  const s = LogStore.open({ dir: tmp(), fsync: true, kernels });
  s.load();
  const before = s.commits;
  await s.persist({ ...none, hardState: { ballot: 1, vote: 0 } }, true);
  assert.equal(s.commits, before + 1, 'an inline persist is a commit');
  const queued = Array.from({ length: 20 }, (_, i) => s.persist({ ...none, records: [{ position: i + 1, ballot: 1, value: bytes(`v${i}`) }] }));
  await Promise.all(queued);
  const shared = s.commits - before - 1;
  assert.ok(shared >= 1 && shared < 20, `20 queued persists made ${shared} commits`);
  await s.close();
});

test('a corrupt hard state refuses to start with a clear error', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  await s.persist({ ...none, hardState: { ballot: 99, vote: 0 } });
  await s.close();
  await flipStoredByte(dir, 'meta', 'hard', 3);
  s = LogStore.open({ dir, fsync: true, kernels });
  assert.throws(() => s.load(), (e: Error) => e instanceof StorageError && /hard state is corrupt/.test(e.message));
  await s.close();
});

test('a snapshot is saved with the Ready that carries it, and the records below its prefix are deleted', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 3, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: [1, 2, 3, 4, 5, 6, 7].map(rec), chosenPrefix: 8 });
  await s.persist({ ...none, snapshot: { prefix: 6, ballot: 3, bytes: bytes('state') }, records: [rec(8)] });
  await s.close();
  s = LogStore.open({ dir, fsync: false, kernels });
  const loaded = s.load();
  assert.deepEqual(snapshotText(loaded.restored.snapshot),
    { prefix: 6, ballot: 3, bytes: 'state' });
  assert.equal(loaded.restored.appliedPrefix, 6);
  assert.deepEqual(loaded.restored.records.map((r) => r.position), [6, 7, 8]);
  assert.equal(s.get(5), null, 'trimmed');
  assert.deepEqual(loaded.missing, []);
  await assert.rejects(s.persist({ ...none, snapshot: { prefix: 6, ballot: 3, bytes: bytes('again') } }), /snapshot at 6 after one at 6/);
  await s.close();
});

/** A snapshot with its bytes as text, for comparing. */
const snapshotText = (snap: Snapshot | null) => snap && { ...snap, bytes: Buffer.from(snap.bytes).toString() };

/** The snapshot files in a data directory, by name. */
const snapshotFiles = (dir: string): string[] => fs.readdirSync(dir).filter((f) => f.includes('.snapshot-')).sort();

test('a snapshot saved in the background is its own file; the meta names it, and older files go', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 3, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: [1, 2, 3, 4, 5, 6, 7].map(rec), chosenPrefix: 8 });
  const state = new Uint8Array(300_000).map((_, i) => i * 7);
  const saving = s.saveSnapshot({ prefix: 4, ballot: 3, bytes: state });
  assert.throws(() => s.saveSnapshot({ prefix: 5, ballot: 3, bytes: state }), /one snapshot saved at a time/);
  // A persist asked for meanwhile is not queued behind the snapshot: it is durable first.
  const done: string[] = [];
  await Promise.all([saving.then(() => done.push('snapshot')), s.persist({ ...none, records: [rec(8)] }).then(() => done.push('persist'))]);
  assert.deepEqual(done, ['persist', 'snapshot']);
  assert.equal(await saving, true);
  assert.deepEqual(snapshotFiles(dir), ['paxlog.mdb.snapshot-4']);
  assert.deepEqual(fs.readFileSync(path.join(dir, 'paxlog.mdb.snapshot-4')), Buffer.from(state));
  assert.equal(s.get(3), null, 'trimmed below the snapshot');
  assert.equal(await s.saveSnapshot({ prefix: 7, ballot: 3, bytes: bytes('later') }), true);
  assert.deepEqual(snapshotFiles(dir), ['paxlog.mdb.snapshot-7'], 'the older file is removed once the newer one is named');
  // One below the saved snapshot (an installed one got there first) is left out, file and all.
  assert.equal(await s.saveSnapshot({ prefix: 6, ballot: 3, bytes: bytes('stale') }), false);
  assert.deepEqual(snapshotFiles(dir), ['paxlog.mdb.snapshot-7']);
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  const loaded = s.load();
  assert.deepEqual(snapshotText(loaded.restored.snapshot),
    { prefix: 7, ballot: 3, bytes: 'later' });
  assert.deepEqual(loaded.restored.records.map((r) => r.position), [7, 8]);
  assert.deepEqual(loaded.corrupt, []);
  await s.close();
});

test('the records a snapshot replaced are never served, and go a batch per transaction, across a restart too', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: Array.from({ length: 1000 }, (_, i) => rec(i + 1)), chosenPrefix: 1001 });
  assert.equal(await s.saveSnapshot({ prefix: 901, ballot: 1, bytes: bytes('state') }), true);
  for (const p of [1, 450, 900]) assert.equal(s.get(p), null, `position ${p} is below the snapshot`);
  assert.deepEqual(s.get(901)?.position, 901);
  await s.close();
  const below = async (): Promise<number> => {
    const root = open({ path: path.join(dir, 'paxlog.mdb'), maxDbs: 4 });
    const n = root.openDB<Buffer, number>({ name: 'log', encoding: 'binary' }).getKeysCount({ end: 901 });
    await root.close();
    return n;
  };
  const left = await below();
  assert.ok(left > 0 && left < 900, `the snapshot's transaction deleted a batch, not all: ${left} left`);
  s = LogStore.open({ dir, fsync: false, kernels });
  assert.deepEqual(s.load().restored.records.map((r) => r.position), Array.from({ length: 100 }, (_, i) => 901 + i));
  // 32 per transaction plus 2 per record written: 30 one-record transactions delete 1,020.
  for (let p = 1001; p < 1031; p++) await s.persist({ ...none, records: [rec(p)] });
  await s.close();
  assert.equal(await below(), 0);
});

test('a snapshot whose file cannot be written fails alone: the log goes on, and a later snapshot is saved', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: [1, 2, 3, 4, 5, 6].map(rec), chosenPrefix: 7 });
  // A directory where the temporary file goes stands in for a disk that refuses the write.
  fs.mkdirSync(path.join(dir, 'paxlog.mdb.snapshot-5.tmp'));
  await assert.rejects(s.saveSnapshot({ prefix: 5, ballot: 1, bytes: bytes('state') }), (e: Error) => e instanceof StorageError && /saving the snapshot at 5 failed: .*EISDIR/.test(e.message));
  await s.persist({ ...none, records: [rec(7)] });
  assert.equal(s.get(4)?.position, 4, 'nothing trimmed');
  assert.equal(await s.saveSnapshot({ prefix: 6, ballot: 1, bytes: bytes('later') }), true);
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  const loaded = s.load();
  assert.equal(loaded.restored.snapshot?.prefix, 6);
  assert.deepEqual(loaded.restored.records.map((r) => r.position), [6, 7]);
  await s.close();
});

test('a commit the disk refuses (persist, snapshot, close) rejects with a StorageError naming the cause, and leaves no rejection unhandled', async () => {
  // lmdb-js hangs the cause of a failed commit on its error as a rejected promise: unhandled, it
  // would end the process (Node 20), so the node could not survive a snapshot the disk refused.
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  process.on('unhandledRejection', onUnhandled);
  try {
    const dir = tmp();
    let s = LogStore.open({ dir, fsync: true, kernels });
    s.load();
    const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
    await s.persist({ ...none, records: [1, 2, 3, 4].map(rec), chosenPrefix: 5 });
    failCommits(s);
    const refused = (what: string) => (e: Error) => e instanceof StorageError && e.message === `${what}: the commit failed: Input/output error`;
    await assert.rejects(s.persist({ ...none, records: [rec(5)] }), refused('persist failed'));
    await assert.rejects(s.saveSnapshot({ prefix: 3, ballot: 1, bytes: bytes('state') }), refused('saving the snapshot at 3 failed'));
    await s.persist({ ...none, chosenPrefix: 6 }); // pending: close writes it, and that commit fails too
    await s.close();
    await new Promise((r) => setImmediate(r)); // an unhandled rejection is reported once the microtasks ran
    assert.deepEqual(unhandled, []);
    s = LogStore.open({ dir, fsync: true, kernels });
    const { restored, corrupt, missing } = s.load();
    assert.deepEqual([restored.records.map((r) => r.position), restored.chosenPrefix, restored.snapshot, corrupt, missing],
      [[1, 2, 3, 4], 5, null, [], []], 'nothing the refused commits held');
    await s.close();
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('a commit the disk really refuses (a file size limit: writes past it fail) leaves the process running, the log whole', { timeout: 60_000 }, () => {
  // lmdb-js's own failure path, not a stub: it used to leave a rejection no caller could handle
  // (its event-turn batch's), which ends the process in Node 20. `ulimit -f` (KiB) stands in for
  // a full disk, as in test/cli.test.ts; a child process carries it.
  const dir = tmp();
  const child = `
    import { loadKernels } from ${JSON.stringify(new URL('../src/kernels/index.js', import.meta.url).href)};
    import { LogStore } from ${JSON.stringify(new URL('../src/storage/log-store.js', import.meta.url).href)};
    const s = LogStore.open({ dir: ${JSON.stringify(dir)}, fsync: true, kernels: loadKernels('js'), newCluster: true });
    s.load();
    let next = 1, refused = 'never';
    while (next < 10000 && refused === 'never') {
      const records = [0, 1, 2, 3].map((i) => ({ position: next + i, ballot: 1, value: new Uint8Array(2000).fill(i) }));
      await s.persist({ snapshot: null, hardState: null, truncateFrom: 0, records, chosenPrefix: next + 4 })
        .then(() => { next += 4; }, (e) => { refused = e.message; });
    }
    await s.close();
    await new Promise((r) => setTimeout(r, 100)); // an unhandled rejection would end the process here
    console.log(JSON.stringify({ durable: next - 1, refused }));
  `;
  const run = spawnSync('bash', ['-c', 'ulimit -f 256; exec "$0" "$@"', process.execPath, '--input-type=module', '-e', child], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 0, `the process ended: ${run.status} ${run.signal}\n${run.stderr}`);
  const { durable, refused } = JSON.parse(run.stdout) as { durable: number; refused: string };
  assert.match(refused, /^persist failed: the commit failed: /);
  const s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt, missing } = s.load();
  assert.deepEqual([restored.records.length, restored.chosenPrefix, corrupt, missing], [durable, durable + 1, [], []]);
  s.closeSync();
});

test('a snapshot whose commit fails moves nothing: the records it meant to replace stay, the older snapshot\'s file too, and a retry saves it', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: Array.from({ length: 200 }, (_, i) => rec(i + 1)), chosenPrefix: 201 });
  assert.equal(await s.saveSnapshot({ prefix: 50, ballot: 1, bytes: bytes('at 50') }), true);
  const restore = failCommits(s);
  await assert.rejects(s.saveSnapshot({ prefix: 150, ballot: 1, bytes: bytes('at 150') }), /the commit failed/);
  await assert.rejects(s.persist({ ...none, snapshot: { prefix: 150, ballot: 1, bytes: bytes('installed') } }), /the commit failed/);
  restore();
  assert.equal(s.snapshotPrefix, 50, 'the durable snapshot is still the one at 50');
  // After a refused persist no later one commits: the node stops, and starts again from the log.
  await assert.rejects(s.persist({ ...none, records: [rec(201)], chosenPrefix: 202 }), /an earlier write \(number \d+\) did not commit/);
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  assert.equal(s.snapshotPrefix, 50, 'the durable snapshot is still the one at 50 after a restart');
  // The transactions that follow trim below the durable snapshot only.
  for (let p = 201; p <= 220; p++) await s.persist({ ...none, records: [rec(p)], chosenPrefix: p + 1 });
  assert.equal(s.get(100)?.position, 100, 'the records no durable snapshot covers are still there, and served');
  assert.deepEqual(snapshotFiles(dir), ['paxlog.mdb.snapshot-50'], 'the file the log names is kept; the one no transaction named went at load');
  // The node retries the same snapshot when nothing was applied since: not taken for saved already.
  assert.equal(await s.saveSnapshot({ prefix: 150, ballot: 1, bytes: bytes('at 150') }), true);
  assert.deepEqual(snapshotFiles(dir), ['paxlog.mdb.snapshot-150'], 'the older file goes once the newer one is named');
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt, missing } = s.load();
  assert.deepEqual([snapshotText(restored.snapshot), corrupt, missing], [{ prefix: 150, ballot: 1, bytes: 'at 150' }, [], []]);
  assert.deepEqual(restored.records.map((r) => r.position), Array.from({ length: 71 }, (_, i) => 150 + i));
  await s.close();
});

test('a snapshot file that is damaged, cut short or gone is reported corrupt with its reason', async () => {
  const damage: [string, (file: string) => void, RegExp][] = [
    ['a flipped byte', (f) => { const b = fs.readFileSync(f); b[b.length >> 1] ^= 1; fs.writeFileSync(f, b); }, /CRC32C mismatch/],
    ['cut short', (f) => fs.truncateSync(f, 10), /holds 10 bytes, not 1000/],
    ['gone', (f) => fs.rmSync(f), /cannot read .*ENOENT/],
  ];
  for (const [what, harm, reason] of damage) {
    const dir = tmp();
    let s = LogStore.open({ dir, fsync: false, kernels });
    s.load();
    await s.persist({ ...none, records: [1, 2, 3].map((p) => ({ position: p, ballot: 1, value: bytes(`v${p}`) })), chosenPrefix: 4 });
    await s.saveSnapshot({ prefix: 3, ballot: 1, bytes: new Uint8Array(1000).fill(9) });
    await s.close();
    harm(path.join(dir, 'paxlog.mdb.snapshot-3'));
    s = LogStore.open({ dir, fsync: false, kernels });
    const loaded = s.load();
    assert.equal(loaded.restored.snapshot, null, what);
    assert.equal(loaded.corrupt.length, 1, what);
    assert.match(loaded.corrupt[0].reason, reason, what);
    assert.deepEqual(loaded.missing, [1, 2], `${what}: the trimmed positions cannot be rebuilt without it`);
    await s.close();
  }
});

test('load removes the snapshot files a crash left behind, and keeps the one the meta names', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  await s.persist({ ...none, records: [1, 2, 3].map((p) => ({ position: p, ballot: 1, value: bytes(`v${p}`) })), chosenPrefix: 4 });
  await s.saveSnapshot({ prefix: 2, ballot: 1, bytes: bytes('named') });
  await s.close();
  // A file renamed but never named by a transaction, and one never renamed.
  fs.writeFileSync(path.join(dir, 'paxlog.mdb.snapshot-3'), 'orphan');
  fs.writeFileSync(path.join(dir, 'paxlog.mdb.snapshot-4.tmp'), 'half');
  s = LogStore.open({ dir, fsync: false, kernels });
  const loaded = s.load();
  assert.equal(Buffer.from(loaded.restored.snapshot!.bytes).toString(), 'named');
  assert.deepEqual(snapshotFiles(dir), ['paxlog.mdb.snapshot-2']);
  await s.close();
});

test('a snapshot stored in the log itself (the format before snapshot files) still loads', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  await s.persist({ ...none, records: [2, 3].map((p) => ({ position: p, ballot: 1, value: bytes(`v${p}`) })), chosenPrefix: 4 });
  await s.close();
  // prefix f64, ballot f64, the state, then the CRC32C of all that.
  const payload = Buffer.alloc(16 + 5);
  payload.writeDoubleLE(2, 0);
  payload.writeDoubleLE(1, 8);
  payload.write('older', 16);
  const stored = Buffer.alloc(payload.length + 4);
  payload.copy(stored);
  stored.writeUInt32LE(kernels.crc32c(payload) >>> 0, payload.length);
  const root = open({ path: path.join(dir, 'paxlog.mdb'), maxDbs: 4 });
  root.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' }).putSync('snapshot', stored);
  await root.close();
  s = LogStore.open({ dir, fsync: false, kernels });
  const loaded = s.load();
  assert.deepEqual(snapshotText(loaded.restored.snapshot),
    { prefix: 2, ballot: 1, bytes: 'older' });
  assert.deepEqual(loaded.corrupt, []);
  await s.close();
});

test('a corrupt snapshot is refused, and the positions it covered show as missing', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: [1, 2, 3, 4].map(rec), chosenPrefix: 5 });
  await s.persist({ ...none, snapshot: { prefix: 4, ballot: 0, bytes: bytes('state') } });
  await s.close();
  await flipStoredByte(dir, 'meta', 'snapshot', 18);
  s = LogStore.open({ dir, fsync: false, kernels });
  const loaded = s.load();
  assert.equal(loaded.restored.snapshot, null);
  assert.deepEqual(loaded.corrupt.map((c) => c.key), ['snapshot']);
  assert.deepEqual(loaded.missing, [1, 2, 3], 'the trimmed positions cannot be rebuilt without the snapshot');
  await s.close();
});

test('with compaction the log file stops growing: LMDB reuses the pages trimming frees', async () => {
  const rounds = 12;
  const perRound = 400;
  const value = new Uint8Array(1024).fill(7);
  const sizeAfter = async (compact: boolean): Promise<number> => {
    const dir = tmp();
    const s = LogStore.open({ dir, fsync: false, kernels });
    s.load();
    let next = 1;
    for (let r = 0; r < rounds; r++) {
      const records = Array.from({ length: perRound }, () => ({ position: next++, ballot: 1, value }));
      await s.persist({ ...none, records, chosenPrefix: next });
      if (compact) await s.persist({ ...none, snapshot: { prefix: next, ballot: 1, bytes: bytes(`state at ${next}`) } });
    }
    await s.close();
    return fs.statSync(path.join(dir, 'paxlog.mdb')).size;
  };
  const grown = await sizeAfter(false);
  const compacted = await sizeAfter(true);
  // 12 rounds of 400 KiB: the uncompacted file holds all of it, the compacted one about a round or two.
  assert.ok(grown > rounds * perRound * 1024, `uncompacted file ${grown} bytes`);
  assert.ok(compacted < grown / 3, `compacted file ${compacted} bytes vs ${grown} uncompacted`);
});

test('a closed log refuses writes with a StorageError', async () => {
  const s = LogStore.open({ dir: tmp(), fsync: true, kernels });
  await s.close();
  await assert.rejects(s.persist({ ...none, hardState: { ballot: 1, vote: 0 } }), StorageError);
});

test('close lets the persists in flight finish (an installed snapshot still being written), then refuses new ones', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
  await s.persist({ ...none, hardState: { ballot: 1, vote: 0 }, records: [1, 2, 3].map(rec), chosenPrefix: 4 });
  // The Ready of an install: a peer's snapshot at 1000, the records above it, chosen prefix 1006.
  // close() is asked for while the snapshot's file is being written, as node.stop() may.
  const installed = s.persist({ ...none, snapshot: { prefix: 1000, ballot: 1, bytes: new Uint8Array(8 << 20).fill(7) },
    records: [1000, 1001, 1002, 1003, 1004, 1005].map(rec), chosenPrefix: 1006 });
  const closed = s.close();
  const refused = (e: Error) => e instanceof StorageError && e.name === 'LogClosingError';
  await assert.rejects(s.persist({ ...none, records: [rec(1006)], chosenPrefix: 1007 }), refused);
  await assert.rejects(s.saveSnapshot({ prefix: 1003, ballot: 1, bytes: bytes('late') }), refused);
  assert.equal(await installed, true);
  await closed;
  s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt, missing } = s.load();
  assert.deepEqual([restored.snapshot?.prefix, restored.records.map((r) => r.position), restored.chosenPrefix, corrupt, missing],
    [1000, [1000, 1001, 1002, 1003, 1004, 1005], 1006, [], []]);
  await s.close();
});

test('after a persist failed, no chosen prefix is written that may count on it (close included)', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: [1, 2, 3].map(rec), chosenPrefix: 4 });
  const restore = failCommits(s);
  await assert.rejects(s.persist({ ...none, records: [rec(4), rec(5)], chosenPrefix: 6 }), /the commit failed/);
  restore();
  await s.persist({ ...none, chosenPrefix: 7 });
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  const { restored, missing } = s.load();
  assert.deepEqual([restored.chosenPrefix, restored.records.map((r) => r.position), missing], [4, [1, 2, 3], []]);
  await s.close();
});

test('a chosen prefix alone writes nothing; it rides on the next transaction, on a snapshot or on close', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  s.load();
  const rec = (p: number) => ({ position: p, ballot: 1, value: bytes(`v${p}`) });
  await s.persist({ ...none, records: [rec(1), rec(2)], chosenPrefix: 2 });
  await s.persist({ ...none, chosenPrefix: 3 });
  assert.equal(s.load().restored.chosenPrefix, 2, 'a prefix-only Ready costs no transaction');
  await s.persist({ ...none, records: [rec(3)] });
  assert.equal(s.load().restored.chosenPrefix, 3, 'the next transaction carries it');
  await s.persist({ ...none, chosenPrefix: 4 });
  await s.persist({ ...none, snapshot: { prefix: 2, ballot: 1, bytes: bytes('state') } });
  assert.equal(s.load().restored.chosenPrefix, 4, 'a snapshot carries it too');
  await s.persist({ ...none, chosenPrefix: 5 });
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  assert.equal(s.load().restored.chosenPrefix, 5, 'close writes it');
  await s.close();
});

test('one process per data directory: a live holder is refused, a dead one\'s lock is taken over', async () => {
  const dir = tmp();
  const s = LogStore.open({ dir, fsync: true, kernels });
  assert.throws(() => LogStore.open({ dir, fsync: true, kernels }),
    (e: Error) => e instanceof StorageError && new RegExp(`in use by process ${process.pid}`).test(e.message));
  await s.close();
  assert.equal(fs.existsSync(path.join(dir, 'paxlog.lock')), false, 'close() releases the lock');
  // A lock left by a process that no longer exists (a pid far above any in use).
  fs.writeFileSync(path.join(dir, 'paxlog.lock'), '4194000\n');
  const again = LogStore.open({ dir, fsync: true, kernels });
  assert.equal(fs.readFileSync(path.join(dir, 'paxlog.lock'), 'utf8').split('\n')[0], String(process.pid));
  await again.close();
});

test('a lock naming this process\'s pid that this process does not hold (left by an earlier one with the same pid: a container restarted as pid 1) is taken over', async () => {
  const dir = tmp();
  const lock = path.join(dir, 'paxlog.lock');
  fs.writeFileSync(lock, `${process.pid}\n`); // as a process killed with this pid left it
  const s = LogStore.open({ dir, fsync: true, kernels });
  // The one this process holds is still refused, by any path to the directory.
  const alias = path.join(tmp(), 'alias');
  fs.symlinkSync(dir, alias);
  for (const d of [dir, alias]) {
    assert.throws(() => LogStore.open({ dir: d, fsync: true, kernels }),
      (e: Error) => e instanceof StorageError && new RegExp(`in use by process ${process.pid}`).test(e.message), d);
  }
  await s.close();
  assert.equal(fs.existsSync(lock), false, 'close() releases the lock');
  const again = LogStore.open({ dir: alias, fsync: true, kernels });
  await again.close();
});

test('two processes that find the same stale lock cannot both take it over: one removes only the file it found stale', async () => {
  const dir = tmp();
  const lock = path.join(dir, 'paxlog.lock');
  const stalePid = 4194000; // a pid far above any in use
  fs.writeFileSync(lock, `${stalePid}\n`);
  const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
  const kill = process.kill;
  try {
    // The other process found the lock stale at the same moment, and took it over first: while
    // this one asks whether the stale holder lives, it removes the file and writes its own.
    process.kill = ((pid: number, signal?: string | number) => {
      if (pid === stalePid && fs.readFileSync(lock, 'utf8') === `${stalePid}\n`) {
        fs.rmSync(lock);
        fs.writeFileSync(lock, `${other.pid}\n`, { flag: 'wx' });
      }
      return kill.call(process, pid, signal);
    }) as typeof process.kill;
    assert.throws(() => LogStore.open({ dir, fsync: true, kernels }),
      (e: Error) => e instanceof StorageError && new RegExp(`in use by process ${other.pid}`).test(e.message));
    assert.equal(fs.readFileSync(lock, 'utf8'), `${other.pid}\n`, 'the other process keeps its lock');
    assert.deepEqual(fs.readdirSync(dir), ['paxlog.lock']);
  } finally {
    process.kill = kill;
    other.kill();
  }
});

test('a node the lock file cannot see (another PID namespace: its pid names nobody here) is found by its LMDB reader slot and refused; once it died, the log opens', { timeout: 30_000 }, async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  await s.persist({ ...none, hardState: { ballot: 3, vote: 0 } });
  await s.close();
  // The other node: a process that has the log open and has read it, as a running node has. Its
  // lock file names a pid that is nobody in this namespace.
  const holder = spawn(process.execPath, ['--input-type=module', '-e', `
    import { open } from 'lmdb';
    const root = open({ path: ${JSON.stringify(path.join(dir, 'paxlog.mdb'))}, maxDbs: 4 });
    root.openDB({ name: 'meta', encoding: 'binary' }).get('hard');
    process.stdout.write('reading\\n');
    setTimeout(() => {}, 60_000);`], { stdio: ['ignore', 'pipe', 'inherit'], cwd: process.cwd() });
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout.once('data', () => resolve());
      holder.once('exit', (code) => reject(new Error(`the reader process exited (${code}) before it read`)));
    });
    fs.writeFileSync(path.join(dir, 'paxlog.lock'), '4194000\n');
    assert.throws(() => LogStore.open({ dir, fsync: true, kernels }), (e: Error) =>
      e instanceof StorageError && new RegExp(`in use by another process \\(LMDB lists a reader with pid ${holder.pid}`).test(e.message));
    assert.equal(fs.readFileSync(path.join(dir, 'paxlog.lock'), 'utf8'), '4194000\n', 'the lock it found stale and took is put back as it was');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('paxlog.lock')), ['paxlog.lock'], 'nothing is left aside');
  } finally {
    holder.kill('SIGKILL');
  }
  await new Promise<void>((resolve) => (holder.exitCode !== null || holder.signalCode !== null ? resolve() : holder.once('exit', () => resolve())));
  s = LogStore.open({ dir, fsync: true, kernels });
  assert.equal(s.load().restored.hardState.ballot, 3, 'the dead reader\'s slot is cleared, and the log opens');
  await s.close();
});

test('a log this process reads through another LMDB handle is refused as open here already, not as another process\'s', async () => {
  const dir = tmp();
  await LogStore.open({ dir, fsync: true, kernels }).close();
  const root = open({ path: path.join(dir, 'paxlog.mdb'), maxDbs: 4 });
  root.openDB({ name: 'meta', encoding: 'binary' }).get('hard');
  try {
    assert.throws(() => LogStore.open({ dir, fsync: true, kernels }), /is open in this process already, through another LMDB handle/);
  } finally {
    await root.close();
  }
});

test('closing a log removes its own lock file only: one another process put in its place stays', async () => {
  const dir = tmp();
  const lock = path.join(dir, 'paxlog.lock');
  const s = LogStore.open({ dir, fsync: true, kernels });
  // Another process (in another PID namespace) took the lock over as stale, then stopped at the
  // reader check: its own file is in place of ours.
  fs.renameSync(lock, `${lock}.aside`);
  fs.writeFileSync(lock, '4194000\n');
  await s.close();
  assert.equal(fs.readFileSync(lock, 'utf8'), '4194000\n');
  // The same with the inode ours had: a file system gives a freed inode number out again, and the
  // other process's file may well get it (written here into our very file, which keeps it).
  const t = LogStore.open({ dir: tmp(), fsync: true, kernels });
  const lock2 = path.join((t as unknown as { dir: string }).dir, 'paxlog.lock');
  fs.writeFileSync(lock2, '4194001\n');
  await t.close();
  assert.equal(fs.readFileSync(lock2, 'utf8'), '4194001\n', 'a lock file at our inode, written by another, stays');
});

test('a new log rejoins without voting until a Ready says rejoined; the mark survives reopening until then', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: true, kernels });
  assert.equal(s.load().restored.rejoining, true, 'a new directory may be a wiped one');
  await s.persist({ ...none, hardState: { ballot: 5, vote: 0 } });
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  assert.equal(s.load().restored.rejoining, true, 'still rejoining after a restart');
  await s.persist({ ...none, hardState: { ballot: 6, vote: 0 }, rejoined: true });
  await s.close();
  s = LogStore.open({ dir, fsync: true, kernels });
  const r = s.load().restored;
  assert.equal(r.rejoining, false);
  assert.deepEqual(r.hardState, { ballot: 6, vote: 0 });
  await s.close();
});

test('compactDir shrinks a stopped log to its live pages, keeps every record, and refuses a directory in use', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  const value = new Uint8Array(1024).fill(3);
  let next = 1;
  for (let r = 0; r < 8; r++) {
    await s.persist({ ...none, records: Array.from({ length: 300 }, () => ({ position: next++, ballot: 1, value })), chosenPrefix: next });
  }
  await s.persist({ ...none, snapshot: { prefix: next - 10, ballot: 1, bytes: bytes('state') }, hardState: { ballot: 9, vote: 0 } });
  const before = s.load().restored;
  await assert.rejects(LogStore.compactDir(dir, kernels), /in use by process/);
  await s.close();

  const { bytesBefore, bytesAfter } = await LogStore.compactDir(dir, kernels);
  assert.ok(bytesAfter < bytesBefore / 4, `${bytesBefore} -> ${bytesAfter} bytes`);
  assert.equal(fs.statSync(path.join(dir, 'paxlog.mdb')).size, bytesAfter);
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('compacting') || f === 'paxlog.lock'), [], 'no leftovers, lock released');
  s = LogStore.open({ dir, fsync: false, kernels });
  const after = s.load();
  assert.deepEqual(after.corrupt, []);
  assert.deepEqual(after.restored, before);
  await s.close();
  await assert.rejects(LogStore.compactDir(path.join(dir, 'nope'), kernels), /no log in/);
});

test('a snapshot in the format from before compaction (an 8-byte header) is reported corrupt, not read past its end', async () => {
  const dir = tmp();
  let s = LogStore.open({ dir, fsync: false, kernels });
  s.load();
  await s.persist({ ...none, records: [{ position: 1, ballot: 1, value: bytes('a') }], chosenPrefix: 2 });
  await s.close();
  // The old layout: appliedPrefix f64 then the state bytes (here one byte), then its CRC32C.
  const payload = new Uint8Array(9);
  new DataView(payload.buffer).setFloat64(0, 2, true);
  payload[8] = 7;
  const stored = Buffer.alloc(13);
  stored.set(payload);
  stored.writeUInt32LE(kernels.crc32c(payload) >>> 0, 9);
  const root = open({ path: path.join(dir, 'paxlog.mdb'), maxDbs: 4 });
  root.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' }).putSync('snapshot', stored);
  await root.close();
  s = LogStore.open({ dir, fsync: false, kernels });
  const loaded = s.load();
  assert.equal(loaded.restored.snapshot, null);
  assert.deepEqual(loaded.corrupt.map((c) => [c.key, /bad header \(9 bytes/.test(c.reason)]), [['snapshot', true]]);
  await s.close();
});

test('a new log syncs its directory (fsync on), so that the file itself survives a crash; an existing one does not need to', () => {
  const dir = tmp();
  const synced: string[] = [];
  const opened = new Map<number, string>();
  const [openSync, fsyncSync] = [fs.openSync, fs.fsyncSync];
  fs.openSync = ((p: fs.PathLike, ...rest: unknown[]) => {
    const fd = (openSync as (...a: unknown[]) => number)(p, ...rest);
    opened.set(fd, String(p));
    return fd;
  }) as typeof fs.openSync;
  fs.fsyncSync = ((fd: number) => {
    synced.push(opened.get(fd) ?? `fd ${fd}`);
    fsyncSync(fd);
  }) as typeof fs.fsyncSync;
  try {
    LogStore.open({ dir, fsync: true, kernels }).closeSync();
    assert.ok(synced.includes(dir), `synced: ${synced.join(', ')}`);
    synced.length = 0;
    LogStore.open({ dir, fsync: true, kernels }).closeSync();
    assert.ok(!synced.includes(dir), 'reopened: the name is durable already');
    const other = tmp();
    LogStore.open({ dir: other, fsync: false, kernels }).closeSync();
    assert.ok(!synced.includes(other), 'fsync off: no sync at all');
  } finally {
    fs.openSync = openSync;
    fs.fsyncSync = fsyncSync;
  }
});

