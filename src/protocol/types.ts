// The one interface both protocol cores implement (in the manner of etcd-io/raft's RawNode).
// A core does no I/O: no clock, no randomness but the PRNG it is given, no sockets, no disk.
// The driver (src/node) and the simulator (src/sim) are its only callers:
//
//   loop:
//     core.tick() | core.step(msg) | core.propose(cmds) | core.read(id)
//     if core.hasReady():
//       rd = core.ready()
//       persist rd.hardState, rd.entries, rd.truncateFrom, rd.chosenPrefix   (one transaction)
//       send rd.messages at once; send rd.messagesAfterPersist only once the persist is durable
//       apply rd.apply in order; answer rd.reads once applied >= read.index
//       core.advance(rd)
//
// Positions are "slots" in Multi-Paxos and "indexes" in Raft; both start at 1. Position 0 is
// "nothing" (Raft's empty-log sentinel).

import type { Message } from './messages.js';
import type { Kernels } from '../kernels/types.js';

export type ProtocolName = 'multipaxos' | 'raft';
export type Role = 'leader' | 'candidate' | 'follower';
export type ReadMode = 'lease' | 'quorum';

/** What must survive a crash besides the log. */
export interface HardState {
  /** Multi-Paxos: the promised ballot. Raft: the current term. */
  ballot: number;
  /** Raft: the node voted for in `ballot` (term), 0 for none. Multi-Paxos: always 0. */
  vote: number;
}

/** One durable log record: an accepted slot (Multi-Paxos) or a log entry (Raft). */
export interface LogRecord {
  /** Slot or index, >= 1. */
  position: number;
  /** The ballot it was accepted at, or the entry's term. */
  ballot: number;
  /** An encoded batch (src/kernels/batch). A no-op is an empty batch. */
  value: Uint8Array;
}

/** A linearizable read that may now be served once the state machine has applied `index`. */
export interface ReadState {
  id: number;
  index: number;
}

export interface Ready {
  /** Persist if set: changed hard state. */
  hardState: HardState | null;
  /** Raft only: delete every record at position >= truncateFrom before writing `records`. */
  truncateFrom: number;
  /** Records to write (insert or overwrite), in position order. */
  records: LogRecord[];
  /** Persist if > 0: every position below it is chosen (committed). Monotonic. */
  chosenPrefix: number;
  /** Send now; they report nothing that is still waiting to be persisted. */
  messages: Message[];
  /** Send only after this Ready's persist is durable (Promise, Accepted, Vote, AppendResult). */
  messagesAfterPersist: Message[];
  /** Chosen values to hand to the state machine, in position order, without gaps, exactly once. */
  apply: LogRecord[];
  /** Reads now answerable (after `apply` of this Ready). */
  reads: ReadState[];
  /** Reads that failed (not leader, lease lost, leadership unconfirmed): answer 503/504. */
  readsFailed: number[];
}

export interface Config {
  /** This node's id, 1..65535. */
  id: number;
  /** Every member's id, including this node's. */
  peers: number[];
  /** Commands per slot at most. */
  batchMax: number;
  /** Bytes per slot's batch at most. */
  batchBytesMax: number;
  /** Slots (Multi-Paxos) or AppendEntries (Raft, per follower) in flight at most. */
  pipeline: number;
  heartbeatTicks: number;
  /** The election timeout is drawn uniformly from [electionTicksMin, electionTicksMax). */
  electionTicksMin: number;
  electionTicksMax: number;
  /** Lease length in ticks, measured from when the heartbeat was sent; must be < electionTicksMin. */
  leaseTicks: number;
  /** Clock-drift margin subtracted from the lease, in ticks. */
  leaseDriftTicks: number;
  /** Pending client commands at most (the batcher's bound); propose beyond it is refused. */
  pendingMax: number;
}

/** A deterministic PRNG (src/sim/prng). Never Math.random in a core. */
export interface Rng {
  /** A uniform integer in [lo, hi). */
  int(lo: number, hi: number): number;
  /** A uniform float in [0, 1). */
  next(): number;
}

/** What a core recovers from storage after a restart. */
export interface Restored {
  hardState: HardState;
  /** Every durable record, in position order. */
  records: LogRecord[];
  /** The persisted chosen prefix (0 or 1 when nothing is chosen). */
  chosenPrefix: number;
  /** The state machine has applied every position below this (1 when nothing). */
  appliedPrefix: number;
}

export interface Status {
  id: number;
  protocol: ProtocolName;
  role: Role;
  /** The leader this node knows, 0 if none. */
  leader: number;
  /** Multi-Paxos: the node's current ballot (promised or leading). Raft: the term. */
  ballot: number;
  /** Every position below it is chosen (committed). */
  chosenPrefix: number;
  /** Every position below it is applied. */
  appliedPrefix: number;
  /** Multi-Paxos: chosen slots above the prefix (holes between). Raft: 0. */
  holes: number;
  /** Slots or entries proposed and not yet chosen. */
  inFlight: number;
  /** Client commands waiting for a slot. */
  pending: number;
}

export type ProposeResult =
  | 'proposed'   // queued at the leader
  | 'forwarded'  // sent to the leader this node knows; the outcome will show in `apply`
  | 'no-leader'  // surely not proposed: no leader known
  | 'full';      // surely not proposed: the pending queue is at pendingMax

export interface Protocol {
  readonly name: ProtocolName;
  tick(): void;
  step(m: Message): void;
  /** Queue client commands (each opaque bytes); they are batched into slots. */
  propose(commands: Uint8Array[]): ProposeResult;
  /** Ask for a linearizable read; its ReadState appears in a later Ready. */
  read(id: number, mode: ReadMode): void;
  hasReady(): boolean;
  ready(): Ready;
  /** Acknowledge the last Ready: persisted, sent and applied. */
  advance(rd: Ready): void;
  status(): Status;
  /** Asserts every invariant of the core's state; throws (never caught) when one fails. */
  invariants(): void;
}

export interface ProtocolOptions {
  config: Config;
  kernels: Kernels;
  rng: Rng;
  restored?: Restored;
  /** Test-only switches that plant known bugs (the simulator must catch each). */
  bugs?: Partial<Record<PlantedBug, boolean>>;
}

/** Test-only switches that plant known bugs; the simulator must catch each. */
export const plantedBugs = [
  'quorumOneShort',      // a quorum one short of a majority
  'replyBeforePersist',  // Promise/Accepted/Vote sent before the write is durable
  'acceptLowerBallot',   // an acceptor that takes a lower ballot
  'skipHighestBallot',   // a new leader that ignores the highest-ballot rule
  'skipNoop',            // a new leader that leaves holes instead of no-ops
  'leaseWithoutLease',   // a lease read served without a lease
  'commitOldTerm',       // Raft: commit an old-term entry by counting replicas
] as const;
export type PlantedBug = (typeof plantedBugs)[number];

export const defaultConfig = (id: number, peers: number[]): Config => ({
  id,
  peers,
  batchMax: 64,
  batchBytesMax: 256 * 1024,
  pipeline: 32,
  heartbeatTicks: 1,
  electionTicksMin: 10,
  electionTicksMax: 20,
  leaseTicks: 8,
  leaseDriftTicks: 1,
  pendingMax: 65536,
});
