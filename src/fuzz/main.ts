// `npm run fuzz -- --frames 1000000 [--seed 1]`: runs the decoder fuzzer (src/fuzz/frames.ts) and
// prints what it fed, the refusals by reason, the speed, and any broken property. Exit code 1 if
// a property broke, 2 for a bad flag.

import { parseArgs } from 'node:util';
import { fuzzFrames } from './frames.js';

function main(): number {
  let values: { frames?: string; seed?: string };
  try {
    ({ values } = parseArgs({ options: { frames: { type: 'string' }, seed: { type: 'string' } }, strict: true }));
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\nusage: npm run fuzz -- [--frames N] [--seed S]\n`);
    return 2;
  }
  const whole = (name: string, v: string | undefined, d: number): number => {
    if (v === undefined) return d;
    if (!/^\d+$/.test(v) || Number(v) > 1e9) throw new Error(`--${name} ${v} is not a whole number up to 1e9`);
    return Number(v);
  };
  let frames: number;
  let seed: number;
  try {
    frames = whole('frames', values.frames, 1_000_000);
    seed = whole('seed', values.seed, 1);
  } catch (e) {
    process.stderr.write(`error: ${(e as Error).message}\n`);
    return 2;
  }
  process.stdout.write(`fuzz: ${frames} frames, seed ${seed}, faces wasm and js\n`);
  const r = fuzzFrames({ frames, seed, onProgress: (n) => process.stderr.write(`  ${n} frames\r`) });
  const s = r.elapsedMs / 1000;
  process.stdout.write([
    `frames ${r.frames} (accepted ${r.accepted.frames}), records ${r.records} (accepted ${r.accepted.records}), ` +
      `batches ${r.batches} (accepted ${r.accepted.batches}), frames out of FrameReaders ${r.readerFrames}`,
    `${s.toFixed(1)} s, ${Math.round(r.frames / s)} frames/s (each frame decoded by both faces, plus records, batches and streams)`,
    'refusals by reason:',
    ...[...r.rejects].sort((a, b) => b[1] - a[1]).map(([reason, n]) => `  ${String(n).padStart(9)}  ${reason}`),
    `broken properties: ${r.failureCount}`,
    ...r.failures.map((f) => `  ${f}`),
  ].join('\n') + '\n');
  return r.failureCount === 0 ? 0 : 1;
}

process.exitCode = main();
