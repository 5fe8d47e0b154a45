// A linearizability checker for a history of register operations, one key at a time: Wing and
// Gong's search over call/return events, with Lowe's memoization of (operations linearized,
// register value) so that no configuration is explored twice. An operation whose outcome is
// unknown (its client gave up) returns at +infinity: it may take effect at any point after its
// call, or never.

import assert from 'node:assert/strict';

export interface RegisterOp {
  kind: 'write' | 'read';
  /** The value written, or the value the read returned (null: the key was absent). */
  value: string | null;
  /** Logical time of the call. Invariant: unique across the history, < ret. */
  call: number;
  /** Logical time of the return; Infinity when the outcome is unknown (writes only). */
  ret: number;
}

export type CheckResult =
  | { ok: true; states: number }
  | { ok: false; reason: string }
  | { ok: 'unknown'; reason: string };

/**
 * Is `history` linearizable as a register starting at `initial`? Unknown writes that no read
 * observed are dropped first: placed last, they change nothing, so the answer is the same.
 */
export const checkRegister = (history: RegisterOp[], initial: string | null, statesMax = 2_000_000): CheckResult => {
  const observed = new Set<string | null>();
  for (const o of history) if (o.kind === 'read') observed.add(o.value);
  const ops = history.filter((o) => !(o.kind === 'write' && o.ret === Infinity && !observed.has(o.value)));
  for (const o of ops) {
    assert.ok(o.call < o.ret, 'an operation returns after its call');
    assert.ok(o.kind === 'write' || o.ret !== Infinity, 'a read with an unknown outcome is left out of the history');
  }
  const n = ops.length;
  if (n === 0) return { ok: true, states: 0 };

  // Events: 2 per op (call = 2i, return = 2i + 1) in time order, in a doubly linked list with a
  // head sentinel at index 2n. Returns at Infinity sort last.
  const events: number[] = [];
  for (let i = 0; i < n; i++) events.push(2 * i, 2 * i + 1);
  const time = (e: number): number => ((e & 1) === 0 ? ops[e >> 1].call : ops[e >> 1].ret);
  events.sort((a, b) => time(a) - time(b) || (a & 1) - (b & 1));
  const HEAD = 2 * n;
  const next = new Int32Array(2 * n + 1).fill(-1);
  const prev = new Int32Array(2 * n + 1).fill(-1);
  let last = HEAD;
  for (const e of events) { next[last] = e; prev[e] = last; last = e; }

  const unlink = (e: number): void => {
    next[prev[e]] = next[e];
    if (next[e] >= 0) prev[next[e]] = prev[e];
  };
  const relink = (e: number): void => {
    next[prev[e]] = e;
    if (next[e] >= 0) prev[next[e]] = e;
  };

  const linearized = new Uint32Array(Math.ceil(n / 32));
  const seen = new Set<string>();
  const stack: { call: number; state: string | null }[] = [];
  let state: string | null = initial;
  let entry = next[HEAD];
  while (next[HEAD] >= 0) {
    if (entry < 0) return { ok: false, reason: 'no operation can go next' };
    if ((entry & 1) === 0) {
      const i = entry >> 1;
      const o = ops[i];
      const legal = o.kind === 'write' || o.value === state;
      if (legal) {
        const after = o.kind === 'write' ? o.value : state;
        linearized[i >> 5] |= 1 << (i & 31);
        const key = `${linearized.join(',')}|${after}`;
        if (!seen.has(key)) {
          seen.add(key);
          if (seen.size > statesMax) return { ok: 'unknown', reason: `gave up after ${statesMax} states` };
          stack.push({ call: entry, state });
          state = after;
          unlink(entry);
          unlink(entry + 1);
          entry = next[HEAD];
          continue;
        }
        linearized[i >> 5] &= ~(1 << (i & 31));
      }
      entry = next[entry];
    } else {
      // A return whose operation is not linearized yet: backtrack.
      const top = stack.pop();
      if (!top) return { ok: false, reason: describeFailure(ops, entry >> 1) };
      const i = top.call >> 1;
      state = top.state;
      linearized[i >> 5] &= ~(1 << (i & 31));
      relink(top.call + 1);
      relink(top.call);
      entry = next[top.call];
    }
  }
  return { ok: true, states: seen.size };
};

const describeFailure = (ops: RegisterOp[], i: number): string => {
  const o = ops[i];
  return `no linearization: ${o.kind} ${JSON.stringify(o.value)} [${o.call}, ${o.ret}] cannot be placed`;
};
