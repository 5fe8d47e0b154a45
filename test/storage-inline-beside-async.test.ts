// A persist is written inline (LogStore.persist(batch, true): transactionSync on this thread) only
// when no other persist is in flight, but the node's own snapshot save may then be in lmdb-js's
// write queue: its transaction asked for, waiting for lmdb-js's thread, its body waiting to run
// on this one, or its commit syncing. With transactionSync's default flags (synchronous commit)
// lmdb-js has the inline transaction wait for a commit under way, or interrupt a batch that waits
// for its body (the batch commits what it holds, the inline one commits and syncs, the batch goes
// on); an inline transaction that joined the batch instead (transactionSync(write, 1)) would be
// acknowledged before its sync, which the second test catches. And on a node that is not leading
// an inline persist may hold up to a MiB of records.
//
// A child process writes such inline persists (records of up to 512 KiB, up to a MiB at once,
// through the WASM kernels the node runs on) right when a snapshot's transaction is asked for,
// from microtasks (before lmdb-js's thread can call back) and from later turns (while it commits),
// and prints what is durable. The tests check that the child neither hangs nor holds its thread
// for long, and that after it ends, or is killed at a random moment, the log loads whole: every
// acknowledged record there with its own bytes, every acknowledged snapshot, the chosen prefix
// never above a missing record.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadKernels } from '../src/kernels/index.js';
import { LogStore } from '../src/storage/log-store.js';
import type { LogRecord } from '../src/protocol/types.js';
import { rootOf } from './lmdb-faults.js';

const childEnv = 'PAXLOG_INLINE_BESIDE_ASYNC_CHILD';
const roundsEnv = 'PAXLOG_INLINE_BESIDE_ASYNC_ROUNDS';

/** The bytes of the record at `position`: its length and contents follow from it. */
function valueOf(position: number): Uint8Array {
  const big = position % 7 === 3;
  const length = big ? 256 * 1024 + (position % 5) * 64 * 1024 : 100 + (position % 13) * 10;
  return new Uint8Array(length).fill(position & 0xff);
}

async function runChild(dir: string, rounds: number): Promise<void> {
  const kernels = loadKernels('wasm');
  const store = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt, missing } = store.load();
  assert.ok(corrupt.length === 0 && missing.length === 0, 'the child starts from a whole log');
  let next = Math.max(restored.appliedPrefix, ...restored.records.map((r) => r.position + 1));
  let stallMs = 0;
  const print = (line: string): void => void fs.writeSync(1, `${line}\n`);

  /** One inline persist of `count` records (about a MiB at most); resolves once durable, printed. */
  const inline = (count: number): Promise<boolean> => {
    const records: LogRecord[] = [];
    let bytes = 0;
    while (records.length < count) {
      const value = valueOf(next);
      if (records.length > 0 && bytes + value.byteLength > 1024 * 1024) break;
      bytes += value.byteLength;
      records.push({ position: next++, ballot: 1, value });
    }
    const last = next - 1;
    if (saving) {
      if (bodyRan) afterBody++;
      else beforeBody++;
    }
    const t0 = performance.now();
    const p = store.persist({ snapshot: null, hardState: null, truncateFrom: 0, records, chosenPrefix: next }, true);
    stallMs = Math.max(stallMs, performance.now() - t0);
    return p.then((wrote) => {
      print(`record ${last}`);
      return wrote;
    });
  };

  // When the snapshot's transaction is asked for: an inline persist at once, then one after
  // another, each once the one before resolved, half from microtasks, half from later turns,
  // until the snapshot's save settles.
  const root = rootOf(store);
  const transaction = root.transaction;
  let saving = false;
  let chain: Promise<unknown> = Promise.resolve();
  // Inline persists written while the snapshot's transaction was asked for: before its body ran
  // (lmdb-js interrupts its batch), and after it (its commit may be syncing).
  let bodyRan = false;
  let beforeBody = 0;
  let afterBody = 0;
  root.transaction = <T>(body: () => T): Promise<T> => {
    bodyRan = false;
    const p = transaction.call(root, () => {
      bodyRan = true;
      return body();
    }) as Promise<T>;
    if (saving) {
      const step = (i: number): Promise<unknown> => {
        if (!saving) return Promise.resolve();
        return inline(1 + (i % 4)).then(() => i % 2 === 0 ? undefined : new Promise((r) => setImmediate(r))).then(() => step(i + 1));
      };
      chain = step(0);
    }
    return p;
  };

  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < 5; i++) await inline(4);
    const prefix = next - 3;
    const state = new Uint8Array(64 * 1024 + (round % 3) * 512 * 1024).fill(prefix & 0xff);
    saving = true;
    const saved = await store.saveSnapshot({ prefix, ballot: 1, bytes: state }).finally(() => {
      saving = false;
    });
    await chain;
    if (saved) print(`snapshot ${prefix}`);
  }
  print(`stall ${Math.ceil(stallMs)}`);
  print(`beforebody ${beforeBody}`);
  print(`afterbody ${afterBody}`);
  await store.close();
}

interface Acked { record: number; snapshot: number; stall: number; beforeBody: number; afterBody: number; code: number | null; signal: string | null }

/** Run the child (for `rounds` rounds; killed after `killMs` if given) and return what it acknowledged. */
async function runChildProcess(dir: string, rounds: number, killMs: number | null, boundMs: number): Promise<Acked> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, [childEnv]: dir, [roundsEnv]: String(rounds) }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  if (killMs !== null) child.stdout.once('data', () => setTimeout(() => child.kill('SIGKILL'), killMs));
  const bound = setTimeout(() => child.kill('SIGKILL'), boundMs); // a hang (the child's thread stuck in LMDB) fails below
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(bound);
  const last = (what: string): number => Math.max(0, ...[...out.matchAll(new RegExp(`${what} (\\d+)`, 'g'))].map((m) => Number(m[1])));
  return { record: last('record'), snapshot: last('snapshot'), stall: last('stall'), beforeBody: last('beforebody'), afterBody: last('afterbody'), code, signal };
}

/** Load the log the child left and check it against what the child acknowledged. */
async function checkLog(dir: string, acked: Acked, what: string): Promise<{ snapshot: boolean }> {
  const store = LogStore.open({ dir, fsync: true, kernels: loadKernels('js') });
  const { restored, corrupt, missing } = store.load();
  await store.close();
  assert.deepEqual(corrupt, [], what);
  assert.deepEqual(missing, [], `${what}: chosen prefix ${restored.chosenPrefix} above missing records`);
  assert.ok(restored.appliedPrefix >= acked.snapshot, `${what}: snapshot ${acked.snapshot} was acknowledged, the log has ${restored.appliedPrefix}`);
  let expect = restored.appliedPrefix;
  for (const r of restored.records) {
    if (r.position < restored.appliedPrefix) continue;
    assert.equal(r.position, expect, `${what}: records from the snapshot on are contiguous`);
    assert.deepEqual(r.value, valueOf(r.position), `${what}: record ${r.position} holds its own bytes`);
    expect++;
  }
  assert.ok(expect - 1 >= acked.record, `${what}: record ${acked.record} was acknowledged, the log ends at ${expect - 1}`);
  if (restored.snapshot !== null) {
    assert.ok(restored.snapshot.bytes.every((b) => b === (restored.snapshot!.prefix & 0xff)), `${what}: the snapshot's bytes are its own`);
  }
  return { snapshot: restored.snapshot !== null };
}

if (process.env[childEnv] !== undefined) {
  await runChild(process.env[childEnv], Number(process.env[roundsEnv]));
} else {
  test('inline persists of up to a MiB beside a queued snapshot save neither hang nor hold the thread long, and lose nothing', { timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-inline-async-'));
    try {
      const acked = await runChildProcess(dir, 25, null, 90_000);
      assert.equal(acked.signal, null, 'the child finished (it was not killed for hanging)');
      assert.equal(acked.code, 0, 'the child exited cleanly');
      assert.ok(acked.snapshot > 0 && acked.record > acked.snapshot, `the child wrote records and snapshots (${JSON.stringify(acked)})`);
      // Both moments came up: before the snapshot's body ran, and after it (before its commit resolved).
      assert.ok(acked.beforeBody > 0 && acked.afterBody > 0, `inline persists beside the snapshot's transaction: ${JSON.stringify(acked)}`);
      // One inline persist waits at most for the snapshot's small transaction and its own, each with a sync.
      assert.ok(acked.stall < 2_000, `an inline persist held the thread ${acked.stall} ms`);
      console.log(JSON.stringify(acked));
      await checkLog(dir, acked, 'after a clean end');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a writer killed while inline persists run beside its snapshot saves restarts from a whole log, every acknowledged write there', { timeout: 180_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-inline-async-kill-'));
    try {
      let snapshots = 0;
      for (let round = 0; round < 8; round++) {
        const acked = await runChildProcess(dir, 1_000_000, 30 + Math.floor(Math.random() * 400), 20_000);
        assert.equal(acked.signal, 'SIGKILL', `round ${round}: killed`);
        if ((await checkLog(dir, acked, `round ${round}`)).snapshot) snapshots++;
      }
      assert.ok(snapshots > 0, 'some round got as far as a snapshot');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
