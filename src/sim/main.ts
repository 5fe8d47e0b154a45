// `paxlog sim`: run seeds start..start+seeds-1, print each seed's fault settings first, stop at
// the first violation with the one command that replays it, and report seeds per second and how
// many snapshots were taken, installed and sent in chunks over the run, (with storage faults or
// wipes on) how many restarts found damaged or empty disks and how many rejoins completed, how many
// disk stalls the seeds drew, and (with pauses on) how many times a node was paused.

import { plantedBugs, type ProtocolName } from '../protocol/types.js';
import { describeFaults, faultFields, simulate, type Bugs, type SimResult } from './sim.js';

export interface SimMainOptions {
  seeds: number;
  start: number;
  nodes: 3 | 5;
  steps: number;
  protocol: ProtocolName;
  bugs?: Bugs;
  /** Probability a restart finds damaged storage (SimOptions.storageFaults); 0 or absent: none. */
  storageFaults?: number;
  /** Share of damaged restarts that set the log aside and rejoin (SimOptions.rejoinShare). */
  rejoinShare?: number;
  /** Probability a restart finds an empty disk and rejoins (SimOptions.wipes). */
  wipes?: number;
  /** Per-tick, per-node probability of a process pause (SimOptions.pauses). */
  pauses?: number;
  /** Share of crashes that are graceful stops with notices to the peers (SimOptions.stops). */
  stops?: number;
  /** The cluster bootstraps as `--new-cluster` starts it (SimOptions.newCluster). */
  newCluster?: boolean;
  /** Print only failures and the summary. */
  quiet?: boolean;
  /** Where lines go (default: stdout). */
  print?: (line: string) => void;
}

/** The fault options, each as a flag and as its SimMainOptions field. */
const faultOptions = faultFields.map((field) => [`--${field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, field] as const);

export const replayCommand = (o: {
  seed: number; nodes: number; steps: number; protocol: string; bugs?: Bugs; storageFaults?: number; rejoinShare?: number; wipes?: number; pauses?: number; stops?: number;
  newCluster?: boolean;
}): string => {
  const bugs = Object.entries(o.bugs ?? {}).filter(([, on]) => on).map(([b]) => ` --bug ${b}`).join('');
  // Only the fault options that are on, so a replay line without them reads as it always did.
  const faults = faultOptions.filter(([, field]) => (o[field] ?? 0) > 0).map(([flag, field]) => ` ${flag} ${o[field]}`).join('');
  const newCluster = o.newCluster === true ? ' --new-cluster' : '';
  return `paxlog sim --seeds 1 --start ${o.seed} --nodes ${o.nodes} --steps ${o.steps} --protocol ${o.protocol}${newCluster}${faults}${bugs}`;
};

/** Returns the exit code: 0 when every seed passed, 1 at the first violation, 2 for bad options. */
export async function simMain(opts: SimMainOptions): Promise<number> {
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const bad = checkOptions(opts);
  if (bad) { print(`paxlog sim: ${bad}`); return 2; }
  const began = process.hrtime.bigint();
  let ticks = 0;
  let failed: SimResult | null = null;
  let ran = 0;
  /** Snapshot counts summed over the seeds run. */
  const totals = { snapshots: 0, installs: 0, chunks: 0, storageFaults: 0, refused: 0, wipes: 0, rejoins: 0, rejoined: 0, pauses: 0, notices: 0, newClusterStarts: 0, rejoinedOnMajority: 0, stalls: 0 };
  const faults = { storageFaults: opts.storageFaults, rejoinShare: opts.rejoinShare, wipes: opts.wipes, pauses: opts.pauses, stops: opts.stops, newCluster: opts.newCluster };
  for (let seed = opts.start; seed < opts.start + opts.seeds; seed++) {
    const r = simulate({ seed, nodes: opts.nodes, steps: opts.steps, protocol: opts.protocol, bugs: opts.bugs, ...faults });
    ran++;
    ticks += opts.steps;
    totals.snapshots += r.stats.snapshots;
    totals.installs += r.stats.installs;
    totals.chunks += r.stats.chunks;
    totals.storageFaults += r.stats.storageFaults;
    totals.refused += r.refusals.length;
    totals.wipes += r.stats.wipes;
    totals.rejoins += r.stats.rejoins;
    totals.rejoined += r.stats.rejoined;
    totals.pauses += r.stats.pauses;
    totals.stalls += r.stats.stalls;
    totals.notices += r.stats.notices;
    totals.newClusterStarts += r.stats.newClusterStarts;
    totals.rejoinedOnMajority += r.stats.rejoinedOnMajority;
    if (!opts.quiet || r.violation) {
      const s = r.stats;
      print(`seed ${seed}: ${opts.protocol} nodes=${opts.nodes} steps=${opts.steps} ${describeFaults(r.faults)}`);
      if (!opts.quiet) {
        print(`  delivered=${s.delivered} dropped=${s.dropped} crashes=${s.crashes} partitions=${s.partitions} ` +
          `writesAcked=${s.writesAcked} readsOk=${s.readsOk} unknown=${s.unknown} applied=${s.applied} ` +
          `snapshots=${s.snapshots} installs=${s.installs} chunks=${s.chunks} ` +
          `storageFaults=${s.storageFaults} wipes=${s.wipes} rejoins=${s.rejoins} rejoined=${s.rejoined}${(opts.pauses ?? 0) > 0 ? ` pauses=${s.pauses}` : ''}${(opts.stops ?? 0) > 0 ? ` notices=${s.notices}` : ''} ${r.violation ? 'FAIL' : 'ok'}`);
      }
    }
    if (r.violation) {
      failed = r;
      print(`VIOLATION at seed ${seed}: ${r.violation}`);
      print(`replay: ${replayCommand({ seed, nodes: opts.nodes, steps: opts.steps, protocol: opts.protocol, bugs: opts.bugs, ...faults })}`);
      break;
    }
    // Yield now and then so a long run does not starve the event loop of the process embedding it.
    if (ran % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const seconds = Number(process.hrtime.bigint() - began) / 1e9;
  print(`snapshots: ${totals.snapshots} taken, ${totals.installs} installed from a peer, ${totals.chunks} chunks delivered`);
  print(`disk stalls: ${totals.stalls}`);
  print(`disks: ${totals.storageFaults} found damaged (${totals.refused} refused), ${totals.wipes} wiped; ` +
    `${totals.rejoins} rejoining starts, ${totals.rejoined} rejoins completed`);
  if ((opts.pauses ?? 0) > 0) print(`pauses: ${totals.pauses}`);
  if ((opts.stops ?? 0) > 0) print(`stopping notices delivered: ${totals.notices}`);
  if (opts.newCluster === true) {
    print(`new cluster: ${totals.newClusterStarts} starts with the check, ${totals.rejoinedOnMajority} nodes voted before every member had answered`);
  }
  print(`${ran} seeds (${ticks} ticks) in ${seconds.toFixed(1)} s: ${(ran / seconds).toFixed(1)} seeds/s; ` +
    `${failed ? `violation at seed ${failed.seed}` : 'no violation'}`);
  return failed ? 1 : 0;
}


const checkOptions = (o: SimMainOptions): string | null => {
  if (!Number.isSafeInteger(o.seeds) || o.seeds < 1) return `--seeds must be a positive integer, got ${o.seeds}`;
  if (!Number.isSafeInteger(o.start) || o.start < 0) return `--start must be a non-negative integer, got ${o.start}`;
  if (o.nodes !== 3 && o.nodes !== 5) return `--nodes must be 3 or 5, got ${o.nodes}`;
  if (!Number.isSafeInteger(o.steps) || o.steps < 1) return `--steps must be a positive integer, got ${o.steps}`;
  for (const [flag, field] of faultOptions) {
    const x = o[field];
    if (x !== undefined && !(typeof x === 'number' && x >= 0 && x <= 1)) return `${flag} must be a probability between 0 and 1, got ${x}`;
  }
  for (const b of Object.keys(o.bugs ?? {})) if (!(plantedBugs as readonly string[]).includes(b)) return `unknown bug ${b}: expected one of ${plantedBugs.join(', ')}`;
  return null;
};
