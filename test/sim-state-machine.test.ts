// The simulator's state machine must apply commands as the real one does (src/kv/store.ts, and
// src/node/node.ts, which applies every command of every chosen slot): every time a command is
// chosen, with no per-client deduplication. A simulator that silently skipped a command chosen a
// second time would pass a protocol that proposes a client's write again later, which on a real
// node overwrites newer values with the stale one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { simulate } from '../src/sim/sim.js';
import { protocolFactory, type ProtocolFactory } from '../src/sim/protocols.js';

/** A planted bug: a leader proposes each command it queued once more, 30 ticks later, if it still leads
 *  (as a leader that re-queued its pending commands after a leader change would). */
const reproposer: ProtocolFactory = (o) => {
  const core = protocolFactory('multipaxos')(o);
  const propose = core.propose.bind(core);
  const tick = core.tick.bind(core);
  let now = 0;
  const later: { at: number; cmds: Uint8Array[] }[] = [];
  core.propose = (cmds) => {
    const r = propose(cmds);
    if (r === 'proposed') later.push({ at: now + 30, cmds });
    return r;
  };
  core.tick = () => {
    tick();
    now++;
    while (later.length > 0 && later[0].at <= now) {
      const x = later.shift()!;
      if (core.status().role === 'leader') propose(x.cmds);
    }
  };
  return core;
};

test('a client write chosen a second time, later, is applied again and caught (no per-client dedup in the simulator)', () => {
  let found: { seed: number; violation: string } | null = null;
  for (let seed = 1; seed <= 40 && !found; seed++) {
    const r = simulate({ seed, nodes: 3, steps: 2000, protocol: 'multipaxos', factory: reproposer });
    if (r.violation) found = { seed, violation: r.violation };
  }
  assert.ok(found, 'a leader that re-proposes stale writes passed 40 seeds');
  assert.match(found.violation, /not linearizable/, `seed ${found.seed}: ${found.violation}`);
  const clean = simulate({ seed: found.seed, nodes: 3, steps: 2000, protocol: 'multipaxos' });
  assert.equal(clean.violation, null, `seed ${found.seed} fails without the re-proposals too: the catch proves nothing`);
});
