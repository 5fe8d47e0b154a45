// The soak: its end-of-run checks on histories made by hand (each one must catch what it is for),
// its flags, and a short soak of real processes for each protocol (30 s each, 3 nodes, the leader
// killed with SIGKILL every 10 +- 5 s; recovery within 2 s, see below). Ports: 23800-23814 (multipaxos), 23850-23864 (raft).

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkHistory, History, lostWrites, percentile, recoveryTimesMs } from '../src/soak/history.js';
import { parseSoakArgs } from '../src/soak/main.js';

const soakMain = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/soak/main.js');

/** A history from (kind, key, value, outcome, call ms, return ms) rows, recorded in time order. */
function historyOf(rows: [kind: 'write' | 'read', key: string, value: string | null, outcome: 'ok' | 'failed' | 'unknown', callMs: number, retMs: number][]): History {
  const h = new History();
  const events: { at: number; row: number; ret: boolean }[] = [];
  rows.forEach((r, i) => {
    events.push({ at: r[4], row: i, ret: false });
    if (r[3] !== 'unknown') events.push({ at: r[5], row: i, ret: true });
  });
  events.sort((a, b) => a.at - b.at || Number(a.ret) - Number(b.ret));
  const ops = new Map<number, ReturnType<History['invoke']>>();
  for (const e of events) {
    const [kind, key, value, outcome] = rows[e.row];
    if (!e.ret) ops.set(e.row, h.invoke(kind, key, kind === 'write' ? value : null, e.at));
    else h.complete(ops.get(e.row)!, outcome, e.at, kind === 'read' ? value : undefined);
  }
  return h;
}

describe('the soak checks', () => {
  test('a sequential history passes, and a stale read is caught', () => {
    const good = historyOf([['write', 'a', '1', 'ok', 0, 1], ['read', 'a', '1', 'ok', 2, 3], ['write', 'a', '2', 'ok', 4, 5], ['read', 'a', '2', 'ok', 6, 7]]);
    assert.deepEqual(checkHistory(good.ops), { keys: 1, violations: [], undecided: [] });
    const stale = historyOf([['write', 'a', '1', 'ok', 0, 1], ['write', 'a', '2', 'ok', 2, 3], ['read', 'a', '1', 'ok', 4, 5]]);
    const r = checkHistory(stale.ops);
    assert.equal(r.violations.length, 1);
    assert.equal(r.violations[0].key, 'a');
  });

  test('an unknown write may take effect late; a failed one may not take effect at all', () => {
    const late = historyOf([['write', 'a', '1', 'unknown', 0, 0], ['read', 'a', null, 'ok', 2, 3], ['read', 'a', '1', 'ok', 50, 51]]);
    assert.equal(checkHistory(late.ops).violations.length, 0);
    const failed = historyOf([['write', 'a', '1', 'failed', 0, 1], ['read', 'a', '1', 'ok', 2, 3]]);
    assert.equal(checkHistory(failed.ops).violations.length, 1, 'a read saw a write that surely was not applied');
  });

  test('an acknowledged write is lost unless the final value is its own or a later write\'s', () => {
    const h = historyOf([['write', 'a', '1', 'ok', 0, 1], ['write', 'a', '2', 'ok', 2, 3], ['write', 'b', '3', 'ok', 0, 1], ['write', 'b', '4', 'unknown', 5, 0]]);
    assert.deepEqual(lostWrites(h.ops, new Map([['a', '2'], ['b', '4']])), []);
    assert.deepEqual(lostWrites(h.ops, new Map([['a', '2'], ['b', '3']])), []);
    assert.deepEqual(lostWrites(h.ops, new Map([['a', '1'], ['b', '3']])).map((o) => o.value), ['2'], 'an older value came back');
    assert.deepEqual(lostWrites(h.ops, new Map([['a', null], ['b', '3']])).map((o) => o.value), ['1', '2'], 'the key vanished');
    assert.deepEqual(lostWrites(h.ops, new Map([['a', '3'], ['b', '3']])).map((o) => o.value), ['1', '2'], 'another key\'s value');
  });

  test('recovery is the time from a kill to the first acknowledged write called after it', () => {
    const h = historyOf([['write', 'a', '1', 'ok', 90, 120], ['write', 'a', '2', 'unknown', 101, 0], ['write', 'a', '3', 'ok', 150, 400],
      ['write', 'a', '4', 'ok', 200, 350], ['write', 'a', '5', 'failed', 1000, 1001]]);
    assert.deepEqual(recoveryTimesMs(h.ops, [100, 900]), [250, Infinity]);
    assert.equal(percentile([5, 1, 4, 2, 3], 99), 5);
    assert.equal(percentile([5, 1, 4, 2, 3], 50), 3);
    assert.ok(Number.isNaN(percentile([], 99)));
  });

  test('bad flags are refused with a message that names them', () => {
    assert.deepEqual(parseSoakArgs(['--minutes', '0.5', '--protocol', 'raft', '--nodes', '5']),
      { minutes: 0.5, protocol: 'raft', nodes: 5, seed: 1, basePort: 23700, snapshotSlots: 500, recoveryBoundMs: 800 });
    assert.equal(parseSoakArgs(['--recovery-bound-ms', '2000']).recoveryBoundMs, 2000);
    assert.throws(() => parseSoakArgs(['--recovery-bound-ms', '0']), /--recovery-bound-ms 0/);
    assert.throws(() => parseSoakArgs(['--minutes', '0']), /--minutes 0/);
    assert.throws(() => parseSoakArgs(['--nodes', '4']), /--nodes 4/);
    assert.throws(() => parseSoakArgs(['--protocol', 'zab']), /--protocol zab/);
    assert.throws(() => parseSoakArgs(['--color']), /--color/);
  });
});

describe('a short soak of real processes', { timeout: 180_000 }, () => {
  for (const [protocol, basePort] of [['multipaxos', 23800], ['raft', 23850]] as const) {
    // Two kills in 30 s, so the p99 recovery is their maximum. A split vote (both survivors
    // campaign in the same tick, each votes for itself, both back off) is a legal outcome that
    // costs another election timeout or more, so this run bounds recovery at 2 s (five election
    // timeouts): a cluster that fails to elect a leader still fails it. The long soaks keep 800 ms.
    test(`${protocol}: 30 s with the leader killed every 10 +- 5 s is linearizable, loses no acknowledged write and serves again within 2 s of a kill`, async (t) => {
      const child = spawn(process.execPath, [soakMain, '--minutes', '0.5', '--protocol', protocol, '--nodes', '3', '--seed', '7', '--base-port', String(basePort),
        '--recovery-bound-ms', '2000'],
        { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-64 * 1024); });
      child.stderr.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-64 * 1024); });
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      const line = out.split('\n').find((l) => l.startsWith('soak summary: '));
      t.diagnostic(line ?? '(no summary)');
      // The reasons first: a report that shows only the start of a long message still shows why.
      const reasons = out.split('\n').filter((l) => l.startsWith('soak FAILED: ') || l.startsWith('soak summary: '));
      assert.equal(code, 0, `${reasons.join('\n')}\n${out}`);
      const s = JSON.parse(line!.slice('soak summary: '.length)) as Record<string, unknown>;
      assert.ok((s.kills as number) >= 2, `only ${s.kills} kills in 30 s`);
      assert.equal(s.linearizable, true);
      assert.equal(s.acknowledgedWritesLost, 0);
      assert.ok((s.snapshotsTaken as number) > 0, 'the nodes never compacted their logs');
      assert.ok((s.writes as { ok: number }).ok > 100, `only ${(s.writes as { ok: number }).ok} acknowledged writes`);
    });
  }
});
