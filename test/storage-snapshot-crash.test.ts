// A node saves its own snapshots in the background (LogStore.saveSnapshot): a file, then a
// transaction naming it. This test kills a writer (SIGKILL) at random moments while it persists
// records and saves snapshots, restarts it on the same directory each time, and checks after
// every kill that the log loads whole: nothing corrupt or missing, every acknowledged record and
// snapshot there, and no file left over but the named snapshot's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadKernels } from '../src/kernels/index.js';
import { LogStore } from '../src/storage/log-store.js';

const childEnv = 'PAXLOG_SNAPSHOT_CRASH_CHILD';
const kernels = loadKernels('js');

/** Persist 40 records, save a 2 MB snapshot below the newest 10, print what is durable; again. */
async function runChild(dir: string): Promise<never> {
  const store = LogStore.open({ dir, fsync: true, kernels });
  const { restored, corrupt, missing } = store.load();
  assert.ok(corrupt.length === 0 && missing.length === 0, 'the child starts from a whole log');
  let next = Math.max(restored.appliedPrefix, ...restored.records.map((r) => r.position + 1));
  const value = new Uint8Array(200).fill(5);
  for (;;) {
    const records = Array.from({ length: 40 }, () => ({ position: next++, ballot: 1, value }));
    await store.persist({ snapshot: null, hardState: null, truncateFrom: 0, records, chosenPrefix: next });
    fs.writeSync(1, `record ${next - 1}\n`);
    const prefix = next - 10;
    const state = new Uint8Array(2 * 1024 * 1024).fill(prefix & 0xff);
    if (await store.saveSnapshot({ prefix, ballot: 1, bytes: state })) fs.writeSync(1, `snapshot ${prefix}\n`);
  }
}

/** Start the child, kill it after `ms`, and return the last record and snapshot it acknowledged. */
async function killAfter(dir: string, ms: number): Promise<{ record: number; snapshot: number }> {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
    env: { ...process.env, [childEnv]: dir }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  let started = false;
  child.stdout.once('data', () => {
    started = true;
    setTimeout(() => child.kill('SIGKILL'), ms);
  });
  const bound = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await new Promise((resolve) => child.on('exit', resolve));
  clearTimeout(bound);
  assert.ok(started, 'the child wrote before it was killed');
  const last = (what: string): number => Math.max(1, ...[...out.matchAll(new RegExp(`${what} (\\d+)`, 'g'))].map((m) => Number(m[1])));
  return { record: last('record'), snapshot: last('snapshot') };
}

if (process.env[childEnv] !== undefined) {
  await runChild(process.env[childEnv]);
} else {
  test('a writer killed while it saves snapshots restarts from a whole log, every acknowledged write there', { timeout: 120_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-snapcrash-'));
    let snapshots = 0;
    for (let round = 0; round < 8; round++) {
      const acked = await killAfter(dir, 30 + Math.floor(Math.random() * 300));
      const store = LogStore.open({ dir, fsync: true, kernels });
      const { restored, corrupt, missing } = store.load();
      await store.close();
      assert.deepEqual(corrupt, [], `round ${round}`);
      assert.deepEqual(missing, [], `round ${round}`);
      assert.ok(restored.appliedPrefix >= acked.snapshot, `round ${round}: snapshot ${acked.snapshot} was acknowledged, the log has ${restored.appliedPrefix}`);
      const top = restored.records.length > 0 ? restored.records[restored.records.length - 1].position : restored.appliedPrefix - 1;
      assert.ok(top >= acked.record, `round ${round}: record ${acked.record} was acknowledged, the log ends at ${top}`);
      if (restored.snapshot !== null) {
        assert.ok(restored.snapshot.bytes.every((b) => b === (restored.snapshot!.prefix & 0xff)), `round ${round}: the snapshot's bytes are its own`);
        snapshots++;
      }
      const left = fs.readdirSync(dir).filter((f) => f.includes('.snapshot-'));
      assert.deepEqual(left, restored.snapshot === null ? [] : [`paxlog.mdb.snapshot-${restored.snapshot.prefix}`], `round ${round}: files left`);
    }
    assert.ok(snapshots > 0, 'some round got as far as a snapshot');
    fs.rmSync(dir, { recursive: true, force: true });
  });
}
