// End to end: the deterministic simulator, driven by the same seed, must run both protocols
// identically on the WASM kernels and on their TypeScript twin (same deliveries, same writes
// acknowledged, same slots applied), and pass its safety checks on the WASM kernels.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadKernels } from '../src/kernels/index.js';
import { simulate } from '../src/sim/sim.js';

for (const protocol of ['multipaxos', 'raft'] as const) {
  test(`${protocol}: the simulator gives the same run on WASM kernels as on the twin`, () => {
    for (const [seed, nodes] of [[11, 3], [12, 5]] as const) {
      const js = simulate({ seed, nodes, steps: 1000, protocol, kernels: loadKernels('js') });
      const wasm = simulate({ seed, nodes, steps: 1000, protocol, kernels: loadKernels('wasm') });
      assert.equal(wasm.violation, null, `seed ${seed}: ${wasm.violation}`);
      assert.deepEqual(wasm.stats, js.stats, `seed ${seed}, ${nodes} nodes`);
      assert.ok(wasm.stats.applied > 0, `seed ${seed}: nothing applied, the run proves little`);
    }
  });
}
