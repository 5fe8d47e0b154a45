// The WASM module and its linear memory as TypeScript sees them. The AssemblyScript side runs with
// the stub runtime and allocates nothing; this heap hands out regions above __heap_base (size
// classes of powers of two, a free list per class, memory grown on demand) and keeps typed views
// over memory that are re-created only when memory grows.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

/** The exports of build/paxlog.wasm (see assembly/index.ts). */
export interface PaxlogExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  ballotPack(round: number, node: number): number;
  ballotRound(ballot: number): number;
  ballotNode(ballot: number): number;
  ballotCompare(a: number, b: number): number;
  ballotNextAbove(above: number, node: number): number;
  crc32c(p: number, n: number, seed: number): number;
  crc32cSimd(p: number, n: number, seed: number): number;
  crcFrame(p: number, n: number): number;
  rulesPtr(): number;
  encodeFrame(out: number, scratch: number, type: number, flags: number, from: number, to: number, count: number): number;
  decodeFrame(p: number, len: number, frameBytesMax: number, scratch: number): number;
  encodeRecord(out: number, position: number, ballot: number, valueLength: number): number;
  decodeRecord(p: number, len: number, recordBytesMax: number, scratch: number): number;
  decodeBatch(p: number, len: number, scratch: number): number;
  batcherCut(st: number, out: number, countMax: number, bytesMax: number): number;
  batcherMove(st: number, lenRing: number, lenCap: number, byteRing: number, byteCap: number): void;
  windowBytes(capacity: number): number;
  windowInit(st: number, capacity: number): void;
  windowReset(st: number, prefix: number, quorum: number, required: number): void;
  windowAck(st: number, member: number, first: number, count: number): number;
  windowMark(st: number, slot: number): number;
  windowIsChosen(st: number, slot: number): number;
  windowAckers(st: number, slot: number): number;
  promiseReset(st: number, quorum: number): void;
  promiseAdd(st: number, member: number): number;
  quorumIndex(p: number, n: number, quorum: number): number;
}

const compiled = new Map<string, WebAssembly.Module>();

/**
 * The compiled module build/<file>, compiled once per process (synchronously). It is looked for
 * relative to this file both in dist/src/wasm/ and in src/wasm/.
 */
export const wasmModule = (file: 'paxlog.wasm' | 'kv.wasm'): WebAssembly.Module => {
  let m = compiled.get(file);
  if (m === undefined) {
    const fromDist = new URL(`../../../build/${file}`, import.meta.url);
    let bytes: Buffer;
    try {
      bytes = readFileSync(fromDist);
    } catch {
      try {
        bytes = readFileSync(new URL(`../../build/${file}`, import.meta.url));
      } catch {
        throw new Error(`cannot read ${fromDist.pathname}: run "npm run build:wasm" first`);
      }
    }
    m = new WebAssembly.Module(new Uint8Array(bytes));
    compiled.set(file, m);
  }
  return m;
};

/**
 * An instance of one of our modules. Their one import is `env.abort`: an AssemblyScript assert
 * failed, a programmer error in `what`, thrown and never caught.
 */
export function instantiate(module: WebAssembly.Module, what: string): WebAssembly.Exports {
  let memory: WebAssembly.Memory | null = null;
  const readString = (ptr: number): string => {
    if (memory === null || ptr === 0) return '';
    const bytes = new Uint32Array(memory.buffer, ptr - 4, 1)[0];
    return Buffer.from(memory.buffer, ptr, bytes).toString('utf16le');
  };
  const exports = new WebAssembly.Instance(module, {
    env: {
      abort: (msg: number, file: number, line: number, col: number): never => {
        throw new Error(`wasm ${what} assertion: ${readString(msg)} at ${readString(file)}:${line}:${col}`);
      },
    },
  }).exports;
  memory = exports.memory as WebAssembly.Memory;
  return exports;
}

/** The kernels' module. */
export const paxlogModule = (): WebAssembly.Module => wasmModule('paxlog.wasm');

/** The largest heap this face will grow to; a limit on everything that grows. */
export const HEAP_BYTES_MAX = 1024 * 1024 * 1024;
const CLASS_MIN = 64;

export class WasmHeap {
  readonly x: PaxlogExports;
  /** Views over memory; re-created by sync() when memory.grow() detaches the old buffer. */
  u8!: Uint8Array;
  u32!: Uint32Array;
  f64!: Float64Array;
  private buffer: ArrayBuffer | null = null;
  /** The first byte never handed out. Invariant: 16-aligned, <= memory size. */
  private top: number;

  /** The first byte never handed out (memory above it is unused). */
  get heapTop(): number {
    return this.top;
  }
  /** Free regions per size class (class = log2 of size). */
  private readonly free: number[][] = [];

  constructor() {
    this.x = instantiate(paxlogModule(), 'kernel') as unknown as PaxlogExports;
    this.top = (this.x.heapBase() + 15) & ~15;
    this.sync();
  }

  /** Re-create the views if memory grew. Cheap: one compare when nothing changed. */
  sync(): void {
    const b = this.x.memory.buffer;
    if (b === this.buffer) return;
    this.buffer = b as ArrayBuffer;
    this.u8 = new Uint8Array(b);
    this.u32 = new Uint32Array(b);
    this.f64 = new Float64Array(b);
  }

  static classOf(bytes: number): number {
    return Math.max(6, 32 - Math.clz32(Math.max(bytes, CLASS_MIN) - 1));
  }

  /** A region of at least `bytes` bytes, 16-aligned. Its real size is 2^classOf(bytes). */
  alloc(bytes: number): number {
    if (!(Number.isInteger(bytes) && bytes >= 0)) assert.fail(`alloc of ${bytes} bytes`);
    const c = WasmHeap.classOf(bytes);
    const list = this.free[c];
    if (list !== undefined && list.length > 0) return list.pop()!;
    const size = 2 ** c;
    const ptr = this.top;
    const end = ptr + size;
    if (!(end <= HEAP_BYTES_MAX)) assert.fail(`wasm heap would exceed HEAP_BYTES_MAX (${HEAP_BYTES_MAX} bytes)`);
    const have = this.x.memory.buffer.byteLength;
    if (end > have) {
      // Grow by at least half again, so a run of growing requests does not grow one page at a time.
      const want = Math.max(end, Math.min(HEAP_BYTES_MAX, have + (have >>> 1)));
      this.x.memory.grow(Math.ceil((want - have) / 65536));
      this.sync();
    }
    this.top = end;
    return ptr;
  }

  release(ptr: number, bytes: number): void {
    const c = WasmHeap.classOf(bytes);
    (this.free[c] ??= []).push(ptr);
  }
}

/** A region that grows by reallocation; its old contents are not kept. */
export class Region {
  ptr = 0;
  bytes = 0;
  constructor(private readonly heap: WasmHeap, initialBytes: number) {
    this.ensure(initialBytes);
  }

  /** Make room for `bytes`; afterwards the heap's views are current. */
  ensure(bytes: number): number {
    if (bytes > this.bytes) {
      if (this.bytes > 0) this.heap.release(this.ptr, this.bytes);
      this.bytes = 2 ** WasmHeap.classOf(bytes);
      this.ptr = this.heap.alloc(this.bytes);
    }
    return this.ptr;
  }
}
