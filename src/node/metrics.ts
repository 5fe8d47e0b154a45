// The node's Prometheus metrics (prom-client), one registry per node so that several nodes can
// live in one process (tests, embedding). Gauges that mirror the core's state are read at scrape.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Status } from '../protocol/types.js';

export class NodeMetrics {
  readonly registry = new Registry();
  /** Commands per applied slot. */
  readonly batchCommands: Histogram;
  /** From propose to applied, for requests this node holds, in seconds. */
  readonly decideSeconds: Histogram;
  /** One persist (one LMDB write transaction, synced when fsync is on), in seconds. */
  readonly fsyncSeconds: Histogram;
  /** Client commands this node sent on to the leader. */
  readonly forwarded: Counter;
  /** Client requests by operation and answer status. */
  readonly requests: Counter<'op' | 'status'>;
  /** Snapshots this node took (and trimmed its log below). */
  readonly snapshotsTaken: Counter;
  /** Snapshots this node received from a peer and installed. */
  readonly snapshotsInstalled: Counter;

  constructor(status: () => Status, extra: () => { fsync: boolean; framesDropped: number; bytesSent: number; faultFramesDropped: number; decodeErrors: number; authFailures: number; corruptRecords: number }) {
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
    this.batchCommands = new Histogram({
      name: 'paxlog_batch_commands', help: 'Commands per applied slot.', registers: [r],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    });
    this.decideSeconds = new Histogram({
      name: 'paxlog_decide_latency_seconds', help: 'From propose to applied, for requests this node holds.', registers: [r],
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1, 5],
    });
    this.fsyncSeconds = new Histogram({
      name: 'paxlog_fsync_latency_seconds', help: 'One persist: an LMDB write transaction (synced unless --fsync off).', registers: [r],
      buckets: [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    });
    this.forwarded = new Counter({ name: 'paxlog_forwarded_total', help: 'Client commands forwarded to the leader.', registers: [r] });
    this.snapshotsTaken = new Counter({ name: 'paxlog_snapshots_taken_total', help: 'Snapshots taken here; the log below each was trimmed.', registers: [r] });
    this.snapshotsInstalled = new Counter({ name: 'paxlog_snapshots_installed_total', help: 'Snapshots received from a peer and installed.', registers: [r] });
    gauge('paxlog_rejoining', '1 while this node rejoins without voting (a new, wiped or damaged log) and has not caught up.', () => (status().rejoining ? 1 : 0));
    gauge('paxlog_snapshot_prefix', 'The log holds no slot below this; the snapshot covers them.', () => status().snapshotPrefix);
    this.requests = new Counter({
      name: 'paxlog_requests_total', help: 'Client requests by operation and status.', labelNames: ['op', 'status'], registers: [r],
    });
  }
}
