// The durable log of one node, in LMDB (lmdb-js).
//
// One LMDB environment per node directory, with two named databases:
//
//   log   key: position (slot or Raft index, a number)   value: kernels.encodeRecord(record),
//                                                              which carries the record's CRC32C
//   meta  key: 'hard' | 'chosen' | 'snapshot'            value: payload ++ crc32c(payload) (u32 LE)
//
//   hard      ballot f64, vote f64            the promised ballot (Raft: term and vote)
//                                             (all zero, written when the log is created)
//   chosen    chosenPrefix f64                every position below it is chosen
//   snapshot  version f64 (-2), prefix f64,   names the snapshot file paxlog.mdb.snapshot-<prefix>:
//             ballot f64, bytes f64, crc f64  the state machine after applying every position
//                                             below prefix (ballot: Raft, the term of prefix - 1),
//                                             `bytes` long with CRC32C `crc`. (A log written
//                                             before snapshot files holds prefix f64, ballot f64,
//                                             then the state itself; it is still read.)
//   identity  version f64 (1), id f64,        whose log this is: the node id, the protocol
//             protocol f64, member ids f64... (1 Multi-Paxos, 2 Raft) and the sorted ids of the
//                                             members, written with a new log (or at the first
//                                             open of a log from before it) and checked at
//                                             every open (LogStoreOptions.identity)
//   rejoin    createdMs f64                   present while the node rejoins without voting: it
//                                             may have lost state (a new log: maybe a wiped one;
//                                             or a damaged log set aside), so its core must catch
//                                             up before it votes (Restored.rejoining). Written
//                                             with the new log's hard state, deleted by the
//                                             transaction of the Ready that says `rejoined`.
//
// Log compaction. A snapshot's state goes to a file of its own, written under a temporary name,
// synced, renamed and its directory synced; only then does a transaction point the 'snapshot'
// meta at it. From then on the records below its prefix are never served, and the following
// transactions delete them a batch at a time (trimSync), so no crash leaves a log with neither
// the records nor the snapshot that replaced them. Older snapshot files go once a newer one is
// named. The state stays out of LMDB's write queue: an 11 MB snapshot written in a transaction
// held every persist queued behind it 46..78 ms here, and deleting the 10,000 slots below it in
// that transaction another 24..42 ms.
//
// The node's own snapshots are saved in the background (saveSnapshot), beside its persists: a
// crash before the transaction leaves the snapshot before and the records it covered, which is
// where the node stood before it took this one. A snapshot installed from a peer is saved by
// persist(), in its Ready's order: no later persist is queued before its transaction, since a
// later Ready's chosen prefix may count on it. LMDB puts the freed pages on its free list and
// reuses them for later writes: the file stops growing at about the log between two snapshots,
// though it never shrinks by itself; `paxlog compact --data DIR` (compactDir) shrinks it offline.
//
// Durability. `persist(ready)` writes one Ready in one write transaction and resolves only when
// that transaction is durable. lmdb-js by default on Linux uses overlappingSync: the promise of
// a write resolves once the transaction is written and visible, before its fsync. A Promise or Accepted that
// left the node at that moment would report a write a power cut can still take back. We open
// with overlappingSync off, so a transaction syncs before it ends and its promise resolves after the sync;
// test/storage-durability.test.ts kills a writer between the two to prove it.
//
// Several persists may be in flight (the node hands out up to readysOutstandingMax Readys):
// lmdb-js runs the queued transactions in the order they were asked for, and the node advances
// them in that order whatever order their promises settle in.
//
// What the store keeps in memory about the log (snapshotPrefix, trimFrom, chosenWritten) follows
// only committed transactions: a transaction body notes what it wrote (Committed) and committed()
// takes it over once the commit resolves. A body runs before its commit, and a commit can fail (a
// disk that refuses the sync): had the body moved the snapshot prefix itself, later transactions
// would trim records below a prefix no durable snapshot covers, and a retry of that snapshot would
// be taken for saved. A body that runs before an earlier transaction's commit resolved sees the
// memory as of the last commit: lower than the truth, which only trims less; what it must know
// exactly (the snapshot the log names) it reads from its own transaction.
//
// With `fsync: false` (the `--fsync off` experiment switch) nothing is synced at all; the caller
// must say so loudly (the node logs it at start and shows it in /status).
//
// The chosen prefix is the one thing written late. It only tells a restarting node where to
// start learning: if a crash takes back its latest value, the node restarts with a lower prefix
// and learns (or, as an acceptor, reports) those slots again, which is safe. So a Ready that
// carries nothing but a new chosen prefix costs no transaction and no fsync: the prefix rides on
// the next transaction that is written anyway (accepts, a promise, a snapshot, close). Under load
// that halves the fsyncs, since the chosen prefix moves on almost every Ready. Once a persist is
// known to have failed, no transaction writes it any more (persistFailed): a later Ready's prefix
// may count on what the failed one held.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeDirs } from './dirs.js';
import { open, type Database, type RootDatabase } from 'lmdb';
import type { Kernels } from '../kernels/types.js';
import { isDecodeError } from '../kernels/types.js';
import { holdsNothing, type HardState, type LogRecord, type ProtocolName, type Ready, type Restored, type Snapshot } from '../protocol/types.js';

/** The parts of a Ready that storage writes. */
export type PersistBatch = Pick<Ready, 'snapshot' | 'hardState' | 'truncateFrom' | 'records' | 'chosenPrefix'> & Partial<Pick<Ready, 'rejoined'>>;

export interface LogStoreOptions {
  /** The node's data directory; created if missing. */
  dir: string;
  /** True: every persist is synced before it resolves. False: never synced (experiments only). */
  fsync: boolean;
  kernels: Kernels;
  /**
   * The node starts a new cluster (`--new-cluster`): a log that holds nothing (a new one, or one
   * whose node crashed before it voted) comes back with Restored.newCluster, so its core votes as
   * soon as a majority of members say they hold nothing either. Either way a new log is marked
   * rejoining (see the header): a new log may be a wiped one.
   */
  newCluster?: boolean;
  /**
   * A new log's file is grown to this many bytes of zeros when it is created (0, the default: it
   * grows as LMDB writes). An fdatasync that writes into blocks the file already has is cheaper
   * than one that also grows it (and so changes the file's size and blocks): 0.14 against 0.20 ms
   * per 8 KiB here, and HTTP at 256 connections did 42k writes/s against 39k (see the README).
   * LMDB fills the zeros as it would grow the file (compactDir shrinks it to its live pages).
   */
  preallocateBytes?: number;
  /**
   * Whose log this is. An acceptor's promises and accepts are only safe under the identity they
   * were made under: the same directory started as another node id, in another member set (a
   * member list of itself alone makes a second cluster) or under the other protocol (which reads
   * the hard state as something else) breaks agreement. A new log records it; an open of a log
   * with another one is refused (StorageError). Addresses are not part of it: a member may move.
   * Absent (tools, tests of the store alone): nothing is written or checked.
   */
  identity?: LogIdentity;
}

/** See LogStoreOptions.identity. */
export interface LogIdentity {
  /** This node's id. Invariant: one of members. */
  id: number;
  protocol: ProtocolName;
  /** Every member's id. */
  members: number[];
}

/** The identity meta value's format version, and each protocol's code in it. */
const identityVersion = 1;
const protocolCodes: Record<ProtocolName, number> = { multipaxos: 1, raft: 2 };

const describeIdentity = (x: LogIdentity): string => `node ${x.id} of members ${x.members.join(',')} running ${x.protocol}`;

/** A record that failed its CRC or could not be decoded: reported, never served. */
export interface CorruptRecord {
  /** The LMDB key it was stored under ('hard', 'chosen', 'snapshot' or a position). */
  key: string | number;
  reason: string;
}

/** What `load()` gives back after a restart. */
export interface Loaded {
  /** What the core restarts from; restored.snapshot is the latest snapshot (null if none or corrupt). */
  restored: Restored;
  /** Records refused at load; they are left out of `restored.records`. */
  corrupt: CorruptRecord[];
  /**
   * Chosen positions with no record at all (neither served nor reported corrupt): at or above the
   * snapshot's applied prefix and below the chosen prefix; the first missingListMax of them. A
   * node must not treat them as a gap: they were chosen, and Raft would silently cut its log there.
   */
  missing: number[];
}

/**
 * What one transaction wrote that the store also keeps in memory; 0: nothing. Filled in by the
 * transaction's body, taken over by committed() once the commit resolved (see the header).
 */
interface Committed {
  /** The prefix of the snapshot the log names after this transaction. */
  snapshotPrefix: number;
  /** Where the records below the snapshot are left after this transaction's trim. */
  trimFrom: number;
  /** The chosen prefix this transaction wrote. */
  chosen: number;
}

const nothingCommitted = (): Committed => ({ snapshotPrefix: 0, trimFrom: 0, chosen: 0 });

/** A user-caused or disk-caused storage error with a clear message (never an assertion). */
export class StorageError extends Error {
  override name = 'StorageError';
}

/**
 * The LMDB file is damaged in a way LMDB itself would not survive (see checkLmdbFile): refused
 * before LMDB reads it. Damage like what load() refuses, unlike a directory in use.
 */
export class LogDamagedError extends StorageError {
  override name = 'LogDamagedError';
}

/** A persist or snapshot asked for once close() began: refused, nothing of it written. */
export class LogClosingError extends StorageError {
  override name = 'LogClosingError';
}

/**
 * LMDB's map: address space reserved for the file, not disk. It bounds nothing: lmdb-js grows the
 * map when a write needs more. What bounds the log is the snapshots (the log is trimmed below each).
 */
const mapBytes = 64 * 1024 * 1024 * 1024;
/** The longest wait slowDisk() may set: a test's slow disk, not a stopped one. */
export const diskDelayMsMax = 10_000;
/**
 * Records below the snapshot that a transaction deletes, oldest first (see trimSync): this many,
 * plus trimPerRecord per record it writes, so that a small transaction carries a small share. A
 * deletion costs about 2.8 us of this thread here (the key read and removeSync of an 18 KB
 * record): 256 in every transaction put 0.7 ms on each of some 40 one-record writes per snapshot
 * at one client; at 256 clients (117 records per transaction) this is 266, as before.
 */
const trimPerTransaction = 32;
const trimPerRecord = 2;
const crcBytes = 4;

/** The LMDB file of the log in data directory `dir`. */
const logFile = (dir: string): string => path.join(dir, 'paxlog.mdb');

/** The file of the snapshot at `prefix`; every file of a log starts with the LMDB file's name. */
const snapshotFile = (dir: string, prefix: number): string => `${logFile(dir)}.snapshot-${prefix}`;
const snapshotFilePattern = /^paxlog\.mdb\.snapshot-(\d+)(\.tmp)?$/;
/** The first number of a 'snapshot' meta value that names a snapshot file (below any prefix of the older format). */
const snapshotFileVersion = -2;
/**
 * A 'snapshot' meta value's header (prefix f64, ballot f64; after the version in one that names a
 * file), or why it is bad. 16 bytes of header in the older format: one from before compaction had
 * 8, which is refused here, not read past its end.
 */
function snapshotHeader(meta: DataView): { prefix: number; ballot: number; named: boolean } | CorruptRecord {
  const named = meta.byteLength === 40 && meta.getFloat64(0, true) === snapshotFileVersion;
  const at = named ? 8 : 0;
  const prefix = meta.byteLength >= at + 16 ? meta.getFloat64(at, true) : NaN;
  const ballot = meta.byteLength >= at + 16 ? meta.getFloat64(at + 8, true) : NaN;
  if (!Number.isSafeInteger(prefix) || prefix < 2 || !Number.isSafeInteger(ballot) || ballot < 0) {
    return { key: 'snapshot', reason: `bad header (${meta.byteLength} bytes, prefix ${prefix}, ballot ${ballot})` };
  }
  return { prefix, ballot, named };
}

// LMDB's file layout, as lmdb-js 3 builds it (dependencies/lmdb/libraries/liblmdb/mdb.c), little-
// endian. Every page starts with MDB_page_header, 24 bytes: pgno u64, txnid u64, pad u16, flags
// u16, lower u16 (where the node index, which follows the header, ends), upper u16 (an overflow
// page has a page count u32 there instead). Pages 0 and 1 are meta pages; LMDB uses the one with
// the higher txnid. After the header, MDB_meta: magic u32, version u32, address u64, mapsize u64,
// the free-page and main databases (MDB_db, 48 bytes each: pad u32 (the free one's holds the page
// size), flags u16, depth u16, branch, leaf and overflow page counts u64, entries u64, root u64),
// last_pg u64, txnid u64. A node, at header + its index entry: lo u16, hi u16, flags u16, key size
// u16, the key, then in a leaf the data (lo and hi: its size), which is the first page of its
// overflow pages (u64) with F_BIGDATA, a named database's MDB_db with F_SUBDATA; in a branch page
// lo, hi and flags hold the child's pgno.
const lmdbPage = { headerBytes: 24, flagsAt: 18, lowerAt: 20, branch: 0x01, leaf: 0x02, none: 0xffffffffffffffffn };
const lmdbMeta = { magicAt: 24, versionAt: 28, pageSizeAt: 48, freeDbAt: 48, mainDbAt: 96, txnidAt: 152, bytes: 160, magic: 0xbeefc0de, dataVersion: 2 };
const lmdbDb = { rootAt: 40, bytes: 48 };
const lmdbNode = { bytes: 8, bigData: 0x01, subData: 0x02 };

const damaged = (file: string, reason: string): LogDamagedError =>
  new LogDamagedError(`the log file ${file} is damaged: ${reason}; refusing to open it`);

/**
 * Refuse, before LMDB opens it, a file LMDB would crash on rather than report: lmdb-js maps the
 * file and follows its pages, so a file of zeros or random bytes ends the process with SIGSEGV,
 * and one cut short (a copy or restore that stopped early) with SIGBUS, in open(), openDB() or a
 * later read. So both meta pages must carry LMDB's magic and data version, and every page the
 * latest one reaches (the pages of each database's B-tree, and the overflow pages of large values)
 * must lie inside the file, a B-tree page saying so in its header, and each node of a page (its key,
 * and its value unless that has overflow pages) inside that page. (The file's size against the
 * meta's last page would not do: a transaction may take pages at the end and free them again
 * unwritten, which leaves a whole log shorter than that, as lmdb-js 3.5.6 does here.) This reads
 * each B-tree page once (a 626 MB log: 0.2 s here, against 2 s for load()); what a page holds past
 * its structure is for the records' CRCs. An empty file passes: LMDB makes it a new log, which
 * load() then finds without the hard state a log that existed has.
 */
function checkLmdbFile(file: string): void {
  const fd = fs.openSync(file, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return;
    const metaPage = (page: number, pageSize: number): Buffer => {
      const m = Buffer.alloc(lmdbMeta.bytes);
      if (fs.readSync(fd, m, 0, m.byteLength, page * pageSize) < m.byteLength) throw damaged(file, `${size} bytes, too short to hold LMDB's meta page ${page}`);
      if (m.readUInt32LE(lmdbMeta.magicAt) !== lmdbMeta.magic) throw damaged(file, `meta page ${page} does not carry LMDB's magic number (not an LMDB file, or overwritten)`);
      const version = m.readUInt32LE(lmdbMeta.versionAt) & 0xffff;
      if (version !== lmdbMeta.dataVersion) throw damaged(file, `meta page ${page} says LMDB data version ${version}, not ${lmdbMeta.dataVersion}`);
      return m;
    };
    const meta0 = metaPage(0, 0);
    const pageSize = meta0.readUInt32LE(lmdbMeta.pageSizeAt);
    if (pageSize < 512 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) throw damaged(file, `meta page 0 says pages of ${pageSize} bytes`);
    const meta1 = metaPage(1, pageSize);
    const latest = meta1.readBigUInt64LE(lmdbMeta.txnidAt) > meta0.readBigUInt64LE(lmdbMeta.txnidAt) ? meta1 : meta0;

    const pages = Math.floor(size / pageSize);
    const beyond = (pgno: number): LogDamagedError =>
      damaged(file, `${size} bytes, cut short: it lacks page ${pgno} (of ${pageSize} bytes), which holds live data`);
    const todo: number[] = [];
    const database = (from: Buffer, at: number): void => {
      const root = from.readBigUInt64LE(at + lmdbDb.rootAt);
      if (root !== lmdbPage.none) todo.push(Number(root));
    };
    database(latest, lmdbMeta.freeDbAt);
    database(latest, lmdbMeta.mainDbAt);
    const page = Buffer.alloc(pageSize);
    for (let visited = 0; todo.length > 0; visited++) {
      const pgno = todo.pop()!;
      if (pgno >= pages) throw beyond(pgno);
      if (visited >= pages) throw damaged(file, 'its B-tree pages link in a cycle');
      fs.readSync(fd, page, 0, pageSize, pgno * pageSize);
      const flags = page.readUInt16LE(lmdbPage.flagsAt);
      if (page.readBigUInt64LE(0) !== BigInt(pgno) || (flags & (lmdbPage.branch | lmdbPage.leaf)) === 0) {
        throw damaged(file, `page ${pgno} is not the B-tree page LMDB points to`);
      }
      const nodes = page.readUInt16LE(lmdbPage.lowerAt) >> 1;
      if (lmdbPage.headerBytes + 2 * nodes > pageSize) throw damaged(file, `page ${pgno} indexes a node past its end`);
      for (let i = 0; i < nodes; i++) {
        const at = lmdbPage.headerBytes + page.readUInt16LE(lmdbPage.headerBytes + 2 * i);
        if (at + lmdbNode.bytes > pageSize) throw damaged(file, `page ${pgno} indexes a node past its end`);
        const lo = page.readUInt16LE(at);
        const hi = page.readUInt16LE(at + 2);
        const nodeFlags = page.readUInt16LE(at + 4);
        const data = at + lmdbNode.bytes + page.readUInt16LE(at + 6);
        // A key, or a value held in the page, past the page's end: LMDB would read on past it
        // (past the end of the file, from the last page: SIGBUS).
        if (data > pageSize) throw damaged(file, `page ${pgno} holds a node past its end`);
        if (flags & lmdbPage.branch) {
          todo.push(lo + hi * 0x10000 + nodeFlags * 0x100000000);
        } else if ((nodeFlags & (lmdbNode.subData | lmdbNode.bigData)) === 0) {
          if (data + lo + hi * 0x10000 > pageSize) throw damaged(file, `page ${pgno} holds a node past its end`);
        } else {
          if (data + (nodeFlags & lmdbNode.subData ? lmdbDb.bytes : 8) > pageSize) throw damaged(file, `page ${pgno} holds a node past its end`);
          if (nodeFlags & lmdbNode.subData) database(page, data);
          else {
            const first = Number(page.readBigUInt64LE(data));
            const count = Math.floor((lmdbPage.headerBytes - 1 + lo + hi * 0x10000) / pageSize) + 1; // mdb.c's OVPAGES
            if (first + count > pages) throw beyond(first + count - 1);
          }
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether data directory `dir` holds a log (a node that ran there). */
export const logExists = (dir: string): boolean => fs.existsSync(logFile(dir));

/**
 * Grow `file` (LMDB's, just created) to `bytes` with zeros written past its end, then sync. LMDB
 * writes only the pages it has used, so the zeros are free space to it. If the disk refuses, the
 * file is cut back to its size before and a StorageError says so: the log itself is intact.
 */
function preallocate(file: string, bytes: number, sync: boolean): void {
  const fd = fs.openSync(file, 'r+');
  const size = fs.fstatSync(fd).size;
  try {
    const zeros = Buffer.alloc(Math.min(bytes, 1024 * 1024));
    for (let at = size; at < bytes; at += zeros.byteLength) fs.writeSync(fd, zeros, 0, Math.min(zeros.byteLength, bytes - at), at);
    if (sync) fs.fsyncSync(fd);
  } catch (err) {
    fs.ftruncateSync(fd, size);
    throw new StorageError(`could not preallocate ${bytes} bytes for the log (${(err as Error).message}); ` +
      'free some space or preallocate less (serve --preallocate-mib)');
  } finally {
    fs.closeSync(fd);
  }
}

export class LogStore {
  /** The LMDB environment; null once closed. */
  private root: RootDatabase | null;
  /** Positions -> encoded records. */
  private readonly log: Database<Uint8Array, number>;
  /** Hard state, chosen prefix, snapshot. */
  private readonly meta: Database<Buffer, string>;
  private readonly kernels: Kernels;
  /** Whether persists are synced; false only for experiments. */
  readonly fsync: boolean;
  /** LogStoreOptions.newCluster. */
  private readonly newCluster: boolean;
  /** Records refused since open (load and get); reported in /status and /metrics. */
  corruptCount = 0;
  /**
   * LMDB write transactions committed since open: each is one sync (fsync on). Not the persists:
   * lmdb-js commits the transactions queued together as one (counted by its aftercommit event),
   * and an inline persist is a transaction of its own.
   */
  commits = 0;
  /**
   * The prefix of the latest snapshot loaded or named by a committed transaction (1: none). Records
   * below it are never served. Moved only by committed(): see the header.
   */
  snapshotPrefix = 1;
  /**
   * Records below snapshotPrefix are left only at or above this (see trimSync); moved only by
   * committed(). Invariant: trimFrom <= snapshotPrefix.
   */
  private trimFrom = 1;
  /** The highest chosen prefix given to persist(); written with the next transaction. */
  private chosenPending = 0;
  /** The chosen prefix last committed; moved only by committed(). Invariant: chosenWritten <= chosenPending. */
  private chosenWritten = 0;
  /** The LMDB file was there before this open, so it holds a hard state unless one was lost. */
  private readonly existed: boolean;
  /** The lock file naming this process as the directory's one user; removed by close(). */
  private lockFile = '';
  private readonly dir: string;
  /** A snapshot file being written for persist() (an installed snapshot): later persists wait for its transaction to be queued. */
  private snapshotBarrier: Promise<unknown> | null = null;
  /** The saveSnapshot() in progress, if any (at most one: the node takes one snapshot at a time). */
  private snapshotSaving: Promise<boolean> | null = null;
  /** The persists asked for and not yet settled: close() lets them finish first. */
  private readonly persisting = new Set<Promise<boolean>>();
  /** close(), once asked for (null before): from then on persists and snapshots are refused (LogClosingError). */
  private closing: Promise<void> | null = null;
  /**
   * A persist failed. A later Ready's chosen prefix may count on what it held, so no chosen prefix
   * is written from then on (a lower one than the truth is safe: see the header).
   */
  private persistFailed = false;
  /**
   * The number of the last persist that asked for a transaction (null until the first, then read
   * from the log's 'seq'). Each transaction checks that 'seq' holds its predecessor's number and
   * writes its own, so it commits only if every earlier one did: lmdb-js commits queued
   * transactions separately, and one whose fsync failed left the later ones to commit without it
   * (a Raft truncation's old tail then stayed, spliced under newer entries, after a restart).
   */
  private seqAsked: number | null = null;
  /**
   * Tests only (slowDisk()): every transaction waits this long before its commit, and the waits run
   * one after another, as writes queue at a slow disk. Invariant: 0 <= diskDelayMs <= diskDelayMsMax.
   */
  private diskDelayMs = 0;
  /** The end of the last wait asked for: each transaction waits behind every earlier one, so none overtakes another whatever the delay was when each was asked for. */
  private diskQueue: Promise<void> = Promise.resolve();
  /** Transactions in diskQueue. While any is, no persist is written inline: it would overtake them. Invariant: >= 0. */
  private diskWaiting = 0;
  /**
   * The persists asked for whose success is not yet known, oldest first, each with its Ready's
   * chosen prefix. A transaction body may run before an earlier transaction's commit is known to
   * have failed (queued behind it, or batched with it), so it writes its own chosen prefix only when
   * it is the oldest here; else the highest prefix of persists known durable with all before them.
   */
  private readonly unsettled: { chosen: number; durable: boolean }[] = [];
  /** The chosen prefix of the latest persist that is durable, every earlier one with it. */
  private chosenDurable = 0;

  private constructor(opts: LogStoreOptions) {
    this.kernels = opts.kernels;
    this.fsync = opts.fsync;
    this.newCluster = opts.newCluster === true;
    this.dir = opts.dir;
    const file = logFile(opts.dir);
    this.existed = fs.existsSync(file);
    if (this.existed) checkLmdbFile(file);
    this.root = open({
      path: file,
      // Durable before a transaction's promise resolves; see the header comment.
      overlappingSync: false,
      noSync: !opts.fsync,
      // After a crash, restore only what was synced (matters only if overlappingSync is ever on).
      safeRestore: true,
      // No event-turn batches: lmdb-js drops the promise of a batch's opening instruction, so a
      // failed commit left an unhandled rejection however well commit() handled its own, and Node
      // ends the process on it. Every write here is a transaction, queued in the order it is asked
      // for either way; with at most five outstanding (lmdb-js's txnStartThreshold; the node keeps
      // up to readysOutstandingMax (4) persists and one snapshot save in flight) those asked for in
      // one turn still start together at the next, as the batch did.
      eventTurnBatching: false,
      compression: false,
      maxDbs: 4,
      mapSize: mapBytes,
    } as Parameters<typeof open>[0]);
    this.log = this.root.openDB<Buffer, number>({ name: 'log', encoding: 'binary' });
    this.meta = this.root.openDB<Buffer, string>({ name: 'meta', encoding: 'binary' });
    // A failed commit is reported without a transaction id.
    this.root.on('aftercommit', ({ txnId }: { txnId?: number }) => {
      if (txnId !== undefined) this.commits++;
    });
    // The lock file (takeLock) knows processes by pid, so it cannot see a node in another PID
    // namespace (another container on the same volume): there the holder's pid names nobody, and
    // the lock was taken over while that node ran. LMDB's reader table can: every process that has
    // read this log holds a slot (a running node always does), kept live by a byte-range lock on the
    // LMDB lock file, which readerCheck() tests and clears if its holder died. This process has read
    // nothing yet, so any slot is another process's.
    this.root.readerCheck();
    const readers = [...this.root.readerList().matchAll(/^\s*(\d+)\s+\S+\s+\S+\s*$/gm)].map((m) => m[1]);
    if (readers.length > 0) {
      this.root.close();
      this.root = null;
      if (readers.includes(String(process.pid))) {
        throw new StorageError(`${opts.dir} is open in this process already, through another LMDB handle that read it; one node per data directory`);
      }
      throw new StorageError(`${opts.dir} is in use by another process (LMDB lists a reader with pid ${[...new Set(readers)].join(', ')} ` +
        'in its own PID namespace: a node in another container on this volume?); one node per data directory');
    }
    // A new log's first write: from here on, a log without a hard state lost it (see load()).
    // A new directory cannot tell a first start from a wiped disk: it rejoins without voting.
    if (!this.existed) {
      this.root.transactionSync(() => {
        this.putMetaSync('hard', [0, 0]);
        if (opts.identity !== undefined) this.putMetaSync('identity', identityNumbers(opts.identity));
        this.putMetaSync('rejoin', [Date.now()]);
      });
    }
  }

  static open(opts: LogStoreOptions): LogStore {
    let made: string[];
    try {
      made = makeDirs(opts.dir);
    } catch (err) {
      throw new StorageError(`cannot make the data directory ${opts.dir}: ${(err as Error).message}`);
    }
    const lock = takeLock(opts.dir);
    const lockFile = lock.file;
    try {
      const store = new LogStore(opts);
      store.lockFile = lockFile;
      // No other process reads the log (the constructor checked): a stale lock replaced was stale.
      if (lock.aside !== null) fs.rmSync(lock.aside, { force: true });
      lock.aside = null;
      if (opts.identity !== undefined) {
        try {
          store.checkIdentity(opts.identity);
        } catch (err) {
          store.closeSync();
          throw err;
        }
      }
      // A new log, and one shorter than that (`paxlog compact` writes a file only as long as its
      // data): LMDB takes the pages past its last one as free, and syncs then need not grow the file.
      if ((opts.preallocateBytes ?? 0) > fs.statSync(logFile(opts.dir)).size) {
        try {
          preallocate(logFile(opts.dir), opts.preallocateBytes!, opts.fsync);
        } catch (err) {
          store.closeSync();
          throw err;
        }
      }
      // The new file's name must survive a crash as its synced contents do, and so must the name of
      // each directory made for it: a node started with --new-cluster votes from its first start,
      // and a directory lost with its log would bring it back voting with nothing.
      if (!store.existed && opts.fsync) {
        syncDirSync(opts.dir);
        for (const d of made) syncDirSync(path.dirname(d));
      }
      return store;
    } catch (err) {
      releaseLock(lockFile, lock.aside);
      if (err instanceof LogDamagedError) throw err; // names the file: the node tells it from other failures
      throw new StorageError(`cannot open the log in ${opts.dir}: ${(err as Error).message}`);
    }
  }

  /**
   * Read everything back after a restart. Fatal, in the manner of Paxos Made Live, because a node
   * that votes without what it promised can break agreement: a corrupt hard state, and a missing
   * one (a new log gets an all-zero hard state as its first write, so no log that existed before
   * this open lacks one; the only window is a crash inside that first write, which errs on the
   * refusing side). Corrupt records (`corrupt`) and chosen slots
   * with no record (`missing`) are reported and left out; the caller decides (the node refuses).
   */
  load(): Loaded {
    const corrupt: CorruptRecord[] = [];
    const hard = this.readMeta('hard', 16);
    if (isFailure(hard)) throw new StorageError(`hard state is corrupt: ${hard.reason}; refusing to start`);
    const hardState: HardState = hard === null
      ? { ballot: 0, vote: 0 }
      : { ballot: hard.getFloat64(0, true), vote: hard.getFloat64(8, true) };

    const chosen = this.readMeta('chosen', 8);
    let chosenPrefix = 1;
    if (isFailure(chosen)) corrupt.push({ key: 'chosen', reason: chosen.reason });
    else if (chosen !== null) chosenPrefix = chosen.getFloat64(0, true);
    this.chosenWritten = chosenPrefix;
    this.chosenPending = Math.max(this.chosenPending, chosenPrefix);

    // A corrupt snapshot is not skipped quietly: the records below its prefix are gone, so the
    // positions it covered show up in `missing` below and the node refuses to start.
    let snapshot: Snapshot | null = null;
    const snap = this.readMeta('snapshot', -1);
    if (isFailure(snap)) corrupt.push({ key: 'snapshot', reason: snap.reason });
    else {
      const read = snap === null ? null : this.readSnapshot(snap);
      if (read !== null && 'reason' in read) corrupt.push(read);
      else {
        snapshot = read;
        // Files a crash left behind (a temporary one, or one no transaction came to name); a
        // damaged snapshot keeps every file for whoever looks into it.
        this.removeSnapshotFiles(snapshot?.prefix ?? 0, true);
      }
    }
    const appliedPrefix = snapshot?.prefix ?? 1;
    this.snapshotPrefix = appliedPrefix;

    const keysFromApplied = this.checkKeys(appliedPrefix);
    const records: LogRecord[] = [];
    let scanned = 0;
    for (const { key, value } of this.log.getRange({ start: appliedPrefix })) {
      scanned++;
      const r = this.decode(key, value);
      if ('reason' in r) corrupt.push(r);
      else records.push(r);
    }
    if (scanned !== keysFromApplied) {
      throw new LogDamagedError(`the log's index is damaged: a search from position ${appliedPrefix} found ${scanned} records, a walk of every key ${keysFromApplied}; refusing to start`);
    }
    this.corruptCount += corrupt.length;
    // A snapshot covers applied, hence chosen, slots; the written prefix may lag it (see above).
    chosenPrefix = Math.max(chosenPrefix, appliedPrefix);

    if (hard === null) {
      // A log that existed before this open, or holds anything, had a hard state (written when the
      // log was created). Without it the node would promise or vote as if it never had.
      const remembered = records.length + corrupt.length > 0 || chosen !== null || snap !== null;
      if (remembered || this.existed) {
        throw new StorageError(`hard state is missing (the promised ballot; Raft: term and vote) while the log holds ` +
          `${records.length + corrupt.length} records and chosen prefix ${chosenPrefix}: the node forgot what it promised; refusing to start`);
      }
      this.putMetaSync('hard', [0, 0]); // only a log that predates this marker gets here
    }
    const missing = missingBetween(appliedPrefix, chosenPrefix, records, corrupt);
    // A damaged mark errs on the safe side: the node rejoins again, which costs one round trip.
    const rejoining = this.meta.getBinary('rejoin') !== undefined;
    const restored: Restored = { hardState, records, chosenPrefix, appliedPrefix, snapshot, rejoining };
    if (rejoining && this.newCluster && corrupt.length === 0 && holdsNothing(restored)) restored.newCluster = true;
    return { restored, corrupt, missing };
  }

  /**
   * Walk every key of the log in LMDB's order and return how many are at or above `from`. LMDB's
   * pages carry no checksum, and a record's CRC covers its value, not the key it is stored under: a
   * damaged key can hide a record under a key that is no position, or break the order a search
   * from a position relies on, so that it passes intact records by, unreported. A walk follows
   * the pages, not the keys: every key must be a position, each above the one before, and there
   * must be as many as LMDB counts; else the log is refused as damaged (LogDamagedError).
   */
  private checkKeys(from: number): number {
    const damaged = (what: string): LogDamagedError => new LogDamagedError(`the log's index is damaged: ${what}; refusing to start`);
    let prev = 0;
    let count = 0;
    let fromCount = 0;
    try {
      for (const key of this.log.getKeys({}) as Iterable<unknown>) {
        if (!(typeof key === 'number' && Number.isSafeInteger(key) && key > prev)) throw damaged(`key ${JSON.stringify(key)} follows ${prev === 0 ? 'nothing' : `position ${prev}`}`);
        prev = key;
        count++;
        if (key >= from) fromCount++;
      }
    } catch (err) {
      if (err instanceof LogDamagedError) throw err;
      throw damaged(`its keys cannot be read (${(err as Error).message})`);
    }
    const entries = (this.log.getStats() as { entryCount?: number }).entryCount;
    if (entries !== count) throw damaged(`LMDB counts ${entries} records, a walk of its keys ${count}`);
    return fromCount;
  }

  /** One record, CRC-checked; a corrupt one is counted and reported as null, never served. */
  get(position: number): LogRecord | null {
    this.db();
    if (position < this.snapshotPrefix) return null;
    const bytes = this.log.getBinary(position);
    if (bytes === undefined) return null;
    const r = this.decode(position, bytes);
    if ('reason' in r) {
      this.corruptCount++;
      return null;
    }
    return r;
  }

  /**
   * Write one Ready's state in one transaction. Resolves when it is durable (fsync on) or
   * written (fsync off). Rejects with a StorageError if the disk refuses (full, I/O error).
   * A Ready with nothing but a chosen prefix writes nothing now (see the header comment).
   * Resolves to whether a transaction was written. `inline`: write and sync it on this thread
   * before returning (no hand-offs to lmdb-js's write thread and back, which cost more than the
   * sync itself when nothing else is queued); only when no other persist is in flight.
   * Once close() began, refused with a LogClosingError.
   */
  persist(b: PersistBatch, inline = false): Promise<boolean> {
    if (this.closing !== null) return Promise.reject(new LogClosingError(`the log in ${this.dir} is closing: persist refused, nothing written`));
    const p = this.persistNow(b, inline && !this.diskSlow);
    this.persisting.add(p);
    const settled = (): void => void this.persisting.delete(p);
    p.then(settled, settled);
    return p;
  }

  private async persistNow(b: PersistBatch, inline: boolean): Promise<boolean> {
    if (b.chosenPrefix > this.chosenPending) this.chosenPending = b.chosenPrefix;
    // The prefix as of this Ready: with several persists queued, the transaction body runs later,
    // when chosenPending may already hold a later Ready's prefix, whose records are not in this
    // transaction. Writing that one here could leave a durable prefix above durable records.
    const chosen = this.chosenPending;
    const mine = { chosen, durable: false };
    this.unsettled.push(mine);
    if (b.snapshot === null && b.hardState === null && b.records.length === 0 && b.truncateFrom === 0 && b.rejoined !== true) {
      this.settledDurable(mine);
      return false;
    }
    const root = this.db();
    this.seqAsked ??= this.storedSeq();
    const seqBefore = this.seqAsked;
    const seq = ++this.seqAsked;
    try {
      // Persists keep their order: none is queued before an earlier one's snapshot file is written.
      while (this.snapshotBarrier !== null) await this.snapshotBarrier;
      let crc = 0;
      if (b.snapshot !== null) {
        assert.ok(!inline, 'a snapshot is never persisted inline');
        const written = this.writeSnapshotFile(b.snapshot);
        this.snapshotBarrier = written.catch(() => undefined);
        try {
          crc = await written;
        } finally {
          this.snapshotBarrier = null;
        }
      }
      const w = nothingCommitted();
      const write = (): void => {
        const stored = this.storedSeq();
        if (stored !== seqBefore) throw new StorageError(`an earlier write (number ${seqBefore}) did not commit (the log holds ${stored}): this one (${seq}) is refused`);
        this.putSeqSync(seq);
        if (b.snapshot !== null && !this.saveSnapshotSync(b.snapshot, crc, w)) {
          assert.fail(`snapshot at ${b.snapshot.prefix} after one at ${w.snapshotPrefix}`);
        }
        this.trimSync(trimPerTransaction + trimPerRecord * b.records.length, w);
        if (b.rejoined === true) this.meta.removeSync('rejoin');
        if (b.hardState !== null) {
          this.putMetaSync('hard', [b.hardState.ballot, b.hardState.vote]);
        }
        if (b.truncateFrom > 0) this.truncateSync(b.truncateFrom);
        let prev = 0;
        for (const r of b.records) {
          assert.ok(r.position > prev, `records out of order: ${r.position} after ${prev}`);
          prev = r.position;
          // encodeRecord's view is valid until its next call; putSync copies it into the transaction now.
          this.log.putSync(r.position, this.kernels.encodeRecord(r));
        }
        // An earlier persist not yet known durable may still fail: its records are not counted on.
        this.writeChosenSync(this.unsettled[0] === mine ? chosen : this.chosenDurable, w);
      };
      if (inline) {
        root.transactionSync(write);
        this.commits++;
      } else await this.commit(write);
      this.committed(w);
      this.settledDurable(mine);
    } catch (err) {
      this.persistFailed = true;
      throw new StorageError(`persist failed: ${(err as Error).message}`);
    }
    if (b.snapshot !== null) this.removeSnapshotFiles(this.snapshotPrefix, false);
    return true;
  }

  /** A persist is durable: the chosen prefixes of those durable with every earlier one become writable. */
  private settledDurable(p: { chosen: number; durable: boolean }): void {
    p.durable = true;
    while (this.unsettled.length > 0 && this.unsettled[0].durable) {
      this.chosenDurable = Math.max(this.chosenDurable, this.unsettled.shift()!.chosen);
    }
  }

  /**
   * Save the node's own snapshot, in the background (see the header comment): its file, then a
   * transaction queued behind the persists asked for so far. Resolves to false when a later
   * snapshot was saved first (an installed one), which leaves this one out. One at a time.
   */
  saveSnapshot(snap: Snapshot): Promise<boolean> {
    if (this.closing !== null) return Promise.reject(new LogClosingError(`the log in ${this.dir} is closing: snapshot at ${snap.prefix} refused`));
    assert.ok(this.snapshotSaving === null, 'one snapshot saved at a time');
    const saving = this.saveSnapshotFileThenMeta(snap).finally(() => {
      this.snapshotSaving = null;
    });
    this.snapshotSaving = saving;
    return saving;
  }

  private async saveSnapshotFileThenMeta(snap: Snapshot): Promise<boolean> {
    const w = nothingCommitted();
    let saved: boolean;
    try {
      const crc = await this.writeSnapshotFile(snap);
      saved = await this.commit(() => {
        const named = this.saveSnapshotSync(snap, crc, w);
        this.trimSync(trimPerTransaction, w);
        return named;
      });
    } catch (err) {
      // The files stay: the one the log names is still the latest durable snapshot, and this one's
      // (if it got as far as its name) is rewritten by a retry, or removed by the next load.
      throw new StorageError(`saving the snapshot at ${snap.prefix} failed: ${(err as Error).message}`);
    }
    this.committed(w);
    this.removeSnapshotFiles(this.snapshotPrefix, false);
    return saved;
  }

  /**
   * Write a snapshot's state to its file, durably, by a temporary name; resolves to its CRC32C.
   * On failure (a full disk) the temporary file is removed, as far as it can be.
   */
  private async writeSnapshotFile(snap: Snapshot): Promise<number> {
    assert.ok(Number.isSafeInteger(snap.prefix) && snap.prefix >= 2, `snapshot prefix ${snap.prefix}`);
    const crc = this.kernels.crc32c(snap.bytes) >>> 0;
    const file = snapshotFile(this.dir, snap.prefix);
    const tmp = `${file}.tmp`;
    try {
      const out = await fs.promises.open(tmp, 'w');
      try {
        await out.writeFile(snap.bytes);
        if (this.fsync) await out.datasync();
      } finally {
        await out.close();
      }
      await fs.promises.rename(tmp, file);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      throw err;
    }
    if (this.fsync) await syncDir(this.dir);
    return crc;
  }

  /**
   * Inside a transaction: point the meta at the snapshot's file, unless the log names one at or
   * above its prefix already (a snapshot installed meanwhile); returns whether it did. Either way
   * `w` notes the prefix the log names after this transaction; the records below it are trimmed
   * from here on. The log's own meta decides, not snapshotPrefix, which may lag a transaction that
   * is queued and not yet committed (see the header).
   */
  private saveSnapshotSync(snap: Snapshot, crc: number, w: Committed): boolean {
    const meta = this.readMeta('snapshot', -1);
    const header = meta === null || isFailure(meta) ? null : snapshotHeader(meta);
    const named = header === null || 'reason' in header ? 1 : header.prefix; // a damaged one names nothing (as in load())
    w.snapshotPrefix = Math.max(named, snap.prefix);
    if (snap.prefix <= named) return false;
    this.putMetaSync('snapshot', [snapshotFileVersion, snap.prefix, snap.ballot, snap.bytes.byteLength, crc]);
    return true;
  }

  /** Delete every record the snapshot replaced now, rather than a batch per transaction (compactDir). */
  private async trimAll(): Promise<void> {
    const snap = this.readMeta('snapshot', -1);
    if (snap === null || isFailure(snap)) return;
    const read = this.readSnapshot(snap);
    if ('reason' in read) return; // a damaged log is copied as it is
    this.snapshotPrefix = read.prefix;
    while (this.trimFrom < this.snapshotPrefix) {
      const w = nothingCommitted();
      await this.commit(() => this.trimSync(4096, w));
      this.committed(w);
    }
  }

  /**
   * Inside a transaction: delete up to `max` of the records the snapshot replaced (the one the log
   * names as of this transaction: the latest committed, or the one `w` names), noting in `w` where
   * the rest start. Until they are gone they take space and nothing else: load() and get() start
   * at the snapshot.
   */
  private trimSync(max: number, w: Committed): void {
    const below = Math.max(this.snapshotPrefix, w.snapshotPrefix);
    if (this.trimFrom >= below) return;
    const doomed = this.removeRecordsSync({ start: this.trimFrom, end: below, limit: max });
    w.trimFrom = doomed.length < max ? below : doomed[doomed.length - 1] + 1;
  }

  /** A transaction that wrote `w` is committed: the memory follows it (see the header). */
  private committed(w: Committed): void {
    this.snapshotPrefix = Math.max(this.snapshotPrefix, w.snapshotPrefix);
    this.trimFrom = Math.max(this.trimFrom, w.trimFrom);
    this.chosenWritten = Math.max(this.chosenWritten, w.chosen);
  }

  /** The snapshot a 'snapshot' meta value names (its file read and checked), or why it cannot be had. */
  private readSnapshot(meta: DataView): Snapshot | CorruptRecord {
    const header = snapshotHeader(meta);
    if ('reason' in header) return header;
    const { prefix, ballot, named } = header;
    if (!named) return { prefix, ballot, bytes: new Uint8Array(meta.buffer, meta.byteOffset + 16, meta.byteLength - 16).slice() };
    const length = meta.getFloat64(24, true);
    const crc = meta.getFloat64(32, true);
    const file = snapshotFile(this.dir, prefix);
    let bytes: Buffer;
    try {
      bytes = fs.readFileSync(file);
    } catch (err) {
      return { key: 'snapshot', reason: `cannot read ${file}: ${(err as Error).message}` };
    }
    if (bytes.byteLength !== length) return { key: 'snapshot', reason: `${file} holds ${bytes.byteLength} bytes, not ${length}` };
    if ((this.kernels.crc32c(bytes) >>> 0) !== crc) return { key: 'snapshot', reason: `${file}: CRC32C mismatch` };
    return { prefix, ballot, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  }

  /**
   * Remove the snapshot files below `keep` (`all`: every one but `keep`'s, temporary ones too,
   * which only load() may do: at run time an installed snapshot may be on its way in).
   */
  private removeSnapshotFiles(keep: number, all: boolean): void {
    for (const e of fs.readdirSync(this.dir, { withFileTypes: true })) {
      const m = snapshotFilePattern.exec(e.name);
      if (m === null || !e.isFile()) continue; // whatever else has the name is not ours to remove
      const prefix = Number(m[1]);
      if (all ? m[2] !== undefined || prefix !== keep : m[2] === undefined && prefix < keep) fs.rmSync(path.join(this.dir, e.name), { force: true });
    }
  }

  /**
   * Shrink a stopped node's log file to its live pages (LMDB's compacting copy), in place. Holds
   * the directory's lock throughout, so it refuses while a node runs on it; the copy is synced
   * before it replaces the original by a rename, so a crash leaves one whole file or the other.
   */
  static async compactDir(dir: string, kernels: Kernels): Promise<{ bytesBefore: number; bytesAfter: number }> {
    const file = path.join(dir, 'paxlog.mdb');
    if (!fs.existsSync(file)) throw new StorageError(`no log in ${dir} (no paxlog.mdb)`);
    const bytesBefore = fs.statSync(file).size;
    const store = LogStore.open({ dir, fsync: true, kernels });
    const lockFile = store.lockFile;
    store.lockFile = ''; // kept until the new file is in place
    const tmp = path.join(dir, `compacting-${process.pid}`);
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp);
      const copy = path.join(tmp, 'paxlog.mdb');
      try {
        await store.trimAll();
        await store.db().backup(copy, true);
      } finally {
        await store.close();
      }
      const fd = fs.openSync(copy, 'r+');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fs.renameSync(copy, file);
      await syncDir(dir);
      return { bytesBefore, bytesAfter: fs.statSync(file).size };
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      releaseLock(lockFile);
    }
  }

  /** Inside a transaction: write the chosen prefix if it moved since it was last committed (and no persist failed). */
  private writeChosenSync(chosen: number, w: Committed): void {
    if (chosen <= this.chosenWritten || this.persistFailed) return;
    this.putMetaSync('chosen', [chosen]);
    w.chosen = chosen;
  }

  /**
   * Let the persists and the snapshot save asked for so far finish, write the pending chosen
   * prefix, then close; persists and snapshots asked for from now on are refused. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.closeAfterWrites();
    return this.closing;
  }

  private async closeAfterWrites(): Promise<void> {
    // A persist may still be writing an installed snapshot's file: the pending chosen prefix counts
    // on it, and closing the log under it would fail it. So everything in flight finishes first, or
    // fails (a failed snapshot leaves files the next load removes).
    await Promise.allSettled([...this.persisting, this.snapshotSaving]);
    const root = this.root;
    if (root === null) return;
    if (this.chosenPending > this.chosenWritten) {
      const w = nothingCommitted();
      await this.commit(() => this.writeChosenSync(this.chosenPending, w)).then(() => this.committed(w), () => {
        // The prefix is only a hint for the next start; closing matters more.
      });
    }
    this.root = null;
    await root.close();
    if (this.lockFile !== '') releaseLock(this.lockFile);
  }

  /** Close at once without writing the pending chosen prefix (after a failed recovery); idempotent. */
  closeSync(): void {
    const root = this.root;
    if (root === null) return;
    this.root = null;
    void root.close();
    if (this.lockFile !== '') releaseLock(this.lockFile);
  }

  /**
   * Run `body` in a write transaction queued behind the ones asked for so far; resolves once it is
   * committed (and synced, see the header). Every asynchronous transaction goes through here: when
   * a commit fails (EIO, ENOSPC), lmdb-js rejects with only "Commit failed (see commitError for
   * details)" and hangs the cause on that error as a second rejected promise, `commitError`, which
   * nothing else handles, and Node 20 ends the process on an unhandled rejection. So the cause is
   * awaited here (which handles it) and thrown as a StorageError that names it.
   */
  private async commit<T>(body: () => T): Promise<T> {
    if (this.diskSlow) await this.diskTurn();
    try {
      return await this.db().transaction(body);
    } catch (err) {
      const commitError = (err as { commitError?: Promise<unknown> }).commitError;
      if (commitError === undefined) throw err; // no commit was tried (the body threw, or the log is closed)
      const cause = await commitError.then(() => err, (e: unknown) => e);
      throw new StorageError(`the commit failed: ${(cause as Error).message}`, { cause });
    }
  }

  /**
   * Tests only: make this log a slow disk. From now on every transaction waits `ms` before its
   * commit, behind the waits of those asked for earlier (0 heals: transactions already waiting keep
   * their turns). A process killed meanwhile loses what waited, as a slow disk loses what it had
   * not written yet.
   */
  slowDisk(ms: number): void {
    assert.ok(Number.isSafeInteger(ms) && ms >= 0 && ms <= diskDelayMsMax, `a disk delay of 0 to ${diskDelayMsMax} ms, not ${ms}`);
    this.diskDelayMs = ms;
  }

  /** The delay slowDisk() set (0: none). */
  get diskDelay(): number {
    return this.diskDelayMs;
  }

  private get diskSlow(): boolean {
    return this.diskDelayMs > 0 || this.diskWaiting > 0;
  }

  /** This transaction's turn at the slow disk: after every earlier one's, then the delay as it is now. */
  private diskTurn(): Promise<void> {
    const ms = this.diskDelayMs;
    this.diskWaiting++;
    const turn = this.diskQueue.then(() => new Promise<void>((resolve) => setTimeout(resolve, ms)));
    this.diskQueue = turn;
    return turn.finally(() => {
      this.diskWaiting--;
    });
  }

  private db(): RootDatabase {
    if (this.root === null) throw new StorageError('the log is closed');
    return this.root;
  }

  /** Inside a transaction: delete the records whose positions lie in the range, at most `limit` of them, oldest first (collected, then removed); returns their positions. */
  private removeRecordsSync(range: { start?: number; end?: number; limit?: number }): number[] {
    const doomed: number[] = [];
    for (const key of this.log.getKeys(range)) doomed.push(key);
    for (const key of doomed) this.log.removeSync(key);
    return doomed;
  }

  private truncateSync(fromPosition: number): void {
    this.removeRecordsSync({ start: fromPosition });
  }

  private decode(key: number, bytes: Uint8Array): LogRecord | CorruptRecord {
    const r = this.kernels.decodeRecord(bytes);
    if (isDecodeError(r)) return { key, reason: r.error };
    if (r.position !== key) return { key, reason: `record says position ${r.position}, stored under ${key}` };
    return r;
  }

  /**
   * Refuse a log recorded under another identity (LogStoreOptions.identity); a log from before
   * identities were recorded takes this one.
   */
  private checkIdentity(want: LogIdentity): void {
    const got = this.readMeta('identity', -1);
    if (isFailure(got)) throw new LogDamagedError(`the log's identity record is damaged (${got.reason})`);
    if (got === null) {
      this.root!.transactionSync(() => this.putMetaSync('identity', identityNumbers(want)));
      return;
    }
    const n = got.byteLength / 8;
    const numbers = Array.from({ length: n }, (_, i) => got.getFloat64(i * 8, true));
    const protocol = (Object.keys(protocolCodes) as ProtocolName[]).find((p) => protocolCodes[p] === numbers[2]);
    if (numbers[0] !== identityVersion || n < 4 || protocol === undefined) {
      throw new LogDamagedError(`the log's identity record is not one this version reads (${numbers.slice(0, 4).join(', ')})`);
    }
    if (numbers.join() !== identityNumbers(want).join()) {
      const was: LogIdentity = { id: numbers[1], protocol, members: numbers.slice(3) };
      throw new StorageError(`this log belongs to ${describeIdentity(was)}, and this start is ${describeIdentity(want)}: ` +
        'a data directory keeps the identity it was made with (its promises and accepts count for that node only); ' +
        'start it with that --id, those member ids in --peers and that --protocol, or give this node a new directory');
    }
  }

  private putMetaSync(key: string, numbers: number[]): void {
    // The numbers as f64, then their CRC32C (see the top of the file).
    const payloadBytes = numbers.length * 8;
    const out = Buffer.allocUnsafe(payloadBytes + crcBytes);
    numbers.forEach((n, i) => out.writeDoubleLE(n, i * 8));
    out.writeUInt32LE(this.kernels.crc32c(out.subarray(0, payloadBytes)) >>> 0, payloadBytes);
    this.meta.putSync(key, out);
  }

  /**
   * The last persist's number in the log's 'seq' (0 if none). Eight bytes and no CRC: it is read and
   * written in every transaction (as a CRC'd meta value it cost 14 us of CPU per transaction, about
   * a quarter of one without fsync; so, about 6), and a damaged one does no harm: the first persist
   * of a life takes whatever it reads as its predecessor's number.
   */
  private storedSeq(): number {
    const b = this.meta.getBinary('seq');
    return b === undefined || b.byteLength !== 8 ? 0 : b.readDoubleLE(0);
  }

  /** Write the persist's number (see storedSeq). */
  private putSeqSync(seq: number): void {
    seqBytes.writeDoubleLE(seq, 0);
    this.meta.putSync('seq', seqBytes);
  }

  /** A meta value's payload (CRC checked), null if absent, or a failure. `size` -1: any length >= 8. */
  private readMeta(key: string, size: number): DataView | null | CorruptRecord {
    const bytes = this.meta.getBinary(key);
    if (bytes === undefined) return null;
    const len = bytes.byteLength - crcBytes;
    if (size >= 0 ? len !== size : len < 8) return { key, reason: `length ${bytes.byteLength} is wrong` };
    const payload = new Uint8Array(bytes.buffer, bytes.byteOffset, len);
    const crc = bytes.readUInt32LE(len);
    if ((this.kernels.crc32c(payload) >>> 0) !== crc) return { key, reason: 'CRC32C mismatch' };
    return new DataView(payload.buffer.slice(payload.byteOffset, payload.byteOffset + len) as ArrayBuffer);
  }
}

/** The identity meta value's numbers (see the top of the file): members sorted, so their order in --peers does not matter. */
function identityNumbers(x: LogIdentity): number[] {
  return [identityVersion, x.id, protocolCodes[x.protocol], ...[...x.members].sort((a, b) => a - b)];
}

/** Sync a directory, so that a file made or renamed in it survives a crash. */
export function syncDirSync(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Sync a directory, so that a rename in it survives a crash. */
async function syncDir(dir: string): Promise<void> {
  const d = await fs.promises.open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

/**
 * The lock files this process holds, by device and inode (whatever path reached them), with the
 * text each was written with (an inode number freed by another process's takeover comes back). A lock
 * naming this process's pid that is not here was left by an earlier process with the same pid: a
 * node in a container is pid 1 again after a restart.
 */
const locksHeld = new Map<string, string>();
const fileId = (st: fs.Stats): string => `${st.dev}:${st.ino}`;
/** What a lock file says: its holder's pid on the first line, then a token of this take (an inode number comes back once freed). */
const lockText = (): string => `${process.pid}\n${crypto.randomBytes(8).toString('hex')}\n`;

/**
 * Claim the data directory for this process. Two live processes on one log would be two
 * acceptors sharing one set of promises, which breaks agreement; a lock left by a process that
 * died (kill -9) is taken over.
 */
function takeLock(dir: string): Lock {
  const file = path.join(dir, 'paxlog.lock');
  let aside: string | null = null;
  function refuse(message: string): never {
    if (aside !== null) fs.rmSync(aside, { force: true });
    throw new StorageError(message);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const text = lockText();
      fs.writeFileSync(file, text, { flag: 'wx' });
      locksHeld.set(fileId(fs.statSync(file)), text);
      return { file, aside };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') refuse(`cannot lock ${dir}: ${(err as Error).message}`);
    }
    let text: string;
    let id: string;
    try {
      const fd = fs.openSync(file, 'r');
      try {
        id = fileId(fs.fstatSync(fd));
        text = fs.readFileSync(fd, 'utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // released meanwhile
      refuse(`cannot lock ${dir}: ${(err as Error).message}`);
    }
    const holder = Number(text.split('\n')[0].trim());
    const live = holder === process.pid ? locksHeld.get(id) === text : isAlive(holder);
    if (Number.isInteger(holder) && holder > 0 && live) {
      refuse(`${dir} is in use by process ${holder} (${file}); one node per data directory`);
    }
    // Left by a process that is gone, as far as this PID namespace can tell. Another process that
    // found it so too may have removed it and taken the directory meanwhile: only the lock found
    // stale goes (moved aside, then read again: a new file may have the old one's inode, but names
    // its own process), and another's is put back. The stale one is kept aside until the open
    // succeeds: its holder may be alive in another PID namespace, and then it goes back.
    const moved = `${file}.stale-${process.pid}`;
    try {
      fs.renameSync(file, moved);
      if (fs.readFileSync(moved, 'utf8') !== text) {
        fs.linkSync(moved, file);
        fs.rmSync(moved, { force: true });
      } else {
        if (aside !== null) fs.rmSync(aside, { force: true });
        aside = moved;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') refuse(`cannot lock ${dir}: ${(err as Error).message}`);
    }
  }
  return refuse(`cannot lock ${dir}: another process keeps taking ${file}`);
}

/** A lock takeLock() took: its file, and the stale lock it replaced (kept aside until the open succeeds), if any. */
interface Lock {
  file: string;
  aside: string | null;
}

/**
 * Give up the lock takeLock() took, putting back the stale lock it replaced if one is kept aside
 * (an open refused because that lock's holder runs in another PID namespace leaves its lock as it was).
 */
function releaseLock(file: string, aside: string | null = null): void {
  try {
    // Only our own: a process in another PID namespace may have taken a lock it found stale (then
    // refused to start, see the LogStore constructor) and left its own file there meanwhile.
    const id = fileId(fs.statSync(file));
    if (locksHeld.get(id) === fs.readFileSync(file, 'utf8')) {
      if (aside !== null) fs.renameSync(aside, file);
      else fs.rmSync(file, { force: true });
    }
    locksHeld.delete(id);
  } catch {
    // gone already
  }
  if (aside !== null) fs.rmSync(aside, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Missing positions reported at most. */
export const missingListMax = 10;

/**
 * The first positions in [from, to) with neither a record nor a corrupt-record report (at most
 * missingListMax). Below `from` the snapshot holds what the positions did (compaction trimmed them).
 */
function missingBetween(from: number, to: number, records: LogRecord[], corrupt: CorruptRecord[]): number[] {
  const present = records.map((r) => r.position).concat(corrupt.flatMap((c) => (typeof c.key === 'number' ? [c.key] : [])))
    .filter((p) => p >= from && p < to).sort((a, b) => a - b);
  if (present.length >= to - from) return []; // positions are distinct keys, so all are there
  const out: number[] = [];
  let next = from;
  for (const p of present) {
    for (; next < p && out.length < missingListMax; next++) out.push(next);
    next = p + 1;
  }
  for (; next < to && out.length < missingListMax; next++) out.push(next);
  return out;
}

/** The bytes putSeqSync writes (putSync copies them into the transaction). */
const seqBytes = Buffer.alloc(8);

const isFailure = (x: unknown): x is CorruptRecord =>
  typeof x === 'object' && x !== null && 'reason' in x;
