// How fast this machine's disk syncs right now, measured before a benchmark and kept in its
// manifest. Every write of a run waits for fdatasync (two per LMDB commit, on each node), so the
// same build reads slower on a day the disk is slower; the probe tells such a day apart from a
// slower build. It mimics the log: 4 KiB written at the end of an already-written file, then
// fdatasync, with nothing else of the benchmark running.

import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

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

/** Time `rounds` writes + fdatasyncs of 4 KiB in a temporary file in `dir` (removed after). */
export function probeDisk(dir: string, rounds = 300): DiskProbe {
  if (!Number.isSafeInteger(rounds) || rounds < 1 || rounds > probeRoundsMax) {
    throw new RangeError(`rounds must be an integer in 1..${probeRoundsMax}, not ${rounds}`);
  }
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
