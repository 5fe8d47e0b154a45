// The soak's client history and what it checks at the end: linearizability per key (with the
// project's checker), acknowledged writes lost, and the time to recover after each kill. Pure: no
// I/O and no clock, so the checks are tested on histories made by hand.

import assert from 'node:assert/strict';
import { checkRegister, type CheckResult, type RegisterOp } from '../sim/linearizability.js';

/**
 * ok: the node answered 200 (or 404 for a read); failed: surely not applied (503, or the
 * connection was refused), left out of the check; unknown: a write that may or may not take
 * effect (504, timeout, connection lost mid-request).
 */
export type Outcome = 'ok' | 'failed' | 'unknown';

export interface Operation {
  kind: 'write' | 'read';
  key: string;
  /** The value written (unique in the whole soak), or the value read (null: absent). */
  value: string | null;
  /** Logical time of the call. Invariant: unique over the history, and in real-time order. */
  call: number;
  /** Logical time of the response (Infinity while pending). Invariant: call < ret. */
  ret: number;
  outcome: Outcome;
  /** Wall-clock milliseconds of the call and response (performance.now()), for recovery times. */
  callMs: number;
  retMs: number;
}

/** Operations recorded at most: a soak that outgrows this stops its load early and says so. */
export const operationsMax = 4_000_000;

/** Records operations with one logical clock, so call and return order is the real-time order. */
export class History {
  /** Every operation, in call order. Invariant: length <= operationsMax. */
  readonly ops: Operation[] = [];
  /** The logical clock: the next call or return time. */
  private clock = 0;

  get full(): boolean {
    return this.ops.length >= operationsMax;
  }

  invoke(kind: Operation['kind'], key: string, value: string | null, nowMs: number): Operation {
    assert.ok(!this.full, 'the caller stops invoking once the history is full');
    const op: Operation = { kind, key, value, call: this.clock++, ret: Infinity, outcome: 'unknown', callMs: nowMs, retMs: Infinity };
    this.ops.push(op);
    return op;
  }

  complete(op: Operation, outcome: Outcome, nowMs: number, readValue?: string | null): void {
    assert.ok(op.ret === Infinity, 'an operation completes once');
    if (op.kind === 'read' && outcome === 'ok') op.value = readValue ?? null;
    op.outcome = outcome;
    if (outcome !== 'unknown') {
      op.ret = this.clock++;
      op.retMs = nowMs;
    }
  }
}

export interface LinearizabilityReport {
  keys: number;
  /** Keys whose history is not linearizable, with the checker's reason. */
  violations: { key: string; reason: string }[];
  /** Keys the checker gave up on (too many states). */
  undecided: string[];
}

/** Checks every key's history as a register that starts absent. Failed operations and failed or unknown reads are left out. */
export function checkHistory(ops: readonly Operation[]): LinearizabilityReport {
  const byKey = new Map<string, RegisterOp[]>();
  for (const o of ops) {
    if (o.outcome === 'failed') continue;
    if (o.kind === 'read' && o.outcome !== 'ok') continue;
    let list = byKey.get(o.key);
    if (list === undefined) byKey.set(o.key, (list = []));
    list.push({ kind: o.kind, value: o.value, call: o.call, ret: o.outcome === 'unknown' ? Infinity : o.ret });
  }
  const report: LinearizabilityReport = { keys: byKey.size, violations: [], undecided: [] };
  for (const [key, history] of byKey) {
    const r: CheckResult = checkRegister(history, null);
    if (r.ok === false) report.violations.push({ key, reason: r.reason });
    else if (r.ok === 'unknown') report.undecided.push(key);
  }
  return report;
}

/**
 * Acknowledged writes lost, given each key's final value. An acknowledged write w survives if the
 * final value is w's, or was written by a write that may take effect after w (one that had not
 * returned before w was called: acknowledged later, or unknown). Anything else lost w.
 */
export function lostWrites(ops: readonly Operation[], finalValues: ReadonlyMap<string, string | null>): Operation[] {
  const writerOf = new Map<string, Operation>();
  for (const o of ops) if (o.kind === 'write' && o.outcome !== 'failed' && o.value !== null) writerOf.set(o.value, o);
  const lost: Operation[] = [];
  for (const w of ops) {
    if (w.kind !== 'write' || w.outcome !== 'ok') continue;
    assert.ok(finalValues.has(w.key), `the final value of ${w.key} was read`);
    const f = finalValues.get(w.key)!;
    if (f === w.value) continue;
    const later = f === null ? undefined : writerOf.get(f);
    if (later !== undefined && later.key === w.key && later.ret > w.call) continue;
    lost.push(w);
  }
  return lost;
}

/**
 * Milliseconds from each kill to the first acknowledged write called after it; Infinity when
 * none was acknowledged before the next kill (or the end).
 */
export function recoveryTimesMs(ops: readonly Operation[], killsMs: readonly number[]): number[] {
  return killsMs.map((k, i) => {
    const next = killsMs[i + 1] ?? Infinity;
    let first = Infinity;
    for (const o of ops) {
      if (o.kind === 'write' && o.outcome === 'ok' && o.callMs >= k && o.callMs < next && o.retMs < first) first = o.retMs;
    }
    return first - k;
  });
}

/** The p-th percentile (0 < p <= 100) by the nearest-rank method; NaN for no samples. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}
