// The node's Prometheus metrics (prom-client), one registry per node so that several nodes can
// live in one process (tests, embedding). Gauges that mirror the core's state are read at scrape.

import { Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';
import type { Status } from '../protocol/types.js';

/**
 * A histogram for figures recorded once per client request. prom-client's observe() and inc()
 * cost about 0.2 us each here (measured: 1e6 calls), a visible share of a write's CPU at
 * 100k writes/s; this one is an array increment, and turns into prom-client's exposition format
 * only when scraped. It registers itself with a prom-client Registry like any metric.
 */
/** One line of a histogram's exposition. */
interface HistogramLine {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export class RequestHistogram {
  /** Observations per bucket; the last counts those above every bound (+Inf). */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(readonly name: string, readonly help: string, private readonly bounds: readonly number[], registry: Registry) {
    for (let i = 1; i < bounds.length; i++) if (!(bounds[i] > bounds[i - 1])) throw new Error(`${name}: bounds must increase`);
    this.counts = new Float64Array(bounds.length + 1);
    registry.registerMetric(this as unknown as Metric);
  }

  observe(v: number): void {
    let i = 0;
    while (i < this.bounds.length && v > this.bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  /** prom-client's shape of a histogram: cumulative buckets, then sum and count. */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: HistogramLine[] }> {
    const values: HistogramLine[] = [];
    let cumulative = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      cumulative += this.counts[i];
      values.push({ metricName: `${this.name}_bucket`, labels: { le: i < this.bounds.length ? this.bounds[i] : '+Inf' }, value: cumulative });
    }
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count });
    return Promise.resolve({ name: this.name, help: this.help, type: 'histogram', aggregator: 'sum', values });
  }
}

export class NodeMetrics {
  readonly registry = new Registry();
  /** Commands per applied slot. */
  readonly batchCommands: Histogram;
  /** From propose to applied, for requests this node holds, in seconds. */
  readonly decideSeconds: RequestHistogram;
  /** One persist (one LMDB write transaction, synced when fsync is on), in seconds. */
  readonly fsyncSeconds: Histogram;
  /** Client commands this node sent on to the leader. */
  readonly forwarded: Counter;
  /** Client requests by op, then status (see countRequest). Bounded by the ops and statuses the API answers. */
  private readonly requestCounts = new Map<string, Map<number, number>>();
  /** Snapshots this node took (and trimmed its log below). */
  readonly snapshotsTaken: Counter;
  /** Snapshots this node received from a peer and installed. */
  readonly snapshotsInstalled: Counter;

  constructor(status: () => Status, extra: () => { fsync: boolean; framesDropped: number; bytesSent: number; faultFramesDropped: number; decodeErrors: number; authFailures: number; corruptRecords: number; logCommits: number }) {
    const r = this.registry;
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name, help, registers: [r], collect() { this.set(read()); } });
    gauge('paxlog_ballot', 'The ballot (Raft: term) this node is at.', () => status().ballot);
    gauge('paxlog_chosen_prefix', 'Every slot below this is chosen.', () => status().chosenPrefix);
    gauge('paxlog_applied_prefix', 'Every slot below this is applied.', () => status().appliedPrefix);
    gauge('paxlog_holes_open', 'Chosen slots above the chosen prefix (holes lie between them).', () => status().holes);
    gauge('paxlog_slots_in_flight', 'Slots proposed and not yet chosen.', () => status().inFlight);
    gauge('paxlog_commands_pending', 'Client commands waiting for a slot.', () => status().pending);
    gauge('paxlog_is_leader', '1 if this node leads.', () => (status().role === 'leader' ? 1 : 0));
    gauge('paxlog_fsync_enabled', '0 means --fsync off: acknowledged writes can be lost on a power cut.', () => (extra().fsync ? 1 : 0));
    gauge('paxlog_peer_frames_dropped', 'Frames dropped: link down or its buffer bound reached.', () => extra().framesDropped);
    gauge('paxlog_peer_bytes_sent', 'Bytes of peer frames sent (WebSocket framing not counted).', () => extra().bytesSent);
    gauge('paxlog_peer_frames_dropped_injected', 'Frames dropped on purpose by --fault-loss.', () => extra().faultFramesDropped);
    gauge('paxlog_peer_decode_errors', 'Peer links closed for a frame that did not decode.', () => extra().decodeErrors);
    gauge('paxlog_peer_auth_failures', 'Peers refused at the handshake.', () => extra().authFailures);
    gauge('paxlog_corrupt_records', 'Log records that failed their CRC (never served).', () => extra().corruptRecords);
    gauge('paxlog_log_commits', 'LMDB write transactions committed, each one sync with fsync on: lmdb-js commits persists queued together as one.', () => extra().logCommits);
    this.batchCommands = new Histogram({
      name: 'paxlog_batch_commands', help: 'Commands per applied slot.', registers: [r],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    });
    this.decideSeconds = new RequestHistogram('paxlog_decide_latency_seconds', 'From propose to applied, for requests this node holds.',
      [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5], r);
    this.fsyncSeconds = new Histogram({
      name: 'paxlog_fsync_latency_seconds', help: 'One persist: an LMDB write transaction (synced unless --fsync off).', registers: [r],
      buckets: [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    });
    this.forwarded = new Counter({ name: 'paxlog_forwarded_total', help: 'Client commands forwarded to the leader.', registers: [r] });
    this.snapshotsTaken = new Counter({ name: 'paxlog_snapshots_taken_total', help: 'Snapshots taken here; the log below each was trimmed.', registers: [r] });
    this.snapshotsInstalled = new Counter({ name: 'paxlog_snapshots_installed_total', help: 'Snapshots received from a peer and installed.', registers: [r] });
    gauge('paxlog_rejoining', '1 while this node rejoins without voting (a new, wiped or damaged log) and has not caught up.', () => (status().rejoining ? 1 : 0));
    gauge('paxlog_snapshot_prefix', 'The log holds no slot below this; the snapshot covers them.', () => status().snapshotPrefix);
    const counts = this.requestCounts;
    new Counter({
      name: 'paxlog_requests_total', help: 'Client requests by operation and status.', labelNames: ['op', 'status'], registers: [r],
      // Counted in a plain map per request (see RequestHistogram for why); copied in at scrape.
      collect() {
        this.reset();
        for (const [op, byStatus] of counts) for (const [status, n] of byStatus) this.inc({ op, status: String(status) }, n);
      },
    });
  }

  /** Count one client request by operation and answer status. */
  countRequest(op: string, status: number): void {
    let byStatus = this.requestCounts.get(op);
    if (byStatus === undefined) {
      byStatus = new Map();
      this.requestCounts.set(op, byStatus);
    }
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  }
}
