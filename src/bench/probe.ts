// How fast this machine's disk syncs right now, measured before a benchmark and kept in its
// manifest. Every write of a run waits for fdatasync (two per LMDB commit, on each node), so the
// same build reads slower on a day the disk is slower; the probe tells such a day apart from a
// slower build. It mimics the log: 4 KiB written at the end of an already-written file, then
// fdatasync, with nothing else of the benchmark running.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { loadKernels, type Kernels } from '../kernels/index.js';

export interface DiskProbe {
  /** The directory probed (where the benchmark's data directories are made). */
  dir: string;
  rounds: number;
  /** Milliseconds for one 4 KiB write + fdatasync. */
  p50Ms: number;
  p99Ms: number;
}

const blockBytes = 4096;
/** Rounds at most: the probe's file is rounds blocks, written once before the timed writes. */
export const probeRoundsMax = 10_000;

/** Every probe's round count: a whole number in 1..probeRoundsMax, else a RangeError. */
function checkRounds(rounds: number): void {
  if (!Number.isSafeInteger(rounds) || rounds < 1 || rounds > probeRoundsMax) {
    throw new RangeError(`rounds must be an integer in 1..${probeRoundsMax}, not ${rounds}`);
  }
}

/** Time `rounds` writes + fdatasyncs of 4 KiB in a temporary file in `dir` (removed after). */
export function probeDisk(dir: string, rounds = 300): DiskProbe {
  checkRounds(rounds);
  const file = fs.mkdtempSync(path.join(dir, 'paxlog-probe-'));
  const fd = fs.openSync(path.join(file, 'probe'), 'w+');
  try {
    // Written and synced once first: the timed writes then land in blocks the file already has,
    // as the log's do, and time no block allocation.
    const block = Buffer.alloc(blockBytes, 0x5a);
    for (let i = 0; i < rounds; i++) fs.writeSync(fd, block, 0, blockBytes, i * blockBytes);
    fs.fsyncSync(fd);
    const ms = new Float64Array(rounds);
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      fs.writeSync(fd, block, 0, blockBytes, i * blockBytes);
      fs.fdatasyncSync(fd);
      ms[i] = performance.now() - t;
    }
    ms.sort();
    const at = (q: number): number => ms[Math.min(rounds - 1, Math.floor(q * rounds))];
    return { dir, rounds, p50Ms: at(0.5), p99Ms: at(0.99) };
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { recursive: true, force: true });
  }
}

// The same for the processor and the loopback network, the other two things every figure of a run
// depends on: a day whose host is slower reads slower with the same build, and these tell that
// apart. The CPU probe times the WASM CRC32C kernel (the nodes' own hot loop, single-threaded);
// the loopback probe times 100-byte TCP round trips on 127.0.0.1 within one process, which costs
// what a request over HTTP costs the kernel (a send and a receive on each side).

export interface CpuProbe {
  /** Megabytes (10^6) per second of CRC32C over a 4 KiB buffer in WebAssembly, the best of `rounds` rounds of cpuRoundMs of CPU time (cpuBurst). */
  crcMBps: number;
  rounds: number;
}

/** Milliseconds of CPU time of one round of probeCpu. */
export const cpuRoundMs = 20;

/** Time CRC32C over 4 KiB in the WASM kernels: `rounds` bursts of cpuRoundMs; the best counts (the least disturbed). */
export function probeCpu(rounds = 10): CpuProbe {
  checkRounds(rounds);
  let best = 0;
  for (let r = 0; r < rounds; r++) best = Math.max(best, cpuBurst(cpuRoundMs));
  return { crcMBps: Math.round(best), rounds };
}

/** The kernels and the block the CPU bursts use, made at the first. */
let burstInput: { k: Kernels; block: Uint8Array } | null = null;

/**
 * MB/s of CRC32C over 4 KiB in WebAssembly, over `ms` milliseconds of this process's CPU time (not
 * of the clock: time spent waiting for a core while others run does not count, so a loaded machine
 * reads the speed of the core, not its share of it). A bench takes one of 3 ms every 250 ms during
 * each run (about 1 % of a core, the same for every protocol): on a shared host the speed moves
 * within a run (this one switched between about 1,500 and 900 MB/s from one 50 ms window to the
 * next, with no steal time in /proc/stat), and the runs' readings tell a slow run on a slow host
 * from a slow run of the code. The CPU time is the whole process's: a burst while another of its
 * threads works (V8 compiling or collecting) reads low, so a run keeps the median of its bursts.
 */
export function cpuBurst(ms: number): number {
  burstInput ??= { k: loadKernels('wasm'), block: new Uint8Array(blockBytes).fill(0x5a) };
  const { k, block } = burstInput;
  const start = process.cpuUsage();
  let n = 0;
  let cpuUs = 0;
  do {
    // A call into WebAssembly is never optimized away, its result used or not.
    for (let i = 0; i < 16; i++) k.crc32c(block, i);
    n += 16;
    const used = process.cpuUsage(start);
    cpuUs = used.user + used.system;
  } while (cpuUs < ms * 1000);
  return (n * blockBytes) / cpuUs;
}

export interface LoopbackProbe {
  rounds: number;
  /** Microseconds for one 100-byte message to 127.0.0.1 and its 100-byte answer, both ends in this process. */
  p50Us: number;
  p99Us: number;
}

const messageBytes = 100;
/** Round trips run before the timed ones (see probeLoopback). */
const warmupRounds = 3000;

/** Time `rounds` 100-byte TCP round trips over 127.0.0.1 (an echo server and a client in this process), after warmupRounds untimed. */
export async function probeLoopback(rounds = 1000): Promise<LoopbackProbe> {
  checkRounds(rounds);
  // Every socket's 'close', watched from its start: all are awaited before the probe returns.
  const closing: Promise<void>[] = [];
  const watch = (s: net.Socket): net.Socket => {
    closing.push(new Promise((resolve) => s.once('close', () => resolve())));
    return s;
  };
  const served = new Set<net.Socket>();
  const server = net.createServer((s) => {
    served.add(watch(s));
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const client = watch(net.connect({ host: '127.0.0.1', port, noDelay: true }));
  try {
    await new Promise<void>((resolve, reject) => client.once('error', reject).once('connect', resolve));
    const us = new Float64Array(rounds);
    const message = Buffer.alloc(messageBytes, 0x5a);
    await new Promise<void>((resolve, reject) => {
      let round = 0;
      let got = 0;
      let t = performance.now();
      client.on('error', reject);
      client.on('data', (d) => {
        got += d.byteLength;
        if (got < messageBytes) return;
        assert.equal(got, messageBytes, 'the echo answered more than was sent');
        // The first warmupRounds are not kept: in a new process the p50 of each 1,000 fell from 66 us
        // to 34 us over the first 4,000 as V8 optimized the stream code.
        if (round >= warmupRounds) us[round - warmupRounds] = (performance.now() - t) * 1000;
        round++;
        got = 0;
        if (round === warmupRounds + rounds) return resolve();
        t = performance.now();
        client.write(message);
      });
      client.write(message);
    });
    us.sort();
    const at = (q: number): number => us[Math.min(rounds - 1, Math.floor(q * rounds))];
    return { rounds, p50Us: Math.round(at(0.5) * 10) / 10, p99Us: Math.round(at(0.99) * 10) / 10 };
  } finally {
    for (const s of [client, ...served]) s.destroy();
    await Promise.all([...closing, new Promise<void>((resolve) => server.close(() => resolve()))]);
  }
}

/** All three, as the manifest keeps them (probed at the start) and results.json's `machineEnd` (at the end). */
export interface MachineProbe {
  diskSync: DiskProbe;
  cpu: CpuProbe;
  loopback: LoopbackProbe;
}

/** Probe the disk in `dir` (where the runs keep their data), the processor and the loopback network, one after the other. */
export async function probeMachine(dir: string): Promise<MachineProbe> {
  const diskSync = probeDisk(dir);
  const cpu = probeCpu();
  return { diskSync, cpu, loopback: await probeLoopback() };
}
