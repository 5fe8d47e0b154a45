// The kernels' one face. Two implementations stand behind it: WebAssembly (src/wasm, built from
// assembly/) and a plain TypeScript twin (src/kernels/js), which is the reference model in tests
// and selectable at run time (`kernels: "wasm" | "js"`) so benchmarks can measure what WASM buys.
// Both must give the same bytes and the same answers for every input.

import type { Message } from '../protocol/messages.js';
import type { LogRecord } from '../protocol/types.js';

export type KernelKind = 'wasm' | 'js';

/** Why a frame or record was refused. Decoders never throw on bad input; they return this. */
export interface DecodeError {
  error: string;
}

export const isDecodeError = (x: unknown): x is DecodeError =>
  typeof x === 'object' && x !== null && 'error' in x;

/** Ballot = round * 65536 + nodeId, a safe integer. */
export interface BallotKernel {
  ballotPack(round: number, nodeId: number): number;
  ballotRound(ballot: number): number;
  ballotNode(ballot: number): number;
  /** -1, 0 or 1. */
  ballotCompare(a: number, b: number): number;
  /** The smallest ballot owned by nodeId that is greater than `above`. */
  ballotNextAbove(above: number, nodeId: number): number;
}

/**
 * Client commands waiting for a slot, in a bounded ring. `cut` takes the oldest commands, at most
 * countMax of them and at most bytesMax bytes of encoded batch (always at least one command if
 * any is pending, even if that one alone is larger), and returns them as one encoded batch.
 */
export interface Batcher {
  /** Commands pending. */
  readonly count: number;
  /** Bytes of the pending commands (payload only). */
  readonly bytes: number;
  /** False (and nothing queued) if the ring's count or byte bound would be exceeded. */
  push(command: Uint8Array): boolean;
  /** An encoded batch (a fresh Uint8Array the caller owns); empty batch if nothing pending. */
  cut(countMax: number, bytesMax: number): Uint8Array;
  clear(): void;
}

/**
 * The leader's in-flight slots [base, base + capacity). Each open slot has an ack bitset over
 * member indexes 0..31. A slot is chosen when its ack count reaches the quorum and its acks include
 * every required member. Holes allowed:
 * slots may be chosen out of order; `prefix` is the first slot not chosen.
 * Invariant: base <= prefix; every slot below prefix is chosen.
 */
export interface SlotWindow {
  /** Start over: every slot below `prefix` counts as chosen; `quorum` acks that include every
   *  member of the bitset `required` choose a slot (at most `quorum` members required). */
  reset(prefix: number, quorum: number, required: number): void;
  readonly prefix: number;
  /** Slots chosen above the prefix (holes lie between them). */
  readonly chosenAbove: number;
  /** Count member `member` (0..31) as having accepted slots [firstSlot, firstSlot+count). Returns how
   *  many slots became chosen by this call; their numbers are in `newlyChosen[0..n)` until the next call. */
  ack(member: number, firstSlot: number, count: number): number;
  readonly newlyChosen: Float64Array;
  /** Mark slots chosen directly (learned from elsewhere). */
  markChosen(slot: number): void;
  isChosen(slot: number): boolean;
  /** The members that acked a slot, bit `member` each (0 for slots below the prefix or never acked). */
  ackers(slot: number): number;
  /** The window's capacity in slots; ack/markChosen beyond prefix + capacity is refused (asserted). */
  readonly capacity: number;
}

/** Phase-1 promise counting: one bit per member. */
export interface PromiseCounter {
  reset(quorum: number): void;
  /** Record member's Promise; returns true when the quorum is first reached by this call. */
  add(member: number): boolean;
  readonly count: number;
}

/** Splits a byte stream into frames (a push parser that carries partial frames). */
export interface FrameReader {
  /** Feed bytes; the reader copies what it must keep. */
  push(chunk: Uint8Array): void;
  /** The next whole frame (a view valid until the next push/next call), null if none yet, or a DecodeError
   *  for a header that can never become a valid frame (the stream must then be closed). */
  next(): Uint8Array | null | DecodeError;
}

export interface Kernels extends BallotKernel {
  readonly kind: KernelKind;
  /** CRC32C (Castagnoli) of bytes, continuing from `seed` (0 to start). */
  crc32c(bytes: Uint8Array, seed?: number): number;

  /** Encode a peer message as one frame. The returned view is valid until the next encode call. */
  encode(m: Message): Uint8Array;
  /** Decode and validate one whole frame. Values in the result are copies the caller owns. */
  decode(frame: Uint8Array): Message | DecodeError;

  /** Encode a durable log record (returned view valid until the next encodeRecord call). */
  encodeRecord(r: LogRecord): Uint8Array;
  decodeRecord(bytes: Uint8Array): LogRecord | DecodeError;

  /** The commands of an encoded batch (views into `value`), or a DecodeError. */
  decodeBatch(value: Uint8Array): Uint8Array[] | DecodeError;
  /**
   * The same batch as (start, length) pairs of offsets into `value`, with no view per command: an
   * array valid only until the next call into these kernels (copy what you keep).
   */
  decodeBatchPlaces(value: Uint8Array): Uint32Array | DecodeError;
  /** Encode commands as one batch (a fresh array). */
  encodeBatch(commands: Uint8Array[]): Uint8Array;

  newBatcher(countMax: number, bytesMax: number): Batcher;
  newSlotWindow(capacity: number): SlotWindow;
  newPromiseCounter(): PromiseCounter;
  newFrameReader(frameBytesMax: number): FrameReader;

  /** The largest position that at least `quorum` of `matchIndexes[0..n)` have reached (Raft's commit rule). */
  quorumIndex(matchIndexes: Float64Array, n: number, quorum: number): number;
}
