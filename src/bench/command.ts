// The `paxlog bench` command's flags (commander). It loads the harness only when it runs, so
// that other commands do not pay for the plotting library.

import { Command, InvalidArgumentError, Option } from 'commander';
import type { ProtocolName } from '../protocol/types.js';
import { expandSweeps, knobDefaults, knobTable, parseProtocols, parseSweep, quickKnobs, type BenchOptions, type RunKnobs, type Sweep } from './knobs.js';

const wholeIn = (lo: number, hi: number) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`"${v}" is not a whole number`);
  const n = Number(v);
  if (n < lo || n > hi) throw new InvalidArgumentError(`${n} is not in ${lo}..${hi}`);
  return n;
};

/** Closed-loop HTTP clients at most: each one is a socket of the load generator. */
export const httpClientsMax = 4096;
/** Runs in one invocation at most. */
export const runsMax = 10_000;
/** The largest seed `serve --fault-seed` takes. */
export const faultSeedMax = 2 ** 31;

/** What commander hands the action: the knobs under their flags' names in camelCase (--duration: duration), and the rest. */
interface Flags {
  [knobFlag: string]: unknown;
  protocol: ProtocolName[];
  repeat?: number;
  sweep: Sweep[];
  quick: boolean;
  out?: string;
  basePort: number;
  seed: number;
  progress: boolean;
  cpuProf?: string;
}

/** Turns parsed flags into options: --quick presets first, explicit flags over them, defaults under both. */
export function resolveOptions(f: Flags): BenchOptions {
  const given: Partial<RunKnobs> = {};
  for (const k of knobTable) {
    // Commander names a value after its flag, not after the knob (--duration sets `duration`, the knob is durationS).
    const v = f[k.flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())];
    if (v !== undefined) (given as Record<string, unknown>)[k.key] = v;
  }
  const knobs: RunKnobs = { ...knobDefaults, ...(f.quick ? quickKnobs : {}), ...given };
  const swept = new Set<string>();
  for (const s of f.sweep) {
    // Named by the flag, as the user wrote it (batch-max), not the knob (batchMax).
    const flag = knobTable.find((k) => k.key === s.knob)?.flag ?? s.knob;
    if (swept.has(s.knob)) throw new InvalidArgumentError(`--sweep ${flag} is given twice`);
    if ((given as Record<string, unknown>)[s.knob] !== undefined) {
      throw new InvalidArgumentError(`--${flag} and --sweep ${flag}=... both set ${flag}: give one`);
    }
    swept.add(s.knob);
  }
  // A bad combination of flags is as bad as a bad flag: refused here, before any run, with exit code 2.
  const settings = expandSweeps(knobs, f.sweep);
  for (const k of settings) {
    if (k.api === 'http' && k.mode === 'closed' && k.clients > httpClientsMax) {
      throw new InvalidArgumentError(`--clients ${k.clients} over HTTP opens that many sockets; at most ${httpClientsMax}`);
    }
  }
  const runs = settings.length * f.protocol.length * (f.repeat ?? (f.quick ? 1 : 3));
  if (runs > runsMax) throw new InvalidArgumentError(`${runs} runs planned; at most ${runsMax} (fewer sweep values or repeats)`);
  // Run i's nodes get --fault-seed seed + i, which serve bounds: past it every such run would fail to start.
  if (f.seed + runs - 1 > faultSeedMax) {
    throw new InvalidArgumentError(`--seed ${f.seed}: the runs use seeds up to ${f.seed + runs - 1} (seed + run index), past ${faultSeedMax}; give a smaller --seed`);
  }
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return {
    ...knobs,
    protocols: f.protocol,
    repeat: f.repeat ?? (f.quick ? 1 : 3),
    sweeps: f.sweep,
    quick: f.quick,
    out: f.out ?? `bench/results/run-${stamp}`,
    basePort: f.basePort,
    seed: f.seed,
    progress: f.progress,
    profileDir: f.cpuProf ?? null,
  };
}

export function benchCommand(): Command {
  const cmd = new Command('bench')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : 2);
    })
    .description('benchmark real clusters (Multi-Paxos against Raft by default) with a load generator in its own process')
    .addOption(new Option('--protocol <list>', 'protocols to compare, interleaved').argParser(parseProtocols).default(['multipaxos', 'raft'], 'multipaxos,raft'));
  for (const k of knobTable) {
    cmd.addOption(new Option(`--${k.flag} ${k.arg}`, `${k.describe} (default ${String(knobDefaults[k.key] === true ? 'on' : knobDefaults[k.key])})`).argParser(k.parse));
  }
  cmd
    .option('--repeat <n>', 'runs of each setting and protocol (default 3; 1 with --quick)', wholeIn(1, 100))
    .option('--sweep <knob=v1,v2,...>', 'run every value of a knob (repeatable: the cross product runs)', (v: string, prev: Sweep[]) => [...prev, parseSweep(v)], [] as Sweep[])
    .option('--quick', 'a short run for CI (about 3 s per run, 1 repeat): checks the report, not the speed', false)
    .option('--out <dir>', 'where results go (default bench/results/run-<date>)')
    .option('--base-port <port>', 'first port of the benchmark clusters', wholeIn(1024, 64000), 20000)
    .option('--seed <n>', 'seed of the injected loss', wholeIn(0, 2 ** 31), 1)
    .option('--no-progress', 'no progress bar')
    .option('--cpu-prof <dir>', 'run every node under node --cpu-prof, profiles in <dir>/run-NNN (to find where the time goes)')
    .action(async (f: Flags) => {
      const opts = resolveOptions(f);
      // Loaded here so that other commands never load the plotting library.
      const modulePath = './main.js';
      const mod = (await import(modulePath)) as { benchMain: (o: BenchOptions) => Promise<number> };
      const code = await mod.benchMain(opts);
      process.exitCode = code;
    });
  return cmd;
}
