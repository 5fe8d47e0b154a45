// Classic Multi-Paxos as a pure state machine (in the manner of etcd-io/raft's RawNode).
//
// Every node plays all three roles: acceptor (promises and accepts, durably), learner (marks slots
// chosen, applies the chosen prefix in order, fetches values it lacks) and, when elected, leader.
// The leader runs phase 1 once for every slot from its first unchosen one, re-proposes what the
// Promises reported (the value with the highest accepted ballot, a no-op for a hole), and then
// runs only phase 2: Accepts for runs of slots, at most `pipeline` slots in flight.
//
// No I/O, no clock, no randomness but `rng`. The driver calls tick/step/propose/read, then
// ready() / advance(); see src/protocol/types.ts for what a Ready means.
//
// Snapshots. compact(prefix, bytes) drops every slot below `prefix` (all chosen and applied) and
// keeps the bytes to serve. Trimming is safe for the acceptor: a Promise reports the acceptor's
// chosen prefix, which is >= its snapshot prefix, and reports entries only from there on; a
// candidate never proposes below the highest chosen prefix a Promise reported (becomeLeader's
// `start`), so no leader that counted this node's Promise needs a trimmed slot from it. An Accept
// for a trimmed slot (from a leader whose Promise quorum did not include this node) is refused
// silently: an acceptor may always refuse, and it cannot accept without a record. Its Promise
// quorum accepts the slot; if that quorum is gone, the leader sees this node's higher chosen
// prefix in its HeartbeatAcks and runs phase 1 again (maybeCampaignAgain). A learner that asks for
// a trimmed slot gets an offer (SnapshotChunk at offset 0) and pulls the snapshot one chunk at a
// time; see handleSnapshotChunk.
//
// Rejoining. A node restored with `rejoining` (its durable state may be lost) learns but neither
// accepts nor acks until every other member has answered its CatchUpRequest, then accepts at or
// above the highest ballot reported but sends no Promise until its chosen prefix passes the
// highest slot reported; see the rejoining section for why that is safe.

import assert from 'node:assert/strict';
import {
  MsgType, proposeIsNew, type ProposesSeen, type Accept, type Accepted, type CatchUpReply, type CatchUpRequest, type Commit, type Heartbeat, type HeartbeatAck, type LearnReply,
  type LearnRequest, type Message, type Nack, type Prepare, type PrePrepare, type PrePromise, type Promise as PromiseMsg, type Propose,
  type ReadIndex, type ReadIndexReply, type SlotEntry, type SnapshotChunk, type SnapshotRequest,
} from '../messages.js';
import {
  SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX, answersNothing, holdsNothing, stoppingTicks, type Config, type LogRecord, type PlantedBug, type Protocol, type ProposeResult,
  type ProtocolOptions, type ReadMode, type ReadState, type Ready, type Rng, type Role, type Snapshot, type Status,
} from '../types.js';
import type { Batcher, Kernels, PromiseCounter, SlotWindow } from '../../kernels/types.js';
import { ServedSnapshots } from '../served-snapshots.js';

/** Slots a learner scans per leader message when marking chosen slots it accepted; the rest it fetches. */
const LEARN_SCAN_MAX = 1024;
/** Chosen slots one LearnReply carries at most. */
const LEARN_ENTRIES_MAX = 256;
/** Slots handed to the state machine per Ready at most, so one Ready stays small. */
const APPLY_MAX = 1024;
/** invariants() checks every kept chosen value while there are at most this many, else only the edge. */
const INVARIANT_SCAN_MAX = 4096;
/** Heartbeats whose send tick is remembered (for leases and quorum reads). */
const HEARTBEAT_RING = 256;
/** Encoded bytes of client commands waiting for a slot, at most. */
const PENDING_BYTES_MAX = 64 * 1024 * 1024;
/** Entry bytes one Accept carries at most; a longer run is split over several Accepts. */
const ACCEPT_BYTES_MAX = 16 * 1024 * 1024;

/**
 * `entries` in order, cut into parts whose values hold at most `bytesMax` bytes (a part of one
 * entry may hold more). At least one part: an empty one for no entries.
 */
function partsWithin(entries: SlotEntry[], bytesMax: number): SlotEntry[][] {
  const parts: SlotEntry[][] = [[]];
  let bytes = 0;
  for (const e of entries) {
    let part = parts[parts.length - 1];
    if (part.length > 0 && bytes + e.value.length > bytesMax) {
      parts.push((part = []));
      bytes = 0;
    }
    part.push(e);
    bytes += e.value.length;
  }
  return parts;
}
/** Backoff steps after Nacks at most: the election timeout grows by up to electionTicksMin per step. */
const BACKOFF_MAX = 4;
/** A sender offers its snapshot to one peer at most once per this many ticks (a lagging learner asks every 2). */
const OFFER_GAP_TICKS = 3;
/** A receiver re-sends its SnapshotRequest when no chunk came for this many ticks. */
const SNAPSHOT_RETRY_TICKS = 3;
/** A rejoining node re-sends its CatchUpRequest to members that have not answered after this many ticks. */
const CATCH_UP_RETRY_TICKS = 3;

interface Accepted1 {
  /** The ballot the slot was accepted at (or, for a learned slot, the ballot its sender had). */
  ballot: number;
  /** The encoded batch. */
  value: Uint8Array;
}

/** A read waiting for leadership to be confirmed by a heartbeat round. */
interface QuorumRead {
  /** The local read id, or the remote read id when `from` is not 0. */
  id: number;
  /** 0 for a local read; otherwise the follower that sent ReadIndex. */
  from: number;
  /** The slot the reader must apply through. */
  index: number;
  /** The heartbeat whose acks by a quorum confirm leadership. */
  seq: number;
  /** The tick after which the read fails. */
  deadline: number;
}

/** A snapshot being pulled from a peer, one chunk at a time, in order. */
interface Transfer {
  /** The peer that offered it; every chunk must come from it. */
  from: number;
  /** The snapshot's prefix. Invariant: > snapshotPrefix when the transfer began. */
  prefix: number;
  /** The bytes received so far at [0, offset). Invariant: length is the offer's total, <= SNAPSHOT_BYTES_MAX. */
  bytes: Uint8Array;
  /** The next byte wanted. Invariant: 0 < offset < bytes.length while the transfer runs. */
  offset: number;
  /** The tick the last chunk arrived (or the offer); no progress for electionTicksMax abandons it. */
  progressTick: number;
  /** The tick the last SnapshotRequest went out; it is re-sent after SNAPSHOT_RETRY_TICKS. */
  requestTick: number;
}

export class MultiPaxos implements Protocol {
  readonly name = 'multipaxos' as const;

  /** The configuration, fixed for the node's life. */
  private readonly cfg: Config;
  /** Value bytes one part of a Promise carries at most (cfg.promisePartBytes, else ACCEPT_BYTES_MAX). */
  private readonly promisePartBytes: number;
  /** Ballots, the slot window, the batcher, the promise counter and the batch codec. */
  private readonly k: Kernels;
  /** The only source of randomness (election timeouts, fetch targets). */
  private readonly rng: Rng;
  /** Test-only planted bugs; empty in every real node. */
  private readonly bugs: Partial<Record<PlantedBug, boolean>>;
  /** This instance's number (ProtocolOptions.incarnation) and the last Propose number it sent. */
  private readonly incarnation: number;
  private proposeSeq = 0;
  /** The ballot of the leader last heard from (hearFromLeader): the reign a forwarded Propose is for. */
  private leaderBallot = 0;
  /** Per member, the newest Propose seen from it: a duplicate must not choose its commands twice. Bounded by the members. */
  private readonly proposesSeen: ProposesSeen = new Map();
  /**
   * The first ballot this node campaigned at in this life (0: none yet). Its own ballots from here
   * up are this life's (a new life campaigns above its durable promise), and proposesSeen has seen
   * every Propose sent to them: a Propose to one of them is taken in a later reign of this life.
   */
  private lifeFirstBallot = 0;
  /**
   * A leader Nacked by a returning member runs phase 1 again keeping its pending commands (never
   * proposed, so in no slot), and takes new ones meanwhile: they go out once it leads again, or are
   * dropped (their clients time out, outcome unknown) if another wins. Invariant: only while candidate.
   */
  private pendingKept = false;
  /**
   * Follower: the round of the pre-vote it runs (0: none), named by the ballot it would campaign
   * at. It campaigns once a quorum (itself included) would take part. Invariant: 0 unless follower.
   */
  private preBallot = 0;
  /** The members, this node included, that granted preBallot's round. */
  private readonly preGranted = new Set<number>();
  /** This node's id. */
  private readonly id: number;
  /** The other members' ids. Invariant: does not contain `id`. */
  private readonly others: number[];
  /** Member id -> index 0..31 in ack bitsets. Invariant: covers every member. */
  private readonly memberIndex = new Map<number, number>();
  /** Promises or Accepteds that make a majority (one short with the planted bug). */
  private readonly quorum: number;
  /** The highest ballot a message may carry: the ballot packing has room for one above it. */
  private readonly ballotMax: number;

  // ---- Acceptor state (durable). ----
  /** The highest ballot promised. Invariant: never decreases; persisted before any reply that reports it. */
  private promised = 0;
  /** Accepted (or learned) slots: the durable log. Invariant: no slot below snapshotPrefix; every slot in [snapshotPrefix, chosenPrefix) is here. */
  private readonly accepted = new Map<number, Accepted1>();
  /** The highest slot in `accepted`, 0 if none. */
  private acceptedMax = 0;

  // ---- Learner state. ----
  /** Every slot below it is chosen and its value known. Invariant: >= 1, never decreases. */
  private chosenPrefix = 1;
  /** The highest slot markChosen was given (0 before any). Never decreases. */
  private chosenMax = 0;
  /** Chosen values of slots >= applyNext (the prefix part and the holes above it). Invariant: no key below applyNext. */
  private readonly chosenValues = new Map<number, Uint8Array>();
  /** The next slot to hand to the state machine. Invariant: appliedPrefix <= applyNext <= chosenPrefix. */
  private applyNext = 1;
  /** The state machine has applied every slot below it (advanced by advance()). */
  private appliedPrefix = 1;
  /** The highest chosen prefix heard of: slots below it are chosen somewhere. Invariant: we fetch up to it. */
  private learnTarget = 1;
  /** The tick of the last LearnRequest, so fetches are retried but not repeated every tick. */
  private learnSentTick = -1e9;

  // ---- Snapshots. ----
  /** The log holds no slot below it. Invariant: >= 1, never decreases, <= applyNext; equals served.latest.prefix when a snapshot exists, else 1. */
  private snapshotPrefix = 1;
  /** The latest snapshot (taken here or installed from a peer) and one a peer is still pulling, served to lagging peers. */
  private readonly served: ServedSnapshots;
  /** The snapshot the next Ready hands out to be persisted, null if none. Invariant: its prefix is snapshotPrefix. */
  private snapshotDue: Snapshot | null = null;
  /** True when snapshotDue came from a peer (the driver must restore its state machine from it). */
  private installDue = false;
  /** The snapshot being pulled from a peer, null if none. Bounded: one at a time, at most SNAPSHOT_BYTES_MAX bytes. */
  private transfer: Transfer | null = null;
  /** Per member index, the tick of the last offer sent to it (the rate limit). Bounded by 32 members. */
  private readonly offerTick = new Float64Array(32).fill(-1e9);

  // ---- Role and timers. ----
  /** follower, candidate (phase 1 running at `ballot`) or leader (phase 2 at `ballot`). */
  private role: Role = 'follower';
  /** The leader this node knows, 0 if none. */
  private leader = 0;
  /** The ballot this node campaigns or leads with, 0 if it never did. Invariant: owned by `id`. */
  private ballot = 0;
  /** The highest ballot seen in any message, so the next campaign goes above it. */
  private ballotSeenMax = 0;
  /** Ticks since this node was created. */
  private now = 0;
  /** Follower/candidate: ticks since the last word from a leader or since the campaign began. */
  private electionElapsed = 0;
  /** Ticks after which a follower or candidate campaigns. Drawn from the PRNG, grown by backoff. */
  private electionTimeout = 0;
  /** Nacks in a row, which lengthen the election timeout. Invariant: <= BACKOFF_MAX. */
  private backoff = 0;
  /** Ticks since a live leader (stickyTo) was heard. While < electionTicksMin, Prepares from others are ignored. */
  private quietTicks = 0;
  /** The leader heard most recently (0: none yet). */
  private stickyTo = 0;
  /**
   * After a restart, the tick (of `now`) before which this node promises nobody, whatever it hears
   * meanwhile: it may have acknowledged a lease it no longer knows of, and a late message from an
   * older leader would otherwise make that one sticky and let its Prepare through. 0 when not restarted.
   */
  private restartQuietUntil = 0;

  // ---- Candidate state. ----
  /** Promises counted for `ballot`, this node's own included once durable. */
  private readonly promises: PromiseCounter;
  /** Phase 1 covers every slot from here. */
  private fromSlot = 1;
  /** Per slot, the reported entry with the highest ballot. */
  private readonly reports = new Map<number, Accepted1>();
  /** The highest chosen prefix a Promise reported: every slot below it is chosen, so phase 1 skips it. */
  private reportChosenPrefixMax = 1;
  /** The highest slot reported, 0 if none. */
  private reportMax = 0;
  /**
   * Per acceptor, the parts of its Promise for `ballot` received so far, while more are due: the
   * slots they cover, from the first, end before coveredTo. Cleared at each campaign.
   */
  private readonly promiseParts = new Map<number, { coveredTo: number; chosenPrefix: number; entries: SlotEntry[] }>();

  // ---- Leader state. ----
  /**
   * The leader's ack counting over [prefix, prefix + pipeline). Invariant (leader): prefix <=
   * chosenPrefix. A slot is chosen here only once a quorum acked it with our own accept among
   * them, counted when durable (advance): then every slot anyone knows chosen is on its leader's
   * disk, and a leader's CatchUpReply covers it (a rejoining node relies on that; without it, a
   * slot chosen by two followers' acks, one of them since wiped, could be lost with a leader that
   * crashed before its own write was durable, while a third applied it).
   */
  private readonly window: SlotWindow;
  /** Client commands waiting for a slot. Invariant: count <= pendingMax, bytes <= PENDING_BYTES_MAX. */
  private readonly batcher: Batcher;
  /** The next slot to propose. Invariant (leader): window.prefix <= nextSlot <= window.prefix + pipeline. */
  private nextSlot = 1;
  /** Values to re-propose after phase 1, for slots [nextSlot, recoveryEnd]; a slot not here gets `noop`. Bounded by the reports. */
  private readonly recovery = new Map<number, Uint8Array>();
  /** The empty batch, proposed for a hole. */
  private readonly noop: Uint8Array;
  /** The first slot of this leader's reign: everything below it was chosen before it (fetched, not proposed). */
  private reignStart = 1;
  /** The last slot chosen, or possibly chosen, before this reign; reads wait until it is applied. 0 if none. */
  private recoveryEnd = 0;
  /** Proposed, not yet chosen slots. Invariant: keys in [window.prefix, nextSlot), size <= pipeline. */
  private readonly inflight = new Map<number, { value: Uint8Array; sentTick: number; gap: number }>();
  /** Slots chosen since the last Commit went out. */
  private chosenUnsent: number[] = [];
  /** The last heartbeat sequence number sent. */
  private heartbeatSeq = 0;
  /** Send tick of heartbeat s at [s % HEARTBEAT_RING]. */
  private readonly heartbeatSentTick = new Float64Array(HEARTBEAT_RING);
  /** Per peer, the highest heartbeat seq it acked at our ballot. */
  private readonly heartbeatAcked = new Map<number, number>();
  /** True when a heartbeat should go out at the next ready() (a quorum read waits on it). */
  private heartbeatDue = false;
  /** Leader: ticks since the last heartbeat went out. */
  private heartbeatElapsed = 0;
  /** The tick this node became leader. */
  private leaderSinceTick = 0;
  /** Leader: the highest chosen prefix a HeartbeatAck at its ballot reported. Invariant: reset each reign. */
  private peerChosenMax = 1;
  /** Leader: chosenPrefix + window.prefix when it last moved while the leader lagged (see maybeCampaignAgain). */
  private lagProgress = 0;
  /** Leader: the tick it last did not lag, or last made progress while lagging. */
  private lagTick = 0;

  // ---- Rejoining without voting (Restored.rejoining; see the rejoining section below). ----
  /**
   * 1: it learns only, until every other member answered a CatchUpRequest; 2: it accepts and acks
   * but sends no Promise; 3: normal (also a node that never lost state). Invariant: never
   * decreases; below 3 the node is a follower.
   */
  private rejoinStep: 1 | 2 | 3 = 3;
  /** Per member that answered in this life, the highest ballot it reported. Invariant: keys are in `others` (bounded by the member count). */
  private readonly catchUpBallots = new Map<number, number>();
  /** The highest ballot a counted CatchUpReply reported: at or above any promise this node may have forgotten. */
  private catchUpBallotMax = 0;
  /** The highest lastPosition a counted CatchUpReply reported: at or above any slot this node may have accepted and forgotten. */
  private catchUpPositionMax = 0;
  /** From step 2: catchUpBallotMax when every member had answered, at or above every ballot this node led at before. */
  private catchUpFence = 0;
  /** Steps 1 and 2: the tick CatchUpRequests last went out; re-sent after CATCH_UP_RETRY_TICKS to members still wanted. */
  private catchUpSentTick = 0;
  /** The next Ready carries `rejoined` (with the hard state). Invariant: only at step 3. */
  private rejoinedDue = false;
  /** Drawn once per life when rejoining; a CatchUpReply counts only if it echoes it (0: not rejoining). */
  private catchUpNonce = 0;
  /**
   * Step 1 of a node told it starts a new cluster (Restored.newCluster): the members that answered
   * holding nothing. Null when not checking, or once an answer showed a running cluster (a full
   * rejoin follows). Invariant: non-null only in step 1; keys are in `others`.
   */
  private newClusterEmpty: Set<number> | null = null;

  // ---- Reads. ----
  /** Leader: reads waiting for a heartbeat round to confirm leadership. Bounded by pendingMax. */
  private readonly readsQuorum: QuorumRead[] = [];
  /** Follower reads waiting for ReadIndexReply, by the readId asked with: the read's id and its deadline tick. */
  private readonly readsRemote = new Map<number, { id: number; deadline: number }>();
  /**
   * The last readId asked with, below 2^21. A readId is it plus the incarnation times 2^21: the
   * driver numbers its reads anew in every life, and a reply to an earlier life's request must
   * answer no read of this one. Even, as followers' requests are (see MsgType.ReadIndex).
   */
  private readIndexSeq = 0;
  /** Reads confirmed, waiting for applied to reach their index. */
  private readsWaiting: ReadState[] = [];
  /** Reads refused since the last Ready. */
  private readsFailed: number[] = [];

  // ---- The next Ready, being gathered. ----
  /** The promise changed since the last Ready. */
  private hardStateDirty = false;
  /** Records to persist in the next Ready, the latest per slot. */
  private readonly records = new Map<number, LogRecord>();
  /** Messages that report nothing unpersisted: sent at once. */
  private messages: Message[] = [];
  /** Promise and Accepted: sent only once the next Ready is durable. */
  private messagesAfterPersist: Message[] = [];
  /** The chosen prefix last handed to the driver to persist. */
  private chosenPrefixPersisted = 1;
  /** Leader: own accepts in the gathering Ready, counted once durable (in advance). */
  private selfAccepts: number[] = [];
  /** Candidate: the ballot whose self-promise is in the gathering Ready, 0 if none. */
  private selfPromise = 0;
  /** Candidate: its promise of `ballot` is durable (and counted). Invariant: it leads only once this is true. */
  private selfPromiseDurable = false;
  /** The Readys handed out and not yet advanced, oldest first, with what counts once each is durable. Invariant: length <= cfg.readysOutstandingMax. */
  private outstanding: { rd: Ready; selfAccepts: number[]; acceptBallot: number; selfPromise: number }[] = [];

  constructor(o: ProtocolOptions) {
    const c = o.config;
    this.cfg = c;
    // A receiver abandons a transfer after electionTicksMax without a chunk (tickTransfer): past
    // that, nobody pulls a held snapshot.
    this.served = new ServedSnapshots(c.electionTicksMax);
    this.promisePartBytes = c.promisePartBytes ?? ACCEPT_BYTES_MAX;
    this.k = o.kernels;
    this.rng = o.rng;
    this.bugs = o.bugs ?? {};
    this.incarnation = o.incarnation ?? 0;
    this.id = c.id;
    assert.ok(c.peers.includes(c.id), `peers ${c.peers} must include this node ${c.id}`);
    assert.ok(c.peers.length >= 1 && c.peers.length <= 32, 'between 1 and 32 members');
    assert.ok(c.electionTicksMin >= 2 && c.electionTicksMax > c.electionTicksMin, 'electionTicksMin >= 2 and < electionTicksMax');
    assert.ok(c.leaseTicks < c.electionTicksMin, 'leaseTicks must be below electionTicksMin');
    assert.ok(c.snapshotChunkBytes >= 1 && c.snapshotChunkBytes <= SNAPSHOT_CHUNK_BYTES_MAX, `snapshotChunkBytes must be in 1..${SNAPSHOT_CHUNK_BYTES_MAX}`);
    assert.ok(c.pipeline >= 1 && c.batchMax >= 1 && c.batchBytesMax >= 8 && c.pendingMax >= 1 && c.readysOutstandingMax >= 1, 'positive bounds');
    [...c.peers].sort((a, b) => a - b).forEach((p, i) => this.memberIndex.set(p, i));
    this.others = c.peers.filter((p) => p !== c.id);
    const majority = Math.floor(c.peers.length / 2) + 1;
    this.quorum = this.bugs.quorumOneShort ? Math.max(1, majority - 1) : majority;
    this.noop = this.k.encodeBatch([]);
    this.ballotMax = this.k.ballotPack(this.k.ballotRound(Number.MAX_SAFE_INTEGER) - 1, 0) - 1;
    this.window = this.k.newSlotWindow(c.pipeline);
    this.batcher = this.k.newBatcher(c.pendingMax, PENDING_BYTES_MAX);
    this.promises = this.k.newPromiseCounter();
    this.quietTicks = c.electionTicksMin;

    const r = o.restored;
    if (r) {
      this.promised = r.hardState.ballot;
      this.ballotSeenMax = r.hardState.ballot;
      if (r.snapshot) {
        // The state machine was restored from it: every slot below its prefix is chosen and applied.
        assert.ok(Number.isSafeInteger(r.snapshot.prefix) && r.snapshot.prefix >= 2, `restored snapshot prefix ${r.snapshot.prefix} must be >= 2`);
        this.served.replace(r.snapshot, this.now);
        this.snapshotPrefix = r.snapshot.prefix;
      }
      for (const rec of r.records) {
        if (rec.position < this.snapshotPrefix) continue; // the snapshot covers it
        this.accepted.set(rec.position, { ballot: rec.ballot, value: rec.value });
        this.acceptedMax = Math.max(this.acceptedMax, rec.position);
      }
      this.chosenPrefix = Math.max(1, r.chosenPrefix, this.snapshotPrefix);
      this.chosenPrefixPersisted = this.chosenPrefix;
      this.appliedPrefix = Math.max(1, r.appliedPrefix, this.snapshotPrefix);
      this.applyNext = this.appliedPrefix;
      this.learnTarget = this.chosenPrefix;
      assert.ok(this.appliedPrefix <= this.chosenPrefix, `restored applied ${this.appliedPrefix} beyond chosen ${this.chosenPrefix}`);
      for (let s = this.applyNext; s < this.chosenPrefix; s++) {
        const a = this.accepted.get(s);
        if (!a) assert.fail(`storage holds no record for slot ${s}, below the persisted chosen prefix ${this.chosenPrefix}`);
        this.chosenValues.set(s, a.value);
      }
      // A restarted node may have acknowledged a leader's lease before it crashed: it promises
      // nobody until a whole election timeout has passed (isSticky).
      this.restartQuietUntil = this.now + c.electionTicksMin;
      // The planted bug skips the whole rule: the node votes as if it remembered everything.
      if (r.rejoining && !this.bugs.rejoinVotesAtOnce) {
        this.rejoinStep = 1;
        if (r.newCluster === true) {
          assert.ok(holdsNothing(r), 'Restored.newCluster with a log that holds something');
          this.newClusterEmpty = new Set();
        }
        this.catchUpNonce = this.rng.int(1, 2 ** 31);
        this.requestCatchUp();
        this.maybeRejoinStep(); // a single-member cluster has nobody to ask
      }
    }
    this.electionTimeout = this.randomTimeout();
    this.invariants();
  }

  // ------------------------------------------------------------------ inputs

  tick(): void {
    this.now++;
    if (this.quietTicks < this.cfg.electionTicksMax * 4) this.quietTicks++;
    this.tickTransfer();
    this.served.tick(this.now);
    if (this.role === 'leader') this.tickLeader();
    else if (this.rejoinStep < 3) this.tickRejoining();
    else {
      this.electionElapsed++;
      if (this.electionElapsed >= this.electionTimeout) this.preCampaign();
      else this.maybeFetch();
    }
    this.expireReads();
    this.invariants();
  }

  /**
   * A leader that stops serves nothing from then on, so its followers need not wait out the
   * stickiness that protects its lease: this one stops being sticky and campaigns soon. A stale
   * message from that leader still in flight makes it sticky again (liveness only).
   */
  peerStopping(id: number): void {
    if (this.role !== 'follower' || id !== this.leader || id !== this.stickyTo || this.rejoinStep < 3) return;
    this.leader = 0;
    this.quietTicks = this.cfg.electionTicksMin;
    this.electionElapsed = 0;
    this.electionTimeout = stoppingTicks(this.id, id, this.others);
    this.invariants();
  }

  step(m: Message): void {
    // Messages not for us, or from strangers, are dropped: bad input never crashes a node.
    if (m.to !== this.id || m.from === this.id || !this.memberIndex.has(m.from)) return;
    // A ballot no campaign can go above would make the next one throw (or, seen once, every one).
    if ('ballot' in m && m.ballot > this.ballotMax) return;
    switch (m.type) {
      case MsgType.Prepare: this.handlePrepare(m); break;
      case MsgType.Promise: this.handlePromise(m); break;
      case MsgType.Accept: this.handleAccept(m); break;
      case MsgType.Accepted: this.handleAccepted(m); break;
      case MsgType.Nack: this.handleNack(m); break;
      case MsgType.Commit: this.handleCommit(m); break;
      case MsgType.Heartbeat: this.handleHeartbeat(m); break;
      case MsgType.HeartbeatAck: this.handleHeartbeatAck(m); break;
      case MsgType.LearnRequest: this.handleLearnRequest(m); break;
      case MsgType.LearnReply: this.handleLearnReply(m); break;
      case MsgType.Propose: this.handlePropose(m); break;
      case MsgType.ReadIndex: this.handleReadIndex(m); break;
      case MsgType.ReadIndexReply: this.handleReadIndexReply(m); break;
      case MsgType.SnapshotRequest: this.handleSnapshotRequest(m); break;
      case MsgType.SnapshotChunk: this.handleSnapshotChunk(m); break;
      case MsgType.CatchUpRequest: this.handleCatchUpRequest(m); break;
      case MsgType.CatchUpReply: this.handleCatchUpReply(m); break;
      case MsgType.PrePrepare: this.handlePrePrepare(m); break;
      case MsgType.PrePromise: this.handlePrePromise(m); break;
      default: break; // Raft's messages mean nothing here.
    }
    // Learning may have moved the chosen prefix past the positions this node may have forgotten.
    this.maybeRejoinStep();
    this.invariants();
  }

  propose(commands: Uint8Array[]): ProposeResult {
    const result = this.proposeUnchecked(commands);
    this.invariants();
    return result;
  }

  private proposeUnchecked(commands: Uint8Array[]): ProposeResult {
    if (commands.length === 0) return 'proposed';
    if (this.role === 'leader' || this.pendingKept) {
      let bytes = 0;
      for (const c of commands) bytes += c.length;
      if (this.batcher.count + commands.length > this.cfg.pendingMax || this.batcher.bytes + bytes > PENDING_BYTES_MAX) return 'full';
      for (const c of commands) assert.ok(this.batcher.push(c), 'the batcher refused a command within its bounds');
      return 'proposed';
    }
    if (this.role === 'follower' && this.leader !== 0) {
      this.send({ type: MsgType.Propose, from: this.id, to: this.leader, ballot: this.leaderBallot, incarnation: this.incarnation, seq: ++this.proposeSeq, values: commands });
      return 'forwarded';
    }
    return 'no-leader';
  }

  read(id: number, mode: ReadMode): void {
    const pending = this.readsQuorum.length + this.readsRemote.size + this.readsWaiting.length;
    if (pending >= this.cfg.pendingMax) { this.readsFailed.push(id); return; }
    if (this.role === 'leader') {
      if (mode === 'lease') {
        if (this.bugs.leaseWithoutLease) this.readsWaiting.push({ id, index: this.chosenPrefix - 1 });
        else if (this.leaseValid()) this.readsWaiting.push({ id, index: this.readIndex() });
        else this.readsFailed.push(id); // refused for lack of lease
      } else this.startQuorumRead(id, 0);
    } else if (this.role === 'follower' && this.leader !== 0) {
      this.readIndexSeq = (this.readIndexSeq + 2) % 2 ** 21;
      const readId = (this.incarnation % 2 ** 32) * 2 ** 21 + this.readIndexSeq;
      this.send({ type: MsgType.ReadIndex, from: this.id, to: this.leader, readId });
      this.readsRemote.set(readId, { id, deadline: this.now + this.cfg.electionTicksMax * 2 });
    } else this.readsFailed.push(id);
    this.invariants();
  }

  // ------------------------------------------------------------------ Ready

  hasReady(): boolean {
    if (this.outstanding.length >= this.cfg.readysOutstandingMax) return false;
    return this.snapshotDue !== null || this.hardStateDirty || this.rejoinedDue || this.records.size > 0 || this.messages.length > 0 ||
      this.messagesAfterPersist.length > 0 || this.chosenPrefix > this.chosenPrefixPersisted ||
      this.applyNext < this.chosenPrefix || this.readsFailed.length > 0 || this.chosenUnsent.length > 0 ||
      this.heartbeatDue || this.readsWaiting.some((r) => r.index < this.chosenPrefix) || this.canPropose();
  }

  ready(): Ready {
    assert.ok(this.outstanding.length < this.cfg.readysOutstandingMax, 'ready() called with readysOutstandingMax Readys not yet advanced');
    if (this.role === 'leader') {
      this.flushProposals();
      if (this.heartbeatDue) this.broadcastHeartbeat();
    }
    const apply: LogRecord[] = [];
    while (this.applyNext < this.chosenPrefix && apply.length < APPLY_MAX) {
      const s = this.applyNext++;
      const value = this.chosenValues.get(s);
      if (!value) assert.fail(`chosen slot ${s} has no value`);
      this.chosenValues.delete(s);
      apply.push({ position: s, ballot: this.accepted.get(s)?.ballot ?? 0, value });
    }
    const reads: ReadState[] = [];
    this.readsWaiting = this.readsWaiting.filter((r) => {
      if (r.index < this.applyNext) { reads.push(r); return false; }
      return true;
    });
    const records = [...this.records.values()].sort((a, b) => a.position - b.position);
    const rd: Ready = {
      snapshot: this.snapshotDue,
      install: this.installDue,
      hardState: this.hardStateDirty ? { ballot: this.promised, vote: 0 } : null,
      truncateFrom: 0,
      records,
      chosenPrefix: this.chosenPrefix > this.chosenPrefixPersisted ? this.chosenPrefix : 0,
      messages: this.messages,
      messagesAfterPersist: this.messagesAfterPersist,
      apply,
      reads,
      readsFailed: this.readsFailed,
      rejoined: this.rejoinedDue,
    };
    this.outstanding.push({ rd, selfAccepts: this.selfAccepts, acceptBallot: this.ballot, selfPromise: this.selfPromise });
    this.chosenPrefixPersisted = this.chosenPrefix;
    this.snapshotDue = null;
    this.installDue = false;
    this.hardStateDirty = false;
    this.rejoinedDue = false;
    this.records.clear();
    this.messages = [];
    this.messagesAfterPersist = [];
    this.readsFailed = [];
    this.selfAccepts = [];
    this.selfPromise = 0;
    return rd;
  }

  advance(rd: Ready): void {
    assert.ok(this.outstanding.length > 0 && this.outstanding[0].rd === rd, 'advance() must be given the oldest outstanding Ready');
    const o = this.outstanding.shift()!;
    // An installed snapshot replaced the state machine before `apply`, which starts at its prefix.
    if (rd.install && rd.snapshot) this.appliedPrefix = Math.max(this.appliedPrefix, rd.snapshot.prefix);
    if (rd.apply.length > 0) this.appliedPrefix = rd.apply[rd.apply.length - 1].position + 1;
    // Our own promise and accepts count only now, when they are durable.
    if (o.selfPromise !== 0 && this.role === 'candidate' && this.ballot === o.selfPromise) {
      this.selfPromiseDurable = true;
      this.addPromise(this.id, this.chosenPrefix, this.ownEntriesFrom(Math.max(this.fromSlot, this.chosenPrefix)));
    }
    if (o.selfAccepts.length > 0 && this.role === 'leader' && this.ballot === o.acceptBallot) {
      const me = this.memberIndex.get(this.id)!;
      for (const s of o.selfAccepts) {
        if (s >= this.window.prefix && s < this.nextSlot) this.countAcks(me, s, 1);
      }
    }
    this.invariants();
  }

  status(): Status {
    return {
      id: this.id,
      protocol: 'multipaxos',
      role: this.role,
      leader: this.leader,
      ballot: this.promised,
      chosenPrefix: this.chosenPrefix,
      appliedPrefix: this.appliedPrefix,
      holes: this.chosenValues.size - (this.chosenPrefix - this.applyNext),
      inFlight: this.inflight.size,
      pending: this.batcher.count,
      snapshotPrefix: this.snapshotPrefix,
      rejoining: this.rejoinStep < 3,
    };
  }

  invariants(): void {
    const c = this.cfg;
    assert.ok(this.chosenPrefix >= 1, 'chosen prefix >= 1');
    // Messages are built only on failure: invariants() runs after every input.
    if (!(this.appliedPrefix <= this.applyNext && this.applyNext <= this.chosenPrefix)) {
      assert.fail(`applied ${this.appliedPrefix} <= handed ${this.applyNext} <= chosen prefix ${this.chosenPrefix} must hold`);
    }
    if (this.chosenValues.has(this.chosenPrefix)) assert.fail(`slot ${this.chosenPrefix} is chosen but is the chosen prefix`);
    // A full scan only while the map is small: after a restart it holds every slot from the
    // snapshot to the chosen prefix (snapshotSlots, 100,000 by default), handed out APPLY_MAX per
    // Ready, and a scan after every input made the replay quadratic. Past that, the edge below.
    if (this.chosenValues.size <= INVARIANT_SCAN_MAX) {
      for (const s of this.chosenValues.keys()) if (s < this.applyNext) assert.fail(`chosen value kept for handed slot ${s}`);
    } else if (this.chosenValues.has(this.applyNext - 1)) assert.fail(`chosen value kept for handed slot ${this.applyNext - 1}`);
    assert.ok(this.chosenValues.size - (this.chosenPrefix - this.applyNext) >= 0, 'chosen values cover the prefix');
    assert.ok(this.batcher.count <= c.pendingMax, 'pending commands within pendingMax');
    if (this.role !== 'follower') {
      if (this.promised !== this.ballot) assert.fail(`a ${this.role} has promised ${this.promised}, not its own ballot ${this.ballot}`);
      assert.equal(this.k.ballotNode(this.ballot), this.id, 'a node campaigns with its own ballot');
    }
    if (this.role === 'leader') {
      assert.equal(this.leader, this.id, 'a leader knows itself as leader');
      const p = this.window.prefix;
      if (p < this.reignStart) assert.fail(`window prefix ${p} below the reign's start ${this.reignStart}`);
      if (this.chosenPrefix >= this.reignStart && p > this.chosenPrefix) assert.fail(`window prefix ${p} above chosen prefix ${this.chosenPrefix}`);
      if (this.nextSlot < p || this.nextSlot - p > c.pipeline) assert.fail(`in flight [${p}, ${this.nextSlot}) beyond pipeline ${c.pipeline}`);
      assert.ok(this.inflight.size <= c.pipeline, 'in-flight slots within pipeline');
      for (const s of this.inflight.keys()) if (s < p || s >= this.nextSlot) assert.fail(`in-flight slot ${s} outside [${p}, ${this.nextSlot})`);
    } else {
      assert.equal(this.inflight.size, 0, 'only a leader has slots in flight');
      assert.equal(this.readsQuorum.length, 0, 'only a leader confirms reads');
      if (this.batcher.count > 0 && !this.pendingKept) assert.fail(`a ${this.role} holds ${this.batcher.count} pending commands`);
      if (this.pendingKept && this.role !== 'candidate') assert.fail(`a ${this.role} keeps pending commands`);
      if (this.preBallot !== 0 && this.role !== 'follower') assert.fail(`a ${this.role} runs a pre-vote`);
    }
    assert.ok(this.backoff <= BACKOFF_MAX, 'backoff bounded');
    if (this.rejoinStep < 3 && this.role !== 'follower') assert.fail(`a ${this.role} is still rejoining (step ${this.rejoinStep})`);
    if (this.rejoinStep === 2 && this.catchUpBallots.size !== this.others.length) assert.fail('step 2 of rejoining before every member answered');
    if (this.rejoinedDue && this.rejoinStep !== 3) assert.fail('rejoined announced before step 3');
    if (this.newClusterEmpty !== null && this.rejoinStep !== 1) assert.fail(`checking for a new cluster at step ${this.rejoinStep}`);
    if (this.rejoinStep === 2 && this.promised < this.catchUpFence) assert.fail(`promised ${this.promised} below the fence ${this.catchUpFence}`);
    // Snapshots: spot checks at the edges of the trimmed log (a full scan per step would be O(log)).
    if (this.snapshotPrefix > this.applyNext) assert.fail(`snapshot prefix ${this.snapshotPrefix} above handed ${this.applyNext}`);
    if ((this.served.latest?.prefix ?? 1) !== this.snapshotPrefix) assert.fail(`snapshot ${this.served.latest?.prefix} disagrees with snapshot prefix ${this.snapshotPrefix}`);
    if (this.snapshotDue && this.snapshotDue.prefix !== this.snapshotPrefix) assert.fail('the snapshot due is not the latest');
    if (this.accepted.has(this.snapshotPrefix - 1)) assert.fail(`slot ${this.snapshotPrefix - 1} kept below the snapshot prefix`);
    if (this.records.has(this.snapshotPrefix - 1)) assert.fail(`record ${this.snapshotPrefix - 1} due below the snapshot prefix`);
    if (this.chosenPrefix > this.snapshotPrefix && !this.accepted.has(this.chosenPrefix - 1)) assert.fail(`chosen slot ${this.chosenPrefix - 1} has no record`);
    const t = this.transfer;
    if (t && !(t.offset > 0 && t.offset < t.bytes.length && t.bytes.length <= SNAPSHOT_BYTES_MAX)) assert.fail(`transfer at ${t.offset} of ${t.bytes.length}`);
  }

  // ------------------------------------------------------------------ snapshots

  compact(prefix: number, bytes: Uint8Array): void {
    // A prefix beyond what the state machine applied would trim slots it never saw: a driver bug.
    assert.ok(Number.isSafeInteger(prefix) && prefix <= this.appliedPrefix, `compact at ${prefix} beyond the applied prefix ${this.appliedPrefix}`);
    assert.ok(bytes.length <= SNAPSHOT_BYTES_MAX, `a snapshot of ${bytes.length} bytes exceeds SNAPSHOT_BYTES_MAX`);
    if (prefix <= this.snapshotPrefix) return;
    // An install sets snapshotPrefix above appliedPrefix until its Ready is advanced, so a compact
    // that gets here never replaces a snapshot the driver has yet to install.
    assert.ok(!this.installDue, 'compact() would hide an install the driver has not seen');
    if (this.role === 'leader') this.settleInflightBelow(prefix);
    this.trimBelow(prefix);
    this.snapshotDue = { prefix, ballot: 0, bytes };
    this.served.replace(this.snapshotDue, this.now);
    this.invariants();
  }

  /**
   * A leader may have applied past slots it still has in flight: chosen before its reign, known
   * here, but beyond the window at election, so re-proposed. Below the snapshot they are counted
   * chosen, not retransmitted (acceptors that trimmed them refuse them).
   */
  private settleInflightBelow(prefix: number): void {
    const below = [...this.inflight.keys()].filter((s) => s < prefix).sort((a, b) => a - b);
    for (const s of below) {
      this.inflight.delete(s);
      this.window.markChosen(s);
    }
    while (this.nextSlot < this.window.prefix) this.recovery.delete(this.nextSlot++);
  }

  /** Drop every slot below `prefix` from the log and from the Ready being gathered. */
  private trimBelow(prefix: number): void {
    if (prefix - this.snapshotPrefix <= this.accepted.size) {
      for (let s = this.snapshotPrefix; s < prefix; s++) { this.accepted.delete(s); this.records.delete(s); }
    } else {
      for (const s of this.accepted.keys()) if (s < prefix) this.accepted.delete(s);
      for (const s of this.records.keys()) if (s < prefix) this.records.delete(s);
    }
    this.snapshotPrefix = prefix;
  }

  /** Offer our snapshot to a peer that needs trimmed slots, at most once per OFFER_GAP_TICKS per peer. */
  private maybeOffer(to: number): void {
    const i = this.memberIndex.get(to)!;
    if (this.served.latest === null || this.now - this.offerTick[i] < OFFER_GAP_TICKS) return;
    this.offerTick[i] = this.now;
    this.sendChunk(to, this.served.offer(this.now)!, 0);
  }

  private sendChunk(to: number, s: Snapshot, offset: number): void {
    const bytes = s.bytes.subarray(offset, offset + this.cfg.snapshotChunkBytes);
    this.send({ type: MsgType.SnapshotChunk, from: this.id, to, ballot: 0, prefix: s.prefix, offset, total: s.bytes.length, values: [bytes] });
  }

  /** Serve a chunk of the snapshot asked for (the latest or one still being pulled); a peer asking
   *  for one no longer served gets an offer of the latest. */
  private handleSnapshotRequest(m: SnapshotRequest): void {
    if (!Number.isSafeInteger(m.offset) || m.offset < 0) return;
    const s = this.served.pull(m.prefix, this.now);
    if (s === null) this.maybeOffer(m.from);
    else if (m.offset < s.bytes.length) this.sendChunk(m.from, s, m.offset);
  }

  /**
   * Take an offer if we need it (we lack chosen slots below its prefix), then pull the rest in
   * order. Anything inconsistent is dropped and changes nothing: bad input never throws.
   */
  private handleSnapshotChunk(m: SnapshotChunk): void {
    if (m.values.length !== 1 || m.ballot !== 0) return;
    const chunk = m.values[0];
    if (!Number.isSafeInteger(m.prefix) || !Number.isSafeInteger(m.offset) || !Number.isSafeInteger(m.total)) return;
    if (m.prefix < 2 || m.total > SNAPSHOT_BYTES_MAX || chunk.length > SNAPSHOT_CHUNK_BYTES_MAX) return;
    if (m.offset < 0 || m.offset + chunk.length > m.total) return;
    // Every chunk but an empty snapshot's moves the transfer on, so a transfer always ends.
    if (chunk.length === 0 && m.total > 0) return;
    let t = this.transfer;
    if (m.offset === 0) {
      if (!this.wantsSnapshot(m.prefix) || (t && m.prefix <= t.prefix)) return;
      t = { from: m.from, prefix: m.prefix, bytes: new Uint8Array(m.total), offset: 0, progressTick: this.now, requestTick: this.now };
      this.transfer = t;
    } else if (!t || m.from !== t.from || m.prefix !== t.prefix || m.total !== t.bytes.length || m.offset !== t.offset) {
      return; // a chunk of no transfer of ours, a duplicate or one out of order
    }
    t.bytes.set(chunk, t.offset);
    t.offset += chunk.length;
    t.progressTick = this.now;
    if (t.offset < t.bytes.length) {
      this.requestChunk(t);
      return;
    }
    this.transfer = null;
    if (this.wantsSnapshot(t.prefix)) this.install({ prefix: t.prefix, ballot: 0, bytes: t.bytes });
  }

  /**
   * A snapshot at `prefix` helps when we lack chosen slots below it. A leader takes one only up to
   * its window prefix: every slot of its reign below that it chose itself, so the snapshot agrees
   * with what it chose, and nothing it has in flight or will re-propose lies below the prefix.
   */
  private wantsSnapshot(prefix: number): boolean {
    if (prefix <= this.chosenPrefix) return false;
    return this.role !== 'leader' || prefix <= this.window.prefix;
  }

  private requestChunk(t: Transfer): void {
    t.requestTick = this.now;
    this.send({ type: MsgType.SnapshotRequest, from: this.id, to: t.from, prefix: t.prefix, offset: t.offset });
  }

  /** Re-ask for a lost chunk; give up after an election timeout without progress (the next fetch brings a new offer). */
  private tickTransfer(): void {
    const t = this.transfer;
    if (!t) return;
    if (this.now - t.progressTick >= this.cfg.electionTicksMax) this.transfer = null;
    else if (this.now - t.requestTick >= SNAPSHOT_RETRY_TICKS) this.requestChunk(t);
  }

  /** A peer's snapshot is complete: every slot below its prefix is chosen, and the state machine takes it whole. */
  private install(s: Snapshot): void {
    assert.ok(s.prefix > this.chosenPrefix && s.prefix > this.snapshotPrefix, 'install only what is needed');
    this.trimBelow(s.prefix);
    for (const slot of this.chosenValues.keys()) if (slot < s.prefix) this.chosenValues.delete(slot);
    this.chosenPrefix = s.prefix;
    while (this.chosenValues.has(this.chosenPrefix)) this.chosenPrefix++;
    if (this.chosenPrefix > this.learnTarget) this.learnTarget = this.chosenPrefix;
    // The state machine restarts from the snapshot; `apply` of the next Ready begins at its prefix.
    this.applyNext = s.prefix;
    this.served.replace(s, this.now);
    this.snapshotDue = s;
    this.installDue = true;
    this.learnSentTick = -1e9; // fetch what lies above the snapshot at once
  }

  // ------------------------------------------------------------------ acceptor

  private handlePrepare(m: Prepare): void {
    this.observe(m.ballot);
    // A rejoining node sends no Promise and no Nack (see the rejoining section): its Promise
    // could omit a slot it accepted and forgot.
    if (this.rejoinStep < 3) return;
    if (m.ballot > this.promised) {
      // Leader stickiness: while a live leader is heard (or just after a restart), ignore others.
      if (this.isSticky(m.from)) return;
      // The leader this node follows runs phase 1 again (a member came back with a higher promise):
      // it is alive, so the stickiness its heartbeats gave runs on from here, or a long phase 1
      // (a Promise of many slots under load) outlasts it and the returning member's next Prepare
      // wins this node's vote. Only within the stickiness: a leader's retry, an election timeout
      // later, extends nothing.
      const leaderAgain = m.from === this.stickyTo && this.quietTicks < this.cfg.electionTicksMin;
      this.becomeFollower(0);
      this.promise(m.ballot);
      this.electionElapsed = 0;
      if (leaderAgain) this.quietTicks = 0;
    } else if (!(m.ballot === this.promised && this.k.ballotNode(m.ballot) === m.from)) {
      this.send({ type: MsgType.Nack, from: this.id, to: m.from, ballot: this.promised, slot: m.fromSlot });
      return;
    }
    // A new promise, or the same Prepare again: report every accepted slot from fromSlot that we
    // do not know chosen. Below our chosen prefix everything is chosen; saying where it ends is
    // enough (the leader fetches those values), and keeps a Promise to a lagging candidate small.
    // In parts of at most promisePartBytes of values: a log with a hole that no peer can fill
    // grows above it, and one Promise of it all could pass a frame's bound.
    let coverFrom = Math.max(m.fromSlot, this.chosenPrefix);
    const parts = partsWithin(this.ownEntriesFrom(coverFrom), this.promisePartBytes);
    parts.forEach((entries, i) => {
      const more = i < parts.length - 1;
      const reply: PromiseMsg = {
        type: MsgType.Promise, from: this.id, to: m.from, ballot: m.ballot, fromSlot: m.fromSlot,
        chosenPrefix: this.chosenPrefix, coverFrom, more, entries,
      };
      this.sendAfterPersist(reply);
      if (more) coverFrom = entries[entries.length - 1].slot + 1;
    });
  }

  private handleAccept(m: Accept): void {
    this.observe(m.ballot);
    if (this.rejoinStep === 1) { this.listenToLeader(m.from, m.ballot, m.chosenPrefix); return; }
    if (m.ballot < this.promised && !this.bugs.acceptLowerBallot) {
      this.send({ type: MsgType.Nack, from: this.id, to: m.from, ballot: this.promised, slot: m.entries[0]?.slot ?? 0 });
      return;
    }
    if (this.k.ballotNode(m.ballot) !== m.from) return; // only a ballot's owner proposes at it
    if (m.ballot >= this.promised) this.hearFromLeader(m.from, m.ballot);
    let runFirst = 0;
    let runCount = 0;
    for (const e of m.entries) {
      if (e.slot < this.snapshotPrefix) continue; // trimmed (chosen and applied here): refused silently
      // A slot known chosen here: its record is what this node applies and serves to learners, so
      // only the chosen value may be written over it. Paxos lets no ballot at or above the one it was
      // chosen at propose another; another value comes from an older leader's Accept, delayed past
      // the election (a value learned by fetching raised no promise, so its ballot may pass here):
      // refused silently, as that proposal can never be chosen.
      if (this.isChosen(e.slot)) {
        if (!this.isChosenValue(e.slot, e.value)) continue;
        // The chosen value is answered, but its record never goes to a lower ballot: a Promise
        // reports the highest ballot each value was accepted at, and an acceptor's only grows.
        if ((this.accepted.get(e.slot)?.ballot ?? 0) < m.ballot) this.acceptLocal(e.slot, m.ballot, e.value);
      } else this.acceptLocal(e.slot, m.ballot, e.value);
      if (runCount > 0 && e.slot === runFirst + runCount) runCount++;
      else {
        if (runCount > 0) this.replyAccepted(m, runFirst, runCount);
        runFirst = e.slot;
        runCount = 1;
      }
    }
    if (runCount > 0) this.replyAccepted(m, runFirst, runCount);
    this.learnFromLeader(m.ballot, m.chosenPrefix, 0, 0);
  }

  private replyAccepted(m: Accept, firstSlot: number, count: number): void {
    this.sendAfterPersist({ type: MsgType.Accepted, from: this.id, to: m.from, ballot: m.ballot, firstSlot, count });
  }

  private handleHeartbeat(m: Heartbeat): void {
    this.observe(m.ballot);
    if (this.rejoinStep === 1) { this.listenToLeader(m.from, m.ballot, m.chosenPrefix); return; }
    if (m.ballot < this.promised) {
      this.send({ type: MsgType.Nack, from: this.id, to: m.from, ballot: this.promised, slot: 0 });
      return;
    }
    if (this.k.ballotNode(m.ballot) !== m.from) return;
    this.hearFromLeader(m.from, m.ballot);
    this.send({ type: MsgType.HeartbeatAck, from: this.id, to: m.from, ballot: m.ballot, chosenPrefix: this.chosenPrefix, seq: m.seq });
    this.learnFromLeader(m.ballot, m.chosenPrefix, 0, 0);
  }

  /** Record an accept (or a learned chosen value) durably. */
  private acceptLocal(slot: number, ballot: number, value: Uint8Array): void {
    this.accepted.set(slot, { ballot, value });
    if (slot > this.acceptedMax) this.acceptedMax = slot;
    this.records.set(slot, { position: slot, ballot, value });
  }

  private promise(ballot: number): void {
    assert.ok(ballot > this.promised, 'a promise only goes up');
    this.promised = ballot;
    this.hardStateDirty = true;
  }

  private ownEntriesFrom(fromSlot: number): SlotEntry[] {
    const out: SlotEntry[] = [];
    const first = Math.max(1, fromSlot);
    if (this.acceptedMax - first > 2 * this.accepted.size) {
      // A sparse log (far holes): walk the records, not the range.
      for (const [s, a] of this.accepted) if (s >= first) out.push({ slot: s, ballot: a.ballot, value: a.value });
      return out.sort((x, y) => x.slot - y.slot);
    }
    for (let s = first; s <= this.acceptedMax; s++) {
      const a = this.accepted.get(s);
      if (a) out.push({ slot: s, ballot: a.ballot, value: a.value });
    }
    return out;
  }

  private isSticky(from: number): boolean {
    if (this.role === 'leader') return this.now - this.contactTick() < this.cfg.electionTicksMin;
    if (this.now < this.restartQuietUntil) return true;
    return this.quietTicks < this.cfg.electionTicksMin && from !== this.stickyTo;
  }

  // ------------------------------------------------------------------ learner

  /** A leader's word at `ballot` (message from its owner) that slots below `prefix`, and the run, are chosen. */
  private learnFromLeader(ballot: number, prefix: number, first: number, count: number): void {
    if (prefix > this.learnTarget) this.learnTarget = prefix;
    if (this.role === 'leader') return;
    // Only where we accepted at exactly this ballot is our value the chosen one; the rest is fetched.
    const end = Math.min(prefix, this.chosenPrefix + LEARN_SCAN_MAX);
    for (let s = this.chosenPrefix; s < end; s++) this.markIfAcceptedAt(s, ballot);
    const runEnd = first + Math.min(count, LEARN_SCAN_MAX);
    for (let s = first; s < runEnd; s++) this.markIfAcceptedAt(s, ballot);
  }

  private markIfAcceptedAt(slot: number, ballot: number): void {
    if (this.isChosen(slot)) return;
    const a = this.accepted.get(slot);
    if (a && a.ballot === ballot) this.markChosen(slot, a.value);
  }

  private isChosen(slot: number): boolean {
    return slot < this.chosenPrefix || this.chosenValues.has(slot);
  }

  /** Whether `value` is the chosen value of `slot`, a slot known chosen here and not trimmed. */
  private isChosenValue(slot: number, value: Uint8Array): boolean {
    const chosen = slot < this.applyNext ? this.accepted.get(slot)?.value : this.chosenValues.get(slot);
    assert.ok(chosen !== undefined, `no value kept for chosen slot ${slot}`);
    return chosen.byteLength === value.byteLength && Buffer.compare(chosen, value) === 0;
  }

  private markChosen(slot: number, value: Uint8Array): void {
    if (this.isChosen(slot)) return;
    if (slot > this.chosenMax) this.chosenMax = slot;
    this.chosenValues.set(slot, value);
    while (this.chosenValues.has(this.chosenPrefix)) this.chosenPrefix++;
    if (this.chosenPrefix > this.learnTarget) this.learnTarget = this.chosenPrefix;
  }

  /**
   * Learn a chosen value from a peer. Its value is the chosen one whatever ballot it comes with,
   * and ours need not be, even at a higher ballot: a leader re-proposes a chosen value at its own
   * ballot, which may be lower than ours (a stale leader), so the ballot tells nothing. The record
   * keeps the higher of the two ballots; any ballot is true of the chosen value for phase 1.
   */
  private learnValue(slot: number, ballot: number, value: Uint8Array): void {
    if (slot < 1 || this.isChosen(slot)) return;
    if (this.bugs.learnKeepsOwnValue) { // the planted bug: the old rule, ours kept at a higher ballot
      const a = this.accepted.get(slot);
      if (!a || a.ballot <= ballot) this.acceptLocal(slot, ballot, value);
      this.markChosen(slot, this.accepted.get(slot)!.value);
      return;
    }
    this.acceptLocal(slot, Math.max(ballot, this.accepted.get(slot)?.ballot ?? 0), value);
    this.markChosen(slot, value);
  }

  private handleCommit(m: Commit): void {
    this.observe(m.ballot);
    if (this.k.ballotNode(m.ballot) !== m.from) return;
    if (m.ballot >= this.promised) this.hearFromLeader(m.from, m.ballot);
    this.learnFromLeader(m.ballot, m.chosenPrefix, m.firstSlot, m.count);
  }

  private maybeFetch(): void {
    if (this.chosenPrefix >= this.learnTarget || this.transfer !== null) return;
    if (this.now - this.learnSentTick < 2) return;
    const to = this.leader !== 0 && this.leader !== this.id ? this.leader : this.others[this.rng.int(0, this.others.length)];
    if (to === undefined) return;
    this.learnSentTick = this.now;
    const count = Math.min(this.learnTarget - this.chosenPrefix, LEARN_ENTRIES_MAX);
    this.send({ type: MsgType.LearnRequest, from: this.id, to, firstSlot: this.chosenPrefix, count });
  }

  private handleLearnRequest(m: LearnRequest): void {
    // Slots below our snapshot are gone from the log: the learner gets an offer instead.
    if (m.firstSlot < this.snapshotPrefix) { this.maybeOffer(m.from); return; }
    const entries: SlotEntry[] = [];
    const end = m.firstSlot + Math.min(m.count, LEARN_ENTRIES_MAX);
    // Bytes bounded as an Accept's are, so the reply fits in a frame; the learner asks for the rest.
    let bytes = 0;
    for (let s = Math.max(1, m.firstSlot); s < end; s++) {
      if (!this.isChosen(s)) continue;
      const value = s < this.applyNext ? this.accepted.get(s)?.value : this.chosenValues.get(s);
      if (!value) continue;
      if (entries.length > 0 && bytes + value.length > ACCEPT_BYTES_MAX) break;
      bytes += value.length;
      entries.push({ slot: s, ballot: this.accepted.get(s)?.ballot ?? 0, value });
    }
    this.send({ type: MsgType.LearnReply, from: this.id, to: m.from, chosenPrefix: this.chosenPrefix, entries });
  }

  private handleLearnReply(m: LearnReply): void {
    if (m.chosenPrefix > this.learnTarget) this.learnTarget = m.chosenPrefix;
    // A leader chooses by counting Accepteds at its ballot; learning a slot of its reign behind
    // its back would break the promise its chosen prefix makes to learners (see learnFromLeader).
    // Below its reign it fetches like any learner.
    const prefix = this.chosenPrefix;
    for (const e of m.entries) {
      if (this.role !== 'leader' || e.slot < this.reignStart) this.learnValue(e.slot, e.ballot, e.value);
    }
    // Fetch the next part at once; a reply that filled nothing (the peer lacks the slot too) is
    // asked again only after the usual gap, not on every tick.
    if (this.chosenPrefix > prefix) this.learnSentTick = -1e9;
  }

  // ------------------------------------------------------------------ rejoining without voting

  // A node restored with `rejoining` may have lost promises and accepts it made before (a wiped
  // disk, a damaged log set aside). It must not count in a quorum as if it remembered them, so it
  // rejoins in three steps (Restored.rejoining). Why that is safe:
  // - A promise it forgot matters only if its candidate was elected on it. That candidate counted
  //   its own promise only once durable (advance), so it answers our CatchUpRequest with a ballot at
  //   least as high; a candidate elected without its own promise was elected by a majority of
  //   others, one of which (not us) answers likewise. So once every other member has answered,
  //   raising `promised` to the highest ballot reported keeps every forgotten promise that counted:
  //   we never accept below one again (step 2).
  // - A slot it accepted and forgot matters only if it was chosen with our Accepted counted. The
  //   leader that counted it did so only with its own accept durable among the acks (`window`), and
  //   proposed it before we lost our state: if that leader was another node, its reply reports a
  //   lastPosition at or above the slot. (Not so for the rest of the quorum: a member may answer us,
  //   then accept a delayed Accept of that leader's ballot.) While we send no Promise, every
  //   quorum that elects a leader excludes us and still intersects the quorum that chose the slot,
  //   so the new leader finds the value. Once our chosen
  //   prefix passes that position, every slot we may have accepted is chosen and known here, and a
  //   Promise reports our chosen prefix, below which a candidate proposes nothing: we may vote.
  // - One more case: a slot we proposed ourselves as leader in our earlier life, whose Accept is
  //   still in flight and is accepted by a peer after that peer answered us. Our forgotten accept
  //   and that late one make a majority the replies did not show. So before voting we also wait
  //   until every member has reported a ballot it promised at or above the fence (the highest
  //   ballot reported once all answered, which is at or above every ballot we led at, since a
  //   majority promised those) and owned by another node: such a member refuses our old Accepts
  //   from then on, and whatever it accepted before shows in its lastPosition. We ask again until
  //   then; when we did not lead last, the first answers already qualify.
  // The argument needs every reply to have been sent after we lost our state: a reply to a request
  // of an earlier life, delayed until now, is told apart by its nonce (drawn once per life) and ignored.
  // - Before every member has answered we know no bound on what we forgot: we accept nothing and
  //   acknowledge no heartbeat (an ack confirms leadership for leases and quorum reads).

  /** Ask every member whose answer is still wanted: step 1, any answer; step 2, one past the fence. */
  private requestCatchUp(): void {
    this.catchUpSentTick = this.now;
    for (const to of this.others) {
      const wanted = this.rejoinStep === 1 ? !this.catchUpBallots.has(to) : !this.isFenced(to);
      if (wanted) this.send({ type: MsgType.CatchUpRequest, from: this.id, to, nonce: this.catchUpNonce });
    }
  }

  /** The member reported a promise that refuses every Accept of ballots we led at before (see above). */
  private isFenced(member: number): boolean {
    const b = this.catchUpBallots.get(member);
    return b !== undefined && b >= this.catchUpFence && this.k.ballotNode(b) !== this.id;
  }

  /** A rejoining follower never campaigns; it forgets a silent leader so proposals are not forwarded into the void. */
  private tickRejoining(): void {
    if (this.now - this.catchUpSentTick >= CATCH_UP_RETRY_TICKS) this.requestCatchUp();
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) this.becomeFollower(0);
    else this.maybeFetch();
  }

  /** Step 1: a leader's Accept or Heartbeat tells who leads and what is chosen; its entries are not accepted, nor acked. */
  private listenToLeader(from: number, ballot: number, chosenPrefix: number): void {
    if (ballot < this.promised || this.k.ballotNode(ballot) !== from) return;
    this.hearFromLeader(from, ballot);
    this.learnFromLeader(ballot, chosenPrefix, 0, 0);
  }

  /**
   * Every node in every state answers. The reply holds what is true of us now, and each number
   * only grows (a snapshot trims slots but the chosen prefix then covers them, hence the max).
   * It may run ahead of what is durable here, which only makes the asker more careful.
   */
  private handleCatchUpRequest(m: CatchUpRequest): void {
    this.send({
      type: MsgType.CatchUpReply, from: this.id, to: m.from, ballot: this.promised,
      lastPosition: Math.max(this.acceptedMax, this.chosenPrefix - 1), chosenPrefix: this.chosenPrefix, nonce: m.nonce,
    });
  }

  /**
   * Count an answer while rejoining; after that a reply is stale and ignored. Every answer of this
   * life is true of its sender when sent, so taking maxima over all of them only adds caution.
   */
  private handleCatchUpReply(m: CatchUpReply): void {
    if (this.rejoinStep === 3 || m.nonce !== this.catchUpNonce) return;
    if (!Number.isSafeInteger(m.ballot) || !Number.isSafeInteger(m.lastPosition) || !Number.isSafeInteger(m.chosenPrefix)) return;
    if (m.ballot < 0 || m.lastPosition < 0 || m.chosenPrefix < 0) return;
    if (m.ballot > (this.catchUpBallots.get(m.from) ?? -1)) this.catchUpBallots.set(m.from, m.ballot);
    if (m.ballot > this.catchUpBallotMax) this.catchUpBallotMax = m.ballot;
    if (m.lastPosition > this.catchUpPositionMax) this.catchUpPositionMax = m.lastPosition;
    this.observe(m.ballot);
    if (this.newClusterEmpty !== null) {
      // A member that promised a ballot or holds a slot: the cluster runs, and our new log may be a wiped one.
      if (answersNothing(m)) this.newClusterEmpty.add(m.from);
      else this.newClusterEmpty = null;
    }
    // Its chosen prefix is true: fetch up to it.
    if (m.chosenPrefix > this.learnTarget) this.learnTarget = m.chosenPrefix;
  }

  /** Move to the next step when its condition holds (called after every input that may change it). */
  private maybeRejoinStep(): void {
    if (this.rejoinStep === 1 && this.newClusterEmpty !== null && this.newClusterEmpty.size + 1 >= this.quorum) {
      // A majority, this node with them, holds nothing: the cluster is new, and nothing was promised or accepted that we forgot.
      this.newClusterEmpty = null;
      return this.rejoined();
    }
    if (this.rejoinStep === 1 && this.catchUpBallots.size === this.others.length) {
      this.rejoinStep = 2;
      this.catchUpFence = this.catchUpBallotMax;
      if (this.catchUpBallotMax > this.promised) this.promise(this.catchUpBallotMax);
    }
    if (this.rejoinStep === 2 && this.chosenPrefix > this.catchUpPositionMax && this.others.every((p) => this.isFenced(p))) this.rejoined();
  }

  /** Step 3: this node votes again. */
  private rejoined(): void {
    this.rejoinStep = 3;
    this.rejoinedDue = true;
    this.hardStateDirty = true; // the Ready that says `rejoined` carries the hard state with it
    this.electionElapsed = 0;
  }

  // ------------------------------------------------------------------ elections

  /**
   * An election timeout fired (a follower's, or a candidate's whose phase 1 did not complete): ask
   * first whether a quorum would take part (pre-vote, as Raft's), raising nothing. A node cut off
   * from the others, or behind a link too slow for heartbeats, then keeps its promise where it was,
   * and is no Nack to a healthy leader when it comes back. Retried every election timeout.
   */
  private preCampaign(): void {
    this.becomeFollower(0);
    this.preBallot = this.nextBallot();
    this.preGranted.clear();
    this.preGranted.add(this.id);
    if (this.preGranted.size >= this.quorum) return this.campaign(); // a cluster of one
    for (const to of this.others) this.send({ type: MsgType.PrePrepare, from: this.id, to, ballot: this.preBallot });
  }

  /** Grant when a Prepare now would not be ignored: no live leader heard (isSticky), and not rejoining. Nothing changes here. */
  private handlePrePrepare(m: PrePrepare): void {
    const granted = this.rejoinStep >= 3 && !this.isSticky(m.from);
    this.send({ type: MsgType.PrePromise, from: this.id, to: m.from, ballot: m.ballot, promised: this.promised, granted });
  }

  private handlePrePromise(m: PrePromise): void {
    if (this.preBallot === 0 || m.ballot !== this.preBallot || m.promised > this.ballotMax) return; // another round's, or no round
    this.observe(m.promised); // the campaign goes above every granter's promise
    if (!m.granted) return;
    this.preGranted.add(m.from);
    if (this.preGranted.size >= this.quorum) this.campaign();
  }

  /** The ballot this node's next campaign takes: its own, above every ballot promised or seen. */
  private nextBallot(): number {
    return this.k.ballotNextAbove(Math.max(this.promised, this.ballotSeenMax), this.id);
  }

  private campaign(keepPending = false): void {
    this.becomeFollower(0, keepPending);
    this.role = 'candidate';
    this.pendingKept = keepPending;
    this.ballot = this.nextBallot();
    this.observe(this.ballot);
    this.promise(this.ballot);
    this.selfPromise = this.ballot;
    this.selfPromiseDurable = false;
    this.fromSlot = this.chosenPrefix;
    if (this.lifeFirstBallot === 0) this.lifeFirstBallot = this.ballot;
    this.promises.reset(this.quorum);
    this.reports.clear();
    this.reportChosenPrefixMax = 1;
    this.reportMax = 0;
    this.promiseParts.clear();
    for (const to of this.others) this.send({ type: MsgType.Prepare, from: this.id, to, ballot: this.ballot, fromSlot: this.fromSlot });
  }

  private handlePromise(m: PromiseMsg): void {
    this.observe(m.ballot);
    if (this.role !== 'candidate' || m.ballot !== this.ballot || m.fromSlot !== this.fromSlot) return;
    // An acceptor counts once its parts cover every slot from where its Promise starts, with no
    // gap: a part lost or reordered drops what came so far, and the candidate's next campaign
    // (an election timeout later, at a higher ballot) brings them all again. Parts of two answers
    // to the same Prepare may join: each reports what was accepted in its slots, and nothing below
    // this ballot is accepted after the promise.
    if (this.bugs.countPromisePart) return this.addPromise(m.from, m.chosenPrefix, m.entries);
    const start = Math.max(this.fromSlot, m.chosenPrefix);
    let p = this.promiseParts.get(m.from);
    if (m.coverFrom <= start) p = { coveredTo: start, chosenPrefix: m.chosenPrefix, entries: [] };
    else if (p === undefined || m.coverFrom > p.coveredTo) {
      this.promiseParts.delete(m.from);
      return;
    }
    for (const e of m.entries) p.entries.push(e);
    if (m.chosenPrefix > p.chosenPrefix) p.chosenPrefix = m.chosenPrefix;
    if (m.more) {
      const last = m.entries.length > 0 ? m.entries[m.entries.length - 1].slot + 1 : m.coverFrom;
      if (last > p.coveredTo) p.coveredTo = last;
      this.promiseParts.set(m.from, p);
      return;
    }
    this.promiseParts.delete(m.from);
    this.addPromise(m.from, p.chosenPrefix, p.entries);
  }

  private addPromise(from: number, chosenPrefix: number, entries: SlotEntry[]): void {
    if (chosenPrefix > this.reportChosenPrefixMax) this.reportChosenPrefixMax = chosenPrefix;
    for (const e of entries) {
      if (e.slot < this.fromSlot || e.slot < chosenPrefix) continue;
      const r = this.reports.get(e.slot);
      if (!r || e.ballot > r.ballot) this.reports.set(e.slot, { ballot: e.ballot, value: e.value });
      if (e.slot > this.reportMax) this.reportMax = e.slot;
    }
    this.promises.add(this.memberIndex.get(from)!);
    // A candidate leads only once its own promise is durable, even when its peers alone make a
    // quorum: else it could send Accepts at its ballot, crash before the promise reached the disk,
    // and, restarted with the older one, pick the same ballot again for different values. Before
    // it leads, only Prepares carry the ballot, and a Prepare sent again changes nothing.
    if (this.selfPromiseDurable && this.promises.count >= this.quorum) this.becomeLeader();
  }

  private becomeLeader(): void {
    assert.equal(this.role, 'candidate', 'only a candidate becomes leader');
    this.role = 'leader';
    this.leader = this.id;
    this.backoff = 0;
    // Below the highest chosen prefix reported everything is chosen: fetch it, do not propose it.
    // start >= chosenPrefix >= snapshotPrefix, and >= every promising peer's snapshot prefix (a
    // Promise reports the acceptor's chosen prefix), so no proposal of this reign hits a slot this
    // node or a peer of its Promise quorum has trimmed.
    const start = Math.max(this.chosenPrefix, this.reportChosenPrefixMax);
    this.reignStart = start;
    if (start > this.learnTarget) this.learnTarget = start;
    let end = this.reportMax;
    for (const s of this.chosenValues.keys()) if (s > end) end = s;
    // The highest-ballot rule: a value that may have been chosen must be proposed again. Only
    // those are kept; a hole gets a no-op when flushProposals reaches it, so a far report (up to
    // 2^53 from a faulty peer) costs no entry per slot.
    this.recovery.clear();
    if (!this.bugs.skipHighestBallot) for (const [s, r] of this.reports) if (s >= start) this.recovery.set(s, r.value);
    for (const [s, v] of this.chosenValues) if (s >= start) this.recovery.set(s, v);
    this.recoveryEnd = Math.max(end, start - 1);
    this.reports.clear();
    // A slot is chosen only with our own accept of it on disk among the acks (see `window`).
    // (The planted commitWithoutOwnCopy requires nobody; learnKeepsOwnValue re-proposes a slot
    // known chosen at the start, as the old code did.)
    this.window.reset(start, this.quorum, this.bugs.commitWithoutOwnCopy ? 0 : 1 << this.memberIndex.get(this.id)!);
    const from = this.bugs.learnKeepsOwnValue ? start + 1 : start;
    for (const s of this.chosenValues.keys()) {
      if (s >= from && s < start + this.window.capacity) this.window.markChosen(s);
    }
    this.nextSlot = start;
    while (this.nextSlot < this.window.prefix) this.recovery.delete(this.nextSlot++);
    this.inflight.clear();
    this.chosenUnsent = [];
    this.heartbeatAcked.clear();
    this.leaderSinceTick = this.now;
    this.peerChosenMax = 1;
    this.lagProgress = 0;
    this.lagTick = this.now;
    this.heartbeatDue = true;
  }

  private becomeFollower(leader: number, keepPending = false): void {
    this.preBallot = 0;
    // Pending commands a candidate kept (pendingKept) are dropped with its campaign, unless kept again.
    if (this.pendingKept && !keepPending) this.batcher.clear();
    this.pendingKept = false;
    if (this.role === 'leader') {
      this.inflight.clear();
      this.recovery.clear();
      this.chosenUnsent = [];
      if (!keepPending) this.batcher.clear(); // their clients learn the outcome is unknown by timing out
      for (const r of this.readsQuorum) this.failRead(r);
      this.readsQuorum.length = 0;
      this.heartbeatDue = false;
    }
    this.role = 'follower';
    this.leader = leader;
    this.electionElapsed = 0;
    this.electionTimeout = this.randomTimeout();
  }

  /** A message from `from`, the owner of `ballot` >= promised: it is the live leader. */
  private hearFromLeader(from: number, ballot: number): void {
    if (ballot > this.promised) {
      if (this.role !== 'follower') this.becomeFollower(from);
      this.promise(ballot);
    } else if (this.role !== 'follower') this.becomeFollower(from);
    this.leader = from;
    this.leaderBallot = ballot;
    this.electionElapsed = 0;
    this.quietTicks = 0;
    this.stickyTo = from;
    this.backoff = 0;
    this.preBallot = 0; // a live leader: no election
  }

  private handleNack(m: Nack): void {
    this.observe(m.ballot);
    if (this.role === 'follower' || m.ballot <= this.ballot) return;
    // A leader that a quorum still answers was Nacked by a node returning with a ballot raised
    // while it was cut off. The others are sticky to this leader, so it takes a ballot above and
    // runs phase 1 again at once rather than leaving the cluster leaderless for a timeout.
    if (this.role === 'leader' && this.now - this.contactTick() < this.cfg.electionTicksMin) {
      this.campaign(true);
      // Sticky to itself, as the others are to it: it was leading a quorum a moment ago, so a
      // Prepare from the returning node (which may campaign again, above this ballot) is not
      // promised meanwhile, or the least up-to-date member would take over with this node's vote.
      this.stickyTo = this.id;
      this.quietTicks = 0;
      return;
    }
    this.becomeFollower(0);
    if (this.backoff < BACKOFF_MAX) this.backoff++;
    this.electionTimeout = this.randomTimeout();
  }

  private observe(ballot: number): void {
    if (ballot > this.ballotSeenMax) this.ballotSeenMax = ballot;
  }

  private randomTimeout(): number {
    const c = this.cfg;
    let t = this.rng.int(c.electionTicksMin, c.electionTicksMax);
    if (this.backoff > 0) t += this.rng.int(0, c.electionTicksMin * this.backoff + 1);
    return t;
  }

  // ------------------------------------------------------------------ leader

  private tickLeader(): void {
    this.heartbeatElapsed++;
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) this.heartbeatDue = true;
    // Step down when no quorum has answered for a whole election timeout: a partitioned
    // leader stops taking commands it cannot choose.
    if (this.now - this.contactTick() > this.cfg.electionTicksMax) {
      this.becomeFollower(0);
      return;
    }
    if (this.maybeCampaignAgain()) return;
    this.retransmit();
    this.maybeFetch();
  }

  /**
   * A leader can lag what is known chosen in two ways that fetching and retransmitting never end:
   * (1) slots below its reign were reported chosen by a promiser that then went down, and the
   * others only accepted them; (2) a peer outside its Promise quorum knew slots of its reign chosen
   * (from an earlier leader) and has trimmed them, so it refuses their Accepts and its snapshot
   * lies above the window. After an election timeout without progress, a new phase 1 from the
   * chosen prefix fixes both: the Promises report the accepted values (1) or the peer's chosen
   * prefix, above which the new reign starts and below which the peer's snapshot is then taken (2).
   */
  private maybeCampaignAgain(): boolean {
    const progress = this.chosenPrefix + this.window.prefix;
    const lagging = this.chosenPrefix < this.reignStart || this.peerChosenMax > this.window.prefix;
    if (!lagging || progress > this.lagProgress || this.transfer !== null) {
      this.lagProgress = progress;
      this.lagTick = this.now;
      return false;
    }
    if (this.now - this.lagTick <= this.cfg.electionTicksMax) return false;
    this.campaign();
    return true;
  }

  private canPropose(): boolean {
    if (this.role !== 'leader' || this.nextSlot - this.window.prefix >= this.cfg.pipeline) return false;
    return this.nextSlot <= this.recoveryEnd || this.batcher.count > 0;
  }

  /** Fill the pipeline: recovery slots first, then batches of pending commands. */
  private flushProposals(): void {
    const run: SlotEntry[] = [];
    while (this.nextSlot - this.window.prefix < this.cfg.pipeline) {
      let value: Uint8Array | undefined;
      if (this.nextSlot <= this.recoveryEnd) {
        value = this.recovery.get(this.nextSlot) ?? (this.bugs.skipNoop ? undefined : this.noop);
        this.recovery.delete(this.nextSlot);
        if (!value) { this.nextSlot++; continue; } // only with the planted skipNoop bug
        // A slot already known chosen needs no proposal; the window counted it at election.
        if (this.window.isChosen(this.nextSlot)) { this.nextSlot++; continue; }
        // A chosen slot the window could not hold at election and that this node has since applied
        // and trimmed: no record may be written below the snapshot, so count it chosen instead.
        if (this.nextSlot < this.snapshotPrefix) {
          this.window.markChosen(this.nextSlot++);
          while (this.nextSlot < this.window.prefix) this.recovery.delete(this.nextSlot++);
          continue;
        }
      } else if (this.batcher.count > 0) value = this.batcher.cut(this.cfg.batchMax, this.cfg.batchBytesMax);
      else break;
      const s = this.nextSlot++;
      this.inflight.set(s, { value, sentTick: this.now, gap: 0 });
      this.acceptLocal(s, this.ballot, value);
      this.selfAccepts.push(s);
      run.push({ slot: s, ballot: this.ballot, value });
    }
    if (run.length > 0) this.sendAccept(run, this.others);
    this.flushCommits(run.length > 0);
  }

  /** Accepts carrying `entries` to each of `members`, split where one would pass ACCEPT_BYTES_MAX. */
  private sendAccept(entries: SlotEntry[], members: readonly number[]): void {
    assert.ok(entries.length > 0, 'an Accept carries entries');
    for (const part of partsWithin(entries, ACCEPT_BYTES_MAX)) {
      for (const to of members) {
        this.send({ type: MsgType.Accept, from: this.id, to, ballot: this.ballot, chosenPrefix: this.chosenPrefix, entries: part });
      }
    }
  }

  /** Announce newly chosen slots: riding on an Accept's prefix where it covers them, else in Commits. */
  private flushCommits(acceptSent: boolean): void {
    if (this.chosenUnsent.length === 0) return;
    const slots = this.chosenUnsent.sort((a, b) => a - b);
    this.chosenUnsent = [];
    let i = 0;
    while (i < slots.length) {
      let j = i + 1;
      while (j < slots.length && slots[j] === slots[j - 1] + 1) j++;
      const first = slots[i];
      const count = slots[j - 1] - first + 1;
      if (!(acceptSent && first + count <= this.chosenPrefix)) {
        for (const to of this.others) {
          this.send({ type: MsgType.Commit, from: this.id, to, ballot: this.ballot, firstSlot: first, count, chosenPrefix: this.chosenPrefix });
        }
      }
      i = j;
    }
  }

  /** Send again the slots in flight whose Accepted is overdue, each only to the members that have not acked it. */
  private retransmit(): void {
    const due = Math.max(2, this.cfg.heartbeatTicks * 3);
    const run: SlotEntry[] = [];
    for (const [s, f] of this.inflight) {
      // Each copy waits twice as long as the last (up to an election timeout): a big value's
      // Accepted can take longer than `due` to come back, and copies sent meanwhile only crowd
      // the link (heartbeats queue behind them) and the peers' disks.
      const gap = Math.max(due, f.gap);
      if (this.now - f.sentTick >= gap) {
        f.sentTick = this.now;
        f.gap = Math.max(due, Math.min(gap * 2, this.cfg.electionTicksMin));
        run.push({ slot: s, ballot: this.ballot, value: f.value });
      }
    }
    if (run.length === 0) return;
    run.sort((a, b) => a.slot - b.slot);
    for (const to of this.others) {
      const bit = 1 << this.memberIndex.get(to)!;
      const lacking = run.filter((e) => (this.window.ackers(e.slot) & bit) === 0);
      if (lacking.length > 0) this.sendAccept(lacking, [to]);
    }
  }

  private handleAccepted(m: Accepted): void {
    this.observe(m.ballot);
    if (this.role !== 'leader' || m.ballot !== this.ballot) return;
    const first = Math.max(m.firstSlot, this.window.prefix);
    const end = Math.min(m.firstSlot + m.count, this.nextSlot);
    if (end > first) this.countAcks(this.memberIndex.get(m.from)!, first, end - first);
  }

  private countAcks(member: number, first: number, count: number): void {
    const n = this.window.ack(member, first, count);
    for (let i = 0; i < n; i++) {
      const s = this.window.newlyChosen[i];
      const f = this.inflight.get(s);
      if (!f) assert.fail(`slot ${s} chosen but never proposed at this ballot`);
      this.inflight.delete(s);
      this.markChosen(s, f.value);
      this.chosenUnsent.push(s);
    }
    // Slots known chosen at election may let the prefix jump past slots not yet proposed.
    while (this.nextSlot < this.window.prefix) this.recovery.delete(this.nextSlot++);
  }

  private handlePropose(m: Propose): void {
    // Dropped (the client's request times out as unknown): not a leader, another node's reign or
    // an earlier life's, or a duplicate (or overtaken) one. A Propose to an earlier reign of this
    // node in this life is taken: the node ran phase 1 again at a higher ballot (a member came back
    // with a higher promise) and stayed leader, and proposesSeen knows every Propose of this life.
    // (A leader or a candidate keeping its commands has campaigned in this life: lifeFirstBallot <= ballot.)
    const mine = this.lifeFirstBallot !== 0 && m.ballot >= this.lifeFirstBallot && m.ballot <= this.ballot && this.k.ballotNode(m.ballot) === this.id;
    if ((this.role !== 'leader' && !this.pendingKept) || !mine || !proposeIsNew(this.proposesSeen, m)) return;
    for (const v of m.values) {
      if (this.batcher.count >= this.cfg.pendingMax || !this.batcher.push(v)) break;
    }
  }

  // ------------------------------------------------------------------ heartbeats, leases, reads

  private broadcastHeartbeat(): void {
    this.heartbeatDue = false;
    this.heartbeatElapsed = 0;
    const seq = ++this.heartbeatSeq;
    this.heartbeatSentTick[seq % HEARTBEAT_RING] = this.now;
    for (const to of this.others) {
      this.send({ type: MsgType.Heartbeat, from: this.id, to, ballot: this.ballot, chosenPrefix: this.chosenPrefix, seq });
    }
    this.confirmReads();
  }

  private handleHeartbeatAck(m: HeartbeatAck): void {
    this.observe(m.ballot);
    if (this.role !== 'leader' || m.ballot !== this.ballot) return;
    if (m.seq > (this.heartbeatAcked.get(m.from) ?? 0) && m.seq <= this.heartbeatSeq) this.heartbeatAcked.set(m.from, m.seq);
    if (m.chosenPrefix > this.peerChosenMax) this.peerChosenMax = m.chosenPrefix;
    this.confirmReads();
  }

  /** The newest heartbeat a quorum (this node included) has acknowledged, 0 if none. */
  private confirmedSeq(): number {
    const acks = [this.heartbeatSeq];
    for (const p of this.others) acks.push(this.heartbeatAcked.get(p) ?? 0);
    acks.sort((a, b) => b - a);
    return acks[this.quorum - 1];
  }

  /** The send tick of the newest heartbeat a quorum acknowledged, or when leadership began. */
  private contactTick(): number {
    const seq = this.confirmedSeq();
    if (seq === 0 || this.heartbeatSeq - seq >= HEARTBEAT_RING) return this.leaderSinceTick;
    return Math.max(this.leaderSinceTick, this.heartbeatSentTick[seq % HEARTBEAT_RING]);
  }

  /** A quorum acknowledged a heartbeat recently enough that no other leader can exist yet. */
  private leaseValid(): boolean {
    const seq = this.confirmedSeq();
    if (seq === 0 || this.heartbeatSeq - seq >= HEARTBEAT_RING) return false;
    const sent = this.heartbeatSentTick[seq % HEARTBEAT_RING];
    if (sent < this.leaderSinceTick) return false;
    return this.now < sent + this.cfg.leaseTicks - this.cfg.leaseDriftTicks;
  }

  /**
   * The slot a read must apply through: everything chosen so far, earlier leaders' slots included.
   * While this leader still fetches the slots below its reign (its chosen prefix lags, e.g. while
   * it pulls a snapshot), followers may already apply the slots its window chose: count those too,
   * and those chosen above a hole in its window (a follower that knew the hole chosen applies
   * them; the Ready that fills the hole may apply only APPLY_MAX of them, and answer the read).
   */
  private readIndex(): number {
    return Math.max(this.chosenPrefix - 1, this.window.prefix - 1, this.recoveryEnd, this.chosenMax);
  }

  private startQuorumRead(id: number, from: number): void {
    this.readsQuorum.push({ id, from, index: this.readIndex(), seq: this.heartbeatSeq + 1, deadline: this.now + this.cfg.electionTicksMax * 2 });
    this.heartbeatDue = true;
  }

  private confirmReads(): void {
    if (this.readsQuorum.length === 0) return;
    const seq = this.confirmedSeq();
    let kept = 0;
    for (const r of this.readsQuorum) {
      if (r.seq > seq) { this.readsQuorum[kept++] = r; continue; }
      if (r.from === 0) this.readsWaiting.push({ id: r.id, index: r.index });
      else this.send({ type: MsgType.ReadIndexReply, from: this.id, to: r.from, readId: r.id, index: r.index, ok: true });
    }
    this.readsQuorum.length = kept;
  }

  private failRead(r: QuorumRead): void {
    if (r.from === 0) this.readsFailed.push(r.id);
    else this.send({ type: MsgType.ReadIndexReply, from: this.id, to: r.from, readId: r.id, index: 0, ok: false });
  }

  private expireReads(): void {
    if (this.readsQuorum.length > 0) {
      const live = this.readsQuorum.filter((r) => r.deadline > this.now);
      for (const r of this.readsQuorum) if (r.deadline <= this.now) this.failRead(r);
      this.readsQuorum.length = 0;
      this.readsQuorum.push(...live);
    }
    for (const [readId, r] of this.readsRemote) {
      if (r.deadline <= this.now) { this.readsRemote.delete(readId); this.readsFailed.push(r.id); }
    }
  }

  private handleReadIndex(m: ReadIndex): void {
    if (this.role === 'leader' && this.leaseValid()) {
      this.send({ type: MsgType.ReadIndexReply, from: this.id, to: m.from, readId: m.readId, index: this.readIndex(), ok: true });
    } else if (this.role === 'leader' && this.readsQuorum.length < this.cfg.pendingMax) this.startQuorumRead(m.readId, m.from);
    else this.send({ type: MsgType.ReadIndexReply, from: this.id, to: m.from, readId: m.readId, index: 0, ok: false });
  }

  private handleReadIndexReply(m: ReadIndexReply): void {
    const r = this.readsRemote.get(m.readId);
    if (r === undefined) return; // a duplicate, a read that timed out, or one of an earlier life
    this.readsRemote.delete(m.readId);
    if (!m.ok) { this.readsFailed.push(r.id); return; }
    this.readsWaiting.push({ id: r.id, index: m.index });
    if (m.index + 1 > this.learnTarget) this.learnTarget = m.index + 1;
  }

  // ------------------------------------------------------------------ output

  private send(m: Message): void {
    this.messages.push(m);
  }

  /** Promise and Accepted report durable state: they leave only after the persist. */
  private sendAfterPersist(m: Message): void {
    if (this.bugs.replyBeforePersist) this.messages.push(m);
    else this.messagesAfterPersist.push(m);
  }
}
