// The benchmark's outputs beyond the per-run JSON: a summary (medians, spread, ratios), a
// Markdown report with tables, and SVG charts drawn with Vega-Lite (compiled to Vega and rendered
// headless by vega's View.toSVG(), which needs no canvas and no native code).

import fs from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { ProtocolName } from '../protocol/types.js';
import { formatKnob, knobByKey, knobTable, type BenchOptions, type RunKnobs } from './knobs.js';
import type { LatencySummary } from './loadgen.js';
import type { Manifest } from './main.js';
import { cpuRoundMs, type DiskProbe, type MachineProbe } from './probe.js';

export interface Measured {
  windowS: number;
  /** Successful requests (writes and reads) per second. */
  throughput: number;
  writesPerS: number;
  readsPerS: number;
  errors: Record<string, number>;
  shed: number;
  /** Open loop: requests unanswered when the window ended; in `latency` at their age then. */
  unanswered: number;
  /**
   * Microseconds; corrected for coordinated omission in open loop: from when each request was due,
   * and with the requests still unanswered at the end of the window at their age then.
   */
  latency: LatencySummary;
  latencyUncorrected: LatencySummary | null;
  leader: number;
  /** Some node named another leader (or did not answer) at the end of the window. */
  leaderChanged: boolean;
  /** CPU time over the window, in percent of one core, per node (index = id - 1). */
  cpuPercentByNode: number[];
  cpuPercentLeader: number;
  cpuPercentLoadgen: number;
  /** Bytes of peer frames sent by all nodes per successful command (writes and reads). */
  peerBytesPerCommand: number | null;
  /** Persists (a Ready's write, each a transaction asked of lmdb-js) per second, all nodes together, synced or not. */
  persistsPerS: number;
  /**
   * Syncs per second, all nodes together: LMDB commits with fsync on (lmdb-js commits the persists
   * queued together as one, so a leader under load syncs fewer times than it persists), 0 with it off.
   */
  fsyncsPerS: number;
  fsyncsPerSLeader: number;
  /** Mean time of one persist (LMDB write transaction, synced with fsync on) at the leader, in ms. */
  persistMsLeader: number | null;
  /** Commands per slot applied at the leader over the window. */
  meanBatch: number | null;
  /** The leader's slots (entries) in flight, sampled every 250 ms. */
  slotsInFlightMean: number | null;
  slotsInFlightMax: number | null;
  /** The leader's chosen slots above its chosen prefix (Multi-Paxos holes), sampled with slots in flight. */
  holesMean: number | null;
  holesMax: number | null;
  /** The host's speed over the window: the median MB/s of the bench process's CPU bursts (probe.ts cpuBurst), every 250 ms. */
  hostCpuMBps: number | null;
  framesDroppedInjected: number;
  framesDroppedTransport: number;
}

export type RunRecord = {
  index: number;
  repeat: number;
  setting: number;
  protocol: ProtocolName;
  knobs: RunKnobs;
  /** Set when the run failed; then no measurement is present. */
  error?: string;
} & Partial<Measured>;

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export interface ProtocolSummary {
  protocol: ProtocolName;
  runs: number;
  failed: number;
  throughput: Spread;
  p50: Spread;
  p90: Spread;
  p99: Spread;
  p999: Spread;
  max: Spread;
  cpuPercentLeader: Spread;
  peerBytesPerCommand: Spread | null;
  fsyncsPerS: Spread;
  persistMsLeader: Spread | null;
  meanBatch: Spread | null;
  slotsInFlightMean: Spread | null;
  errors: number;
}

export interface SettingSummary {
  setting: number;
  label: string;
  knobs: RunKnobs;
  protocols: ProtocolSummary[];
  /** Multi-Paxos over Raft, of the medians; null unless both ran. */
  ratio: { throughput: number; p50: number; p99: number } | null;
  /** One line for the terminal. */
  line: string;
}

export function spread(xs: number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n === 0 ? NaN : n % 2 === 1 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { median, min: s[0] ?? NaN, max: s[n - 1] ?? NaN };
}

const spreadOf = (xs: (number | null | undefined)[]): Spread | null => {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return v.length === 0 ? null : spread(v);
};

/** Labels only the swept knobs, so each setting is named by what differs. */
export function labelOf(o: BenchOptions, k: RunKnobs): string {
  return o.sweeps.map((s) => `${knobByKey.get(s.knob)!.flag}=${formatKnob(k[s.knob])}`).join(' ') || 'default knobs';
}

export function summarize(o: BenchOptions, settings: RunKnobs[], runs: RunRecord[]): SettingSummary[] {
  return settings.map((knobs, setting) => {
    const protocols: ProtocolSummary[] = o.protocols.map((protocol) => {
      const mine = runs.filter((r) => r.setting === setting && r.protocol === protocol);
      const ok = mine.filter((r) => r.error === undefined) as (RunRecord & Measured)[];
      const nan = { median: NaN, min: NaN, max: NaN };
      return {
        protocol, runs: ok.length, failed: mine.length - ok.length,
        throughput: spreadOf(ok.map((r) => r.throughput)) ?? nan,
        p50: spreadOf(ok.map((r) => r.latency.p50)) ?? nan,
        p90: spreadOf(ok.map((r) => r.latency.p90)) ?? nan,
        p99: spreadOf(ok.map((r) => r.latency.p99)) ?? nan,
        p999: spreadOf(ok.map((r) => r.latency.p999)) ?? nan,
        max: spreadOf(ok.map((r) => r.latency.max)) ?? nan,
        cpuPercentLeader: spreadOf(ok.map((r) => r.cpuPercentLeader)) ?? nan,
        peerBytesPerCommand: spreadOf(ok.map((r) => r.peerBytesPerCommand)),
        fsyncsPerS: spreadOf(ok.map((r) => r.fsyncsPerS)) ?? nan,
        persistMsLeader: spreadOf(ok.map((r) => r.persistMsLeader)),
        meanBatch: spreadOf(ok.map((r) => r.meanBatch)),
        slotsInFlightMean: spreadOf(ok.map((r) => r.slotsInFlightMean)),
        errors: ok.reduce((s, r) => s + Object.values(r.errors).reduce((a, b) => a + b, 0) + r.shed, 0),
      };
    });
    const mp = protocols.find((p) => p.protocol === 'multipaxos');
    const raft = protocols.find((p) => p.protocol === 'raft');
    // No ratio against a protocol that completed nothing (it printed as Infinityx).
    const ratio = mp !== undefined && raft !== undefined && mp.runs > 0 && raft.runs > 0 && mp.throughput.median > 0 && raft.throughput.median > 0
      ? { throughput: mp.throughput.median / raft.throughput.median, p50: mp.p50.median / raft.p50.median, p99: mp.p99.median / raft.p99.median }
      : null;
    const label = labelOf(o, knobs);
    const parts = protocols.map((p) => `${p.protocol} ${fmtOps(p.throughput.median)} ops/s p99 ${fmtUs(p.p99.median)}`);
    if (ratio !== null) parts.push(`ratio ${ratio.throughput.toFixed(2)}x`);
    for (const p of protocols) if (p.runs > 0 && p.throughput.median === 0) parts.push(`${p.protocol} completed no request`);
    return { setting, label, knobs, protocols, ratio, line: `${label}: ${parts.join(' | ')}` };
  });
}

const fmtOps = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const fmtUs = (us: number): string => (!Number.isFinite(us) ? 'n/a' : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${Math.round(us)} us`);
const fmtNum = (x: number | undefined | null, digits = 1): string => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
const fmtSpread = (s: Spread | null, f: (x: number) => string): string =>
  s === null || !Number.isFinite(s.median) ? 'n/a' : s.min === s.max ? f(s.median) : `${f(s.median)} (${f(s.min)}..${f(s.max)})`;

export function markdown(manifest: Manifest, end: MachineProbe, settings: RunKnobs[], summary: SettingSummary[], runs: RunRecord[], charts: string[]): string {
  const o = manifest.options;
  const swept = new Set<string>(o.sweeps.map((s) => s.knob));
  const out: string[] = [];
  out.push('# paxlog bench report', '');
  out.push('| | |', '| --- | --- |');
  out.push(`| date | ${manifest.date} |`, `| git commit | ${manifest.gitCommit}${manifest.gitDirty ? ' (uncommitted changes)' : ''} |`);
  out.push(`| Node.js | ${manifest.node} |`, `| CPU | ${manifest.cpuModel}, ${manifest.cores} cores |`);
  out.push(`| load average at start | ${manifest.loadAverage.join(', ')} |`, `| command | \`paxlog ${manifest.argv.join(' ')}\` |`);
  const sync = (d: DiskProbe): string => `p50 ${d.p50Ms.toFixed(3)} ms, p99 ${d.p99Ms.toFixed(3)} ms`;
  out.push(`| disk sync (4 KiB write + fdatasync in ${manifest.diskSync.dir}, ${manifest.diskSync.rounds} rounds) | ` +
    `at start ${sync(manifest.diskSync)}; at end ${sync(end.diskSync)} |`);
  out.push(`| CPU speed (CRC32C over 4 KiB in WebAssembly, one thread, best of ${manifest.cpu.rounds} rounds of ${cpuRoundMs} ms of CPU time) | ` +
    `at start ${manifest.cpu.crcMBps} MB/s; at end ${end.cpu.crcMBps} MB/s |`);
  const rtt = (l: MachineProbe['loopback']): string => `p50 ${l.p50Us} us, p99 ${l.p99Us} us`;
  out.push(`| loopback TCP round trip (100 B each way on 127.0.0.1, one process, ${manifest.loopback.rounds} rounds) | ` +
    `at start ${rtt(manifest.loopback)}; at end ${rtt(end.loopback)} |`);
  out.push(`| protocols | ${o.protocols.join(', ')} (interleaved, ${o.repeat} repeat${o.repeat === 1 ? '' : 's'} each) |`, '');
  out.push('## Knobs', '', '| knob | value |', '| --- | --- |');
  for (const k of knobTable) {
    const v = swept.has(k.key) ? `swept: ${o.sweeps.find((s) => s.knob === k.key)!.values.map(formatKnob).join(', ')}` : formatKnob(settings[0][k.key]);
    out.push(`| ${k.flag} | ${v} |`);
  }
  out.push('', '## Results', '');
  out.push('Medians over repeats, with the spread (min..max) when runs differ. Latency is measured by the load generator ' +
    '(of answered requests in closed loop; in open loop of every request due, from when it was due: answered, failed, or still unanswered at the end of the window at its age then); ' +
    'errors counts failed answers and, in open loop, requests shed unsent (over the outstanding bound); CPU is percent of one core over the measured window; ' +
    'peer bytes count every node\'s frames to peers; fsyncs/s counts LMDB commits on all nodes, each one sync of the log (lmdb-js commits the persists queued together as one), 0 with fsync off; slots in flight is the leader\'s, sampled every 250 ms.', '');
  for (const s of summary) {
    out.push(`### ${s.label}`, '');
    out.push('| protocol | runs | ops/s | p50 | p90 | p99 | p99.9 | max | leader CPU % | peer bytes/command | fsyncs/s | leader persist | mean batch | slots in flight | errors |');
    out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const p of s.protocols) {
      out.push(`| ${p.protocol} | ${p.runs}${p.failed > 0 ? ` (+${p.failed} failed)` : ''} | ${fmtSpread(p.throughput, fmtOps)} | ` +
        `${fmtSpread(p.p50, fmtUs)} | ${fmtSpread(p.p90, fmtUs)} | ${fmtSpread(p.p99, fmtUs)} | ${fmtSpread(p.p999, fmtUs)} | ` +
        `${fmtSpread(p.max, fmtUs)} | ${fmtSpread(p.cpuPercentLeader, (x) => x.toFixed(0))} | ` +
        `${fmtSpread(p.peerBytesPerCommand, (x) => x.toFixed(0))} | ${fmtSpread(p.fsyncsPerS, (x) => x.toFixed(0))} | ` +
        `${fmtSpread(p.persistMsLeader, (x) => `${x.toFixed(2)} ms`)} | ` +
        `${fmtSpread(p.meanBatch, (x) => x.toFixed(1))} | ${fmtSpread(p.slotsInFlightMean, (x) => x.toFixed(1))} | ${p.errors} |`);
    }
    if (s.ratio !== null) {
      out.push('', `Multi-Paxos / Raft: throughput ${s.ratio.throughput.toFixed(2)}x, p50 ${s.ratio.p50.toFixed(2)}x, p99 ${s.ratio.p99.toFixed(2)}x.`);
    }
    out.push('');
  }
  out.push('## Charts', '');
  for (const c of charts) out.push(`![${c}](${c})`, '');
  out.push('## Runs', '', 'In the order they ran. "leader changed" means some node named another leader at the end of the window. ' +
    '"host CPU" is the median speed of a 3 ms CRC32C burst the bench process ran every 250 ms of the window: on a shared host it moves between runs, and a slow run with a slow host reads so.', '');
  out.push('| # | protocol | setting | repeat | ops/s | p50 | p99 | max | CPU % per node | loadgen CPU % | host CPU MB/s | unanswered at end | injected drops | holes (mean / max) | leader changed | error |');
  out.push('| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |');
  for (const r of runs) {
    const label = summary[r.setting]?.label ?? '';
    if (r.error !== undefined) {
      out.push(`| ${r.index + 1} | ${r.protocol} | ${label} | ${r.repeat + 1} | | | | | | | | | | | | ${r.error.split('\n')[0].replace(/\|/g, '/')} |`);
      continue;
    }
    out.push(`| ${r.index + 1} | ${r.protocol} | ${label} | ${r.repeat + 1} | ${fmtOps(r.throughput!)} | ${fmtUs(r.latency!.p50)} | ` +
      `${fmtUs(r.latency!.p99)} | ${fmtUs(r.latency!.max)} | ${r.cpuPercentByNode!.map((x) => x.toFixed(0)).join(' / ')} | ` +
      `${fmtNum(r.cpuPercentLoadgen, 0)} | ${r.hostCpuMBps ?? 'n/a'} | ${r.unanswered ?? 0} | ${r.framesDroppedInjected} | ${fmtNum(r.holesMean)} / ${r.holesMax ?? 'n/a'} | ${r.leaderChanged ? 'yes' : 'no'} | |`);
  }
  return out.join('\n') + '\n';
}

async function renderSvg(spec: vl.TopLevelSpec): Promise<string> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** Throughput against latency: one point per run and percentile, a line per protocol and percentile. */
function latencyChart(runs: RunRecord[]): vl.TopLevelSpec {
  const values = runs.filter((r) => r.error === undefined).flatMap((r) => [
    { protocol: r.protocol, percentile: 'p50', throughput: r.throughput!, ms: r.latency!.p50 / 1000 },
    { protocol: r.protocol, percentile: 'p99', throughput: r.throughput!, ms: r.latency!.p99 / 1000 },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Throughput against latency',
    width: 480, height: 300,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'throughput', type: 'quantitative', title: 'successful requests per second' },
      y: { field: 'ms', type: 'quantitative', title: 'latency (ms)', scale: { type: 'log' } },
      color: { field: 'protocol', type: 'nominal' },
      strokeDash: { field: 'percentile', type: 'nominal' },
      shape: { field: 'percentile', type: 'nominal' },
      order: { field: 'throughput', type: 'quantitative' },
    },
  } as vl.TopLevelSpec;
}

/** Median throughput against one knob (batch-max or pipeline), a line per value of the other knob, a panel per protocol. */
function knobChart(summary: SettingSummary[], x: 'batchMax' | 'pipeline'): vl.TopLevelSpec {
  const other = x === 'batchMax' ? 'pipeline' : 'batchMax';
  const values = summary.flatMap((s) => s.protocols.filter((p) => p.runs > 0).map((p) => ({
    protocol: p.protocol, [x]: s.knobs[x], [other]: s.knobs[other], throughput: p.throughput.median,
  })));
  const title = (k: string) => (k === 'batchMax' ? 'batch-max (commands per slot)' : 'pipeline depth (slots in flight)');
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Throughput against ${x === 'batchMax' ? 'batch size' : 'pipeline depth'}`,
    data: { values },
    facet: { column: { field: 'protocol', type: 'nominal', title: null } },
    spec: {
      width: 260, height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: x, type: 'quantitative', title: title(x), scale: { type: 'log', base: 2 } },
        y: { field: 'throughput', type: 'quantitative', title: 'median requests per second' },
        // Ordinal, so the legend lists the values in numeric order.
        color: { field: other, type: 'ordinal', title: title(other), legend: { titleLimit: 400 } },
      },
    },
  } as vl.TopLevelSpec;
}

/** Writes report.md and the charts; returns the file names written. */
export async function writeReport(out: string, manifest: Manifest, end: MachineProbe, settings: RunKnobs[], summary: SettingSummary[], runs: RunRecord[]): Promise<string[]> {
  const charts: [string, vl.TopLevelSpec][] = [
    ['latency-throughput.svg', latencyChart(runs)],
    ['throughput-batch.svg', knobChart(summary, 'batchMax')],
    ['throughput-pipeline.svg', knobChart(summary, 'pipeline')],
  ];
  for (const [name, spec] of charts) fs.writeFileSync(path.join(out, name), await renderSvg(spec));
  const names = charts.map(([n]) => n);
  fs.writeFileSync(path.join(out, 'report.md'), markdown(manifest, end, settings, summary, runs, names));
  return ['report.md', ...names];
}
