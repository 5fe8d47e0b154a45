// Microbenchmarks: each WASM kernel against its TypeScript twin in one run, printed as a table
// with the ratio (WASM ops/s divided by twin ops/s; above 1 means WASM wins) and written as JSON
// to bench/results/kernels.json. Figures from a shared machine drift; compare ratios of one run.
//
//   npm run bench:kernels    (BENCH_SECONDS=<s> per run, default 0.5; BENCH_ROUNDS=<n>, default 3)

import Benchmark from 'benchmark';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { loadKernels, type Kernels } from '../src/kernels/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { TestRng } from '../src/kernels/gen.js';
import { WasmKernels } from '../src/wasm/kernels.js';

const seconds = Number(process.env.BENCH_SECONDS ?? 0.5);
const wasm = loadKernels('wasm') as WasmKernels;
const js = loadKernels('js');
const rng = new TestRng(1);

/** Something each benchmark writes to, so the engine cannot drop the work as dead. */
let sink = 0;

const crc4k = rng.bytes(4096);
const crc64 = rng.bytes(64);
const commands = Array.from({ length: 64 }, () => rng.bytes(100));

const acceptOf = (value: Uint8Array): Message => ({
  type: MsgType.Accept, from: 1, to: 2, ballot: 65537 * 3, chosenPrefix: 1000,
  entries: [{ slot: 1001, ballot: 65537 * 3, value }],
});
const acceptFrame = (k: Kernels): Uint8Array => k.encode(acceptOf(k.encodeBatch(commands))).slice();
const record = { position: 1001, ballot: 65537 * 3, value: js.encodeBatch(commands) };
const heartbeat: Message = { type: MsgType.Heartbeat, from: 1, to: 2, ballot: 65537, chosenPrefix: 123456, seq: 77 };

interface Case { name: string; run: (k: Kernels) => () => void }

const cases: Case[] = [
  { name: 'crc32c 4 KiB', run: (k) => () => { sink ^= k.crc32c(crc4k); } },
  { name: 'crc32c 64 B', run: (k) => () => { sink ^= k.crc32c(crc64); } },
  {
    name: 'encodeBatch + encode Accept (64 x 100 B, with CRC)',
    run: (k) => () => { sink ^= k.encode(acceptOf(k.encodeBatch(commands))).length; },
  },
  {
    name: 'batcher push 64 x 100 B + cut + encode Accept',
    run: (k) => {
      const b = k.newBatcher(65536, 1 << 24);
      return () => {
        for (let i = 0; i < 64; i++) b.push(commands[i]);
        sink ^= k.encode(acceptOf(b.cut(64, 1 << 20))).length;
      };
    },
  },
  {
    name: 'decode Accept (64 x 100 B)',
    run: (k) => {
      const frame = acceptFrame(js);
      return () => { sink ^= (k.decode(frame) as { ballot: number }).ballot; };
    },
  },
  { name: 'encode + decode Heartbeat', run: (k) => () => { sink ^= (k.decode(k.encode(heartbeat)) as { seq: number }).seq; } },
  {
    name: 'encodeRecord + decodeRecord (6.6 KiB)',
    run: (k) => () => { sink ^= (k.decodeRecord(k.encodeRecord(record)) as { position: number }).position; },
  },
  {
    name: 'decodeBatch (64 commands)',
    run: (k) => {
      const value = js.encodeBatch(commands);
      return () => { sink ^= (k.decodeBatch(value) as Uint8Array[]).length; };
    },
  },
  {
    name: 'slot window: 3 acks of 32 slots',
    run: (k) => {
      const w = k.newSlotWindow(256);
      w.reset(1, 2, 1);
      return () => {
        const p = w.prefix;
        w.ack(0, p, 32);
        sink ^= w.ack(1, p, 32);
        w.ack(2, p, 32);
      };
    },
  },
  {
    name: 'promise counter: reset + 3 Promises',
    run: (k) => {
      const c = k.newPromiseCounter();
      return () => { c.reset(2); c.add(0); c.add(1); sink ^= c.add(2) ? 1 : 0; };
    },
  },
  {
    name: 'quorumIndex of 5',
    run: (k) => {
      const m = new Float64Array([10, 50, 30, 20, 40]);
      return () => { sink ^= k.quorumIndex(m, 5, 3); };
    },
  },
  {
    name: 'ballot pack + nextAbove + compare',
    run: (k) => () => { const b = k.ballotPack(7, 3); sink ^= k.ballotCompare(k.ballotNextAbove(b, 5), b); },
  },
];

interface Row { name: string; wasmOps: number; jsOps: number; ratio: number; wasmRme: number; jsRme: number }

/** Rounds per benchmark: the two sides alternate and each keeps its best round, so a burst of
 *  load from other processes on this shared machine hurts neither side alone. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

const measure = (name: string, fn: () => void): Benchmark => {
  const b = new Benchmark(name, fn, { maxTime: seconds, minSamples: 5 });
  b.run();
  if (b.error) throw b.error;
  return b;
};

/** Best of ROUNDS alternating runs of each side: [wasm, js]. */
const pair = (name: string, w: () => void, j: () => void): [Benchmark, Benchmark] => {
  let bw: Benchmark | null = null;
  let bj: Benchmark | null = null;
  for (let r = 0; r < ROUNDS; r++) {
    const a = measure(`wasm ${name}`, w);
    const b = measure(`js ${name}`, j);
    if (bw === null || a.hz > bw.hz) bw = a;
    if (bj === null || b.hz > bj.hz) bj = b;
  }
  return [bw!, bj!];
};

const rows: Row[] = [];
for (const c of cases) {
  const [w, j] = pair(c.name, c.run(wasm), c.run(js));
  rows.push({ name: c.name, wasmOps: w.hz, jsOps: j.hz, ratio: w.hz / j.hz, wasmRme: w.stats.rme, jsRme: j.stats.rme });
}

// The v128 CRC loop against the scalar loop, both in WASM.
const [simd, scalar] = pair('crc32c 4 KiB v128 vs scalar', () => { sink ^= wasm.crc32cSimd(crc4k); }, () => { sink ^= wasm.crc32c(crc4k); });

const fmt = (x: number): string => x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);
const pad = (s: string, n: number): string => s.padEnd(n);
console.log(`${pad('kernel', 54)} ${pad('wasm ops/s', 14)} ${pad('js ops/s', 14)} wasm/js`);
for (const r of rows) {
  console.log(`${pad(r.name, 54)} ${pad(`${fmt(r.wasmOps)} ±${r.wasmRme.toFixed(1)}%`, 14)} ${pad(`${fmt(r.jsOps)} ±${r.jsRme.toFixed(1)}%`, 14)} ${r.ratio.toFixed(2)}x`);
}
console.log(`crc32c 4 KiB in WASM: v128 fold ${fmt(simd.hz)} ops/s, scalar fold ${fmt(scalar.hz)} ops/s (v128/scalar ${(simd.hz / scalar.hz).toFixed(2)}x)`);
const mbps = (ops: number): string => `${((ops * 4096) / 1e6).toFixed(0)} MB/s`;
console.log(`crc32c 4 KiB throughput: wasm ${mbps(rows[0].wasmOps)}, js ${mbps(rows[0].jsOps)}`);

console.log(`load average at the end (1, 5, 15 min): ${loadavg().map((x) => x.toFixed(1)).join(', ')}`);

const out = new URL('../../bench/results/', import.meta.url);
mkdirSync(out, { recursive: true });
const file = new URL('kernels.json', out);
writeFileSync(file, JSON.stringify({
  date: new Date().toISOString(), node: process.version, loadavg: loadavg(), secondsPerRun: seconds, rounds: ROUNDS, rows,
  crc32c4k: { simdOps: simd.hz, scalarOps: scalar.hz }, sink,
}, null, 2));
console.log(`written ${file.pathname}`);
