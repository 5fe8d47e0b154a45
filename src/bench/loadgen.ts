// The load generator: a child process of `paxlog bench` (forked with an IPC channel) that drives
// the cluster (its leader, or every node: --connect) over the binary /client WebSocket or over
// HTTP/1.1, and measures latency in HDR histograms (microseconds).
//
// Closed loop: `clients` requests are kept in flight; each answer sends the next request.
// Open loop: requests are due at a fixed `rate`; each one's latency is measured from the moment
// it was due, not from when it was sent, so a stalled server is charged for the requests it kept
// waiting (the correction for coordinated omission). The uncorrected figure is kept beside it.
// Requests still unanswered when the window ends are recorded too, at their age then (from when
// they were due): a server that stalls near the end of the window has kept them waiting at least
// that long, and leaving them out would hide the stall just as a closed loop does.
//
// The parent drives the phases over IPC: load starts at once (the warmup); 'measure' resets
// every counter and histogram; 'stop' sends the result back and ends the process.

import assert from 'node:assert/strict';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import hdr from 'hdr-histogram-js';
import WebSocket from 'ws';
import { ClientOp, requestHeaderBytes, responseHeaderBytes } from '../api/client-protocol.js';
import { Prng } from '../sim/prng.js';

export interface LoadConfig {
  api: 'ws' | 'http';
  host: string;
  /** The nodes' client HTTP ports (they also serve /client); connection i goes to ports[i % length]. Invariant: >= 1. */
  ports: number[];
  mode: 'closed' | 'open';
  clients: number;
  /** WebSocket connections (ws only). Invariant: >= 1. */
  connections: number;
  rate: number;
  payloadBytes: number;
  readRatio: number;
  read: 'lease' | 'quorum';
  keys: number;
  seed: number;
  /** Requests in flight at most in open loop; requests due beyond it are counted as shed, not sent. */
  outstandingMax: number;
}

export interface LatencySummary {
  count: number;
  /** Microseconds. */
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  /** The whole histogram (HdrHistogram compressed base64), for merging runs later. */
  encoded: string;
}

export interface LoadResult {
  /** Seconds between 'measure' and 'stop', by this process's clock. */
  windowS: number;
  writesOk: number;
  readsOk: number;
  /** Answers other than 200 (and 404 for reads), by status; 0 stands for a dropped connection. */
  errors: Record<string, number>;
  /** Open loop: requests due but not sent because outstandingMax were in flight. */
  shed: number;
  /**
   * Open loop: requests still unanswered when the window ended. They are in `latency` at their
   * age then (a lower bound), not in writesOk or readsOk. Always 0 in closed loop.
   */
  unanswered: number;
  /**
   * Latency of successful requests: from when each was due (open loop) or sent (closed loop). In
   * open loop it also holds the requests unanswered at the end of the window, at their age then.
   */
  latency: LatencySummary;
  /** Open loop only: from when each was actually sent. */
  latencyUncorrected: LatencySummary | null;
  /** The load generator's own CPU use over the window, in percent of one core. */
  cpuPercent: number;
}

type Msg = { type: 'measure' } | { type: 'stop' };

const newHistogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

export function summarize(h: hdr.Histogram): LatencySummary {
  // A percentile is the top of its value's bucket (up to 0.1 % above the value), the max is the
  // value itself: cap the percentiles there, or p99.9 could read above the max.
  const at = (q: number): number => Math.min(h.getValueAtPercentile(q), h.maxValue);
  return {
    count: h.totalCount, mean: h.mean, p50: at(50), p90: at(90),
    p99: at(99), p999: at(99.9), max: h.maxValue,
    encoded: hdr.encodeIntoCompressedBase64(h),
  };
}

/**
 * An HDR histogram fed through a one-value run: equal values in a row go in as one
 * recordValueWithCount. Answers in one message to requests of one flush share their latency, and
 * the histogram's index arithmetic (log2, pow) was the largest cost per answer.
 */
class RunRecorder {
  /** The value of the run not yet recorded, in microseconds. */
  private value = 0;
  /** Its length. Invariant: 0 means no run is pending. */
  private count = 0;

  constructor(readonly histogram: hdr.Histogram) {}

  record(value: number): void {
    if (value === this.value) {
      this.count++;
      return;
    }
    if (this.count > 0) this.histogram.recordValueWithCount(this.value, this.count);
    this.value = value;
    this.count = 1;
  }

  /** The histogram with the pending run recorded. */
  settled(): hdr.Histogram {
    if (this.count > 0) this.histogram.recordValueWithCount(this.value, this.count);
    this.count = 0;
    return this.histogram;
  }

  reset(): void {
    this.count = 0;
    this.histogram.reset();
  }
}

/** One HTTP request in flight: when it was due and sent (ms, performance.now), and whether it reads. */
interface Flight {
  dueMs: number;
  sentMs: number;
  read: boolean;
}

/** Distinct keys at most: a key number and its decimal digits stay small integers. */
const keysMax = 2 ** 31 - 1;

/**
 * The load's state and its counters. The counters cover the measured window only: they count from
 * the start (so the warmup runs, and gets optimised, the very code the window runs), 'measure'
 * zeroes them, and 'stop' takes them before the process ends.
 */
export class Load {
  /** Microseconds from due (open loop) or sent (closed loop) to answered, successful requests only. */
  private readonly latency = new RunRecorder(newHistogram());
  /** Open loop: microseconds from sent to answered. */
  private readonly latencyUncorrected = new RunRecorder(newHistogram());
  /** Successful writes (200) and reads (200 or 404) in the window. */
  private writesOk = 0;
  private readsOk = 0;
  /** Open-loop requests not sent because outstandingMax were in flight. */
  private shed = 0;
  /** Open-loop requests recorded unanswered at the end of the window (see unanswered()). */
  private unansweredCount = 0;
  /** Failed answers by status; 0 for a connection that closed under the request. */
  private errors: Record<string, number> = {};
  /**
   * performance.now() at 'measure'. Starts as a fraction, not 0: a field that turns from a small
   * integer to a fraction changes the object's hidden class, which throws away the optimised code
   * of every hot function that reads this object, inside the measured window.
   */
  private windowStartMs = performance.now();
  /** This process's CPU use at 'measure'. */
  private cpuStart = process.cpuUsage();
  /** Picks keys and reads; seeded, so a run's request stream can be replayed. */
  private readonly rng: Prng;
  /** The value of every write: payloadBytes bytes, the same for all. */
  readonly payload: Buffer;
  /** True in closed loop: each answer sends the next request on the same connection. */
  readonly closedLoop: boolean;
  /** Requests in flight over all connections. Invariant: <= inFlightMax. */
  inFlight = 0;
  /** max(clients, outstandingMax): the in-flight bound of either mode, and so of any one connection. */
  readonly inFlightMax: number;
  /** Set by 'stop': no new request is sent. */
  stopped = false;

  constructor(readonly cfg: LoadConfig) {
    // A bad config is the parent's mistake, but it still gets a clear error over IPC, not a crash.
    if (!Number.isSafeInteger(cfg.keys) || cfg.keys < 1 || cfg.keys > keysMax) throw new Error(`keys ${cfg.keys} is not in 1..${keysMax}`);
    if (!Number.isSafeInteger(cfg.clients) || cfg.clients < 1) throw new Error(`clients ${cfg.clients} is not a whole number >= 1`);
    if (!Number.isSafeInteger(cfg.outstandingMax) || cfg.outstandingMax < 1) throw new Error(`outstandingMax ${cfg.outstandingMax} is not a whole number >= 1`);
    this.rng = new Prng(cfg.seed);
    this.payload = Buffer.alloc(cfg.payloadBytes, 'paxlog-');
    this.closedLoop = cfg.mode === 'closed';
    this.inFlightMax = Math.max(cfg.clients, cfg.outstandingMax);
  }

  /** Draws whether the next request reads; drawn before its key, so the stream replays from the seed. */
  nextRead(): boolean {
    return this.cfg.readRatio > 0 && this.rng.next() < this.cfg.readRatio;
  }

  /** Draws the next key's number in [0, keys): the draw of rng.int(0, keys) without its per-call checks. */
  nextKey(): number {
    return Math.floor(this.rng.next() * this.cfg.keys);
  }

  done(read: boolean, dueMs: number, sentMs: number, status: number, nowMs: number): void {
    this.inFlight--;
    const ok = status === 200 || (read && status === 404);
    if (!ok) {
      this.errors[status] = (this.errors[status] ?? 0) + 1;
      // Open loop, every request due is in the corrected latency: a stall that ends in errors (the
      // requests kept waiting through an election answered 503) must show there as one that ends in
      // answers does, or p99 would describe only the requests that did not wait.
      if (!this.closedLoop) this.latency.record(Math.max(1, Math.round((nowMs - dueMs) * 1000)));
      return;
    }
    if (read) this.readsOk++;
    else this.writesOk++;
    this.latency.record(Math.max(1, Math.round((nowMs - dueMs) * 1000)));
    if (!this.closedLoop) this.latencyUncorrected.record(Math.max(1, Math.round((nowMs - sentMs) * 1000)));
  }

  countShed(): void {
    this.shed++;
  }

  /**
   * Open loop, at the end of the window: a request due at `dueMs` and not yet answered goes into
   * the corrected histogram at its age now, a lower bound of its latency. Without it, requests kept
   * waiting by a stall late in the window would not count at all. Closed loop records nothing.
   */
  unanswered(dueMs: number, nowMs: number): void {
    if (this.closedLoop) return;
    this.unansweredCount++;
    this.latency.record(Math.max(1, Math.round((nowMs - dueMs) * 1000)));
  }

  measure(): void {
    this.latency.reset();
    this.latencyUncorrected.reset();
    this.writesOk = 0;
    this.readsOk = 0;
    this.shed = 0;
    this.unansweredCount = 0;
    this.errors = {};
    this.windowStartMs = performance.now();
    this.cpuStart = process.cpuUsage();
  }

  result(): LoadResult {
    const windowS = (performance.now() - this.windowStartMs) / 1000;
    const cpu = process.cpuUsage(this.cpuStart);
    return {
      windowS, writesOk: this.writesOk, readsOk: this.readsOk, errors: this.errors, shed: this.shed, unanswered: this.unansweredCount,
      latency: summarize(this.latency.settled()),
      latencyUncorrected: this.cfg.mode === 'open' ? summarize(this.latencyUncorrected.settled()) : null,
      cpuPercent: ((cpu.user + cpu.system) / 1e6 / windowS) * 100,
    };
  }
}

/** A connection that carries requests: WebSocket (pipelined) or HTTP (one at a time). */
interface Conn {
  /**
   * Sends one request now or at the end of this turn. `dueMs` (performance.now) is when it was due
   * in open loop; closed loop ignores it and measures from the send. In closed loop its answer sends
   * the next request on this connection.
   */
  send(dueMs: number): void;
  /** Calls `f` with when each request still unanswered on this connection was due (open loop). */
  forEachUnanswered(f: (dueMs: number) => void): void;
  close(): void;
}

const readModeCode = { lease: 1, quorum: 2 } as const;
/** Bytes of an HTTP response head at most. */
const responseHeadBytesMax = 64 * 1024;
/**
 * Where every HTTP connection's reads land (see HttpConn.open): one for all, since each read is
 * parsed before its callback returns. Not from Buffer's pool (larger than its half), so a view
 * into it is recognised by its ArrayBuffer.
 */
const readBuffer = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * The requests in flight on one WebSocket connection, kept in typed arrays indexed by slot: no
 * object, wrapper or Map entry per request. A request's id is its slot in the low `slotBits` bits
 * and the slot's generation above them. The generation moves on whenever the slot is freed, so an
 * answer whose request was already answered (a duplicate, or an id never sent) matches nothing.
 */
export class FlightTable {
  /** Bits of an id that name the slot. Invariant: 2^slotBits >= the in-flight bound. */
  readonly slotBits: number;
  /** Generations run 1..generationMax and wrap, so no id is 0. */
  private readonly generationMax: number;
  /** Slots at most: the table never grows past it. */
  readonly capacityMax: number;
  /** The current generation of each slot. Invariant: 1..generationMax. */
  private generation: Uint32Array;
  /** 1 while the slot's request is in flight. Invariant: busy iff not on the free stack. */
  private busy: Uint8Array;
  /** When each request was due (open loop) or sent (closed loop), ms by performance.now. */
  dueMs: Float64Array;
  /** When each request left this process, ms by performance.now; set at the flush that sends it. */
  sentMs: Float64Array;
  /** 1 if the request reads, 0 if it writes. */
  read: Uint8Array;
  /** Free slots as a stack; the first `freeCount` entries hold them. */
  private free: Int32Array;
  private freeCount = 0;
  /** Slots in flight. Invariant: size + freeCount = capacity. */
  size = 0;

  /** `capacity` slots at first; grows by doubling up to a table for `inFlightMax` requests in flight. */
  constructor(capacity: number, inFlightMax: number) {
    assert.ok(Number.isSafeInteger(inFlightMax) && inFlightMax >= 1, `inFlightMax ${inFlightMax}`);
    this.slotBits = Math.max(1, Math.ceil(Math.log2(inFlightMax)));
    // At least 8 bits of generation, so a stale answer is told apart over 255 reuses of its slot.
    assert.ok(this.slotBits <= 24, `${inFlightMax} requests in flight leave too few id bits for a generation`);
    this.capacityMax = 2 ** this.slotBits;
    this.generationMax = 2 ** (32 - this.slotBits) - 1;
    const n = Math.min(Math.max(1, capacity), this.capacityMax);
    this.generation = new Uint32Array(n).fill(1);
    this.busy = new Uint8Array(n);
    this.dueMs = new Float64Array(n);
    this.sentMs = new Float64Array(n);
    this.read = new Uint8Array(n);
    this.free = new Int32Array(n);
    this.pushFree(0, n);
  }

  get capacity(): number {
    return this.busy.length;
  }

  /** Takes a free slot, growing the table if none is free. Its request's id is idOf(slot). */
  acquire(): number {
    if (this.freeCount === 0) this.grow();
    const slot = this.free[--this.freeCount];
    this.busy[slot] = 1;
    this.size++;
    return slot;
  }

  idOf(slot: number): number {
    return (this.generation[slot] * this.capacityMax + slot) >>> 0;
  }

  /**
   * Frees the slot of the request with this id and returns it, or -1 if no request in flight has
   * this id. The slot's dueMs, sentMs and read stay readable until the next acquire().
   */
  release(id: number): number {
    const slot = id & (this.capacityMax - 1);
    if (slot >= this.busy.length || this.busy[slot] === 0 || this.idOf(slot) !== id) return -1;
    this.busy[slot] = 0;
    this.generation[slot] = this.generation[slot] === this.generationMax ? 1 : this.generation[slot] + 1;
    this.free[this.freeCount++] = slot;
    this.size--;
    return slot;
  }

  /** Calls `f` with every slot in flight; frees none. */
  forEachBusy(f: (slot: number) => void): void {
    for (let slot = 0; slot < this.busy.length; slot++) if (this.busy[slot] === 1) f(slot);
  }

  /** Frees every slot in flight, calling `f` with each first (a closed connection fails them all). */
  releaseAll(f: (slot: number) => void): void {
    for (let slot = 0; slot < this.busy.length; slot++) {
      if (this.busy[slot] === 1) {
        f(slot);
        this.release(this.idOf(slot));
      }
    }
  }

  private pushFree(from: number, to: number): void {
    // Highest first, so the lowest slots are taken first.
    for (let slot = to - 1; slot >= from; slot--) this.free[this.freeCount++] = slot;
  }

  private grow(): void {
    const old = this.busy.length;
    // More requests in flight than the load allows is a bug in the caller, not bad input.
    assert.ok(old < this.capacityMax, `more than ${this.capacityMax} requests in flight on one connection`);
    const n = Math.min(old * 2, this.capacityMax);
    const widen = <T extends Uint32Array | Uint8Array | Float64Array | Int32Array>(a: T, make: (n: number) => T): T => {
      const b = make(n);
      b.set(a);
      return b;
    };
    this.generation = widen(this.generation, (m) => new Uint32Array(m));
    this.generation.fill(1, old);
    this.busy = widen(this.busy, (m) => new Uint8Array(m));
    this.dueMs = widen(this.dueMs, (m) => new Float64Array(m));
    this.sentMs = widen(this.sentMs, (m) => new Float64Array(m));
    this.read = widen(this.read, (m) => new Uint8Array(m));
    this.free = widen(this.free, (m) => new Int32Array(m));
    this.pushFree(old, n);
  }
}

/** Decimal digits of a whole number below 2^31. */
function decimalDigits(n: number): number {
  let digits = 1;
  for (let x = n; x >= 10; x = (x / 10) | 0) digits++;
  return digits;
}

/** Writes the `digits` decimal digits of `n` at `at` (no string). */
function writeDigits(b: Buffer, at: number, n: number, digits: number): void {
  let x = n;
  for (let i = at + digits - 1; i >= at; i--) {
    b[i] = 0x30 + (x % 10);
    x = (x / 10) | 0;
  }
}

/** Bytes of one request on /client for key `k<key>` and a value of `valueBytes` bytes. */
export function requestBytes(key: number, valueBytes: number): number {
  return requestHeaderBytes + 1 + decimalDigits(key) + valueBytes;
}

/**
 * Writes one request at `at` (the layout in src/api/client-protocol.ts): a Get in `readMode` if
 * `read`, else a Put of `value`, at key `k<key>` with the digits written in place (no string).
 * Returns the bytes written, requestBytes(key, value bytes). The caller checked they fit.
 */
export function writeRequest(b: Buffer, at: number, id: number, read: boolean, readMode: number, key: number, value: Buffer): number {
  const keyBytes = 1 + decimalDigits(key);
  const length = requestHeaderBytes + keyBytes + (read ? 0 : value.length);
  b[at] = length;
  b[at + 1] = length >>> 8;
  b[at + 2] = length >>> 16;
  b[at + 3] = length >>> 24;
  b[at + 4] = id;
  b[at + 5] = id >>> 8;
  b[at + 6] = id >>> 16;
  b[at + 7] = id >>> 24;
  b[at + 8] = read ? ClientOp.Get : ClientOp.Put;
  b[at + 9] = read ? readMode : 0;
  b[at + 10] = keyBytes;
  b[at + 11] = keyBytes >>> 8;
  b[at + 12] = 0; // expectLength: no compare-and-set here
  b[at + 13] = 0;
  b[at + 14] = 0;
  b[at + 15] = 0;
  const k = at + requestHeaderBytes;
  b[k] = 0x6b; // 'k'
  writeDigits(b, k + 1, key, keyBytes - 1);
  if (!read) b.set(value, k + keyBytes);
  return length;
}

/** Bytes of a connection's output buffer: a WebSocket message carries at most this (or one larger request). */
const outBytesMin = 64 * 1024;
/** Output buffers handed to ws at once per connection; past it a message is sent as a copy. */
const outBuffersSendingMax = 4;
const sendOptions = { binary: true } as const;
/**
 * A client must mask its frames; for an all-zero key (ws's generateMask option) ws skips the XOR
 * and the copy it makes to XOR into (ws/lib/sender.js, skipMasking), about 4 % of the generator's
 * CPU in a profile. A random key defends caching proxies from a hostile page's bytes; there is no
 * proxy or page between the generator and a local node.
 */
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

class WsConn implements Conn {
  /** The requests sent (or written to `out`) and unanswered. */
  private readonly flights: FlightTable;
  /** Requests written this turn, back to back: the next WebSocket message. Fixed size. */
  private out: Buffer;
  /** Bytes of `out` in use. Invariant: <= out.length. */
  private outBytes = 0;
  /** Slots of the requests in `out`, stamped with the send time at flush. Invariant: batchCount <= batch.length. */
  private readonly batch: Int32Array;
  private batchCount = 0;
  /** Output buffers handed to ws and not yet written to the socket, oldest first. Bounded by outBuffersSendingMax. */
  private readonly sending: Buffer[] = [];
  /** Output buffers written to the socket, free to reuse. Bounded by outBuffersSendingMax. */
  private readonly spare: Buffer[] = [];
  /** A flush is scheduled for the end of this turn. */
  private flushScheduled = false;
  /** The read mode byte of every Get. */
  private readonly readMode: number;
  // Callbacks bound once: no closure per request or per flush.
  private readonly flushLater = (): void => {
    this.flushScheduled = false;
    this.flush();
  };
  private readonly onWritten = (): void => {
    const b = this.sending.shift();
    if (b !== undefined && this.spare.length < outBuffersSendingMax) this.spare.push(b);
  };
  private readonly retry = (): void => {
    if (!this.load.stopped) this.send(0);
  };

  private constructor(private readonly ws: WebSocket, private readonly load: Load) {
    const cfg = load.cfg;
    // Closed loop: this connection's share of the clients is exactly its in-flight bound.
    const perConnection = Math.ceil(cfg.clients / cfg.connections);
    this.flights = new FlightTable(load.closedLoop ? perConnection : 1024, load.inFlightMax);
    this.out = Buffer.allocUnsafe(Math.max(outBytesMin, requestBytes(keysMax, cfg.payloadBytes)));
    // Every request is at least a header and a one-digit key.
    this.batch = new Int32Array(Math.ceil(this.out.length / (requestHeaderBytes + 2)));
    this.readMode = readModeCode[cfg.read];
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('error', () => {
      // 'close' follows and fails what is in flight.
    });
    ws.on('close', () => {
      const now = performance.now();
      const f = this.flights;
      f.releaseAll((slot) => load.done(f.read[slot] === 1, f.dueMs[slot], f.sentMs[slot], 0, now));
      this.outBytes = 0;
      this.batchCount = 0;
    });
  }

  static open(url: string, load: Load): Promise<WsConn> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, generateMask: zeroMask });
      ws.binaryType = 'nodebuffer';
      ws.once('open', () => resolve(new WsConn(ws, load)));
      ws.once('error', reject);
    });
  }

  send(dueMs: number): void {
    const load = this.load;
    const read = load.nextRead();
    const key = load.nextKey();
    const length = requestBytes(key, read ? 0 : load.payload.length);
    // A full message goes now; the rest of this turn's requests start the next one.
    if (this.outBytes + length > this.out.length || this.batchCount === this.batch.length) this.flush();
    const f = this.flights;
    const slot = f.acquire();
    f.dueMs[slot] = dueMs;
    f.read[slot] = read ? 1 : 0;
    this.outBytes += writeRequest(this.out, this.outBytes, f.idOf(slot), read, this.readMode, key, load.payload);
    this.batch[this.batchCount++] = slot;
    load.inFlight++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushLater);
    }
  }

  forEachUnanswered(f: (dueMs: number) => void): void {
    const flights = this.flights;
    flights.forEachBusy((slot) => f(flights.dueMs[slot]));
  }

  close(): void {
    this.ws.terminate();
  }

  /** Sends the requests written so far as one message, and stamps them sent. */
  private flush(): void {
    if (this.outBytes === 0) return;
    const f = this.flights;
    const now = performance.now();
    for (let i = 0; i < this.batchCount; i++) {
      const slot = this.batch[i];
      f.sentMs[slot] = now;
      if (this.load.closedLoop) f.dueMs[slot] = now;
    }
    const message = this.out.subarray(0, this.outBytes);
    this.outBytes = 0;
    this.batchCount = 0;
    // A closing connection sends nothing; its 'close' fails what is in flight.
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (this.sending.length < outBuffersSendingMax) {
      // ws may keep the bytes until the socket takes them: hand the buffer over and write the next
      // message into a spare one, given back once written.
      this.sending.push(this.out);
      this.out = this.spare.pop() ?? Buffer.allocUnsafe(this.out.length);
      this.ws.send(message, sendOptions, this.onWritten);
    } else {
      // The socket is backed up: send a copy rather than tie up another buffer.
      this.ws.send(Buffer.from(message), sendOptions);
    }
  }

  /** Matches each response in the message to its request; reads only, allocates nothing. */
  private onMessage(data: Buffer): void {
    const now = performance.now();
    const load = this.load;
    const f = this.flights;
    const n = data.length;
    let at = 0;
    while (n - at >= responseHeaderBytes) {
      const length = (data[at] | (data[at + 1] << 8) | (data[at + 2] << 16) | (data[at + 3] << 24)) >>> 0;
      if (length < responseHeaderBytes || length > n - at) break;
      const id = (data[at + 4] | (data[at + 5] << 8) | (data[at + 6] << 16) | (data[at + 7] << 24)) >>> 0;
      const status = data[at + 8] | (data[at + 9] << 8);
      at += length;
      const slot = f.release(id);
      if (slot < 0) continue;
      load.done(f.read[slot] === 1, f.dueMs[slot], f.sentMs[slot], status, now);
      if (load.closedLoop && !load.stopped) {
        // A 503 says "retry shortly": back off a little instead of spinning.
        if (status === 503) setTimeout(this.retry, 1);
        else this.send(now);
      }
    }
  }
}

class HttpConn implements Conn {
  /** The request written and not yet answered; HTTP/1.1 without pipelining has at most one. */
  private current: { f: Flight; next: (() => void) | null } | null = null;
  /**
   * Bytes received and not yet parsed (a partial response). Bounded by one response. Never a view
   * into `readBuffer` once a read's callback returns (the next read overwrites it).
   */
  private buf: Buffer = Buffer.alloc(0);
  /** Open loop: requests due while `current` is out, in order. Bounded by outstandingMax overall. */
  private readonly waiting: { f: Flight; key: number; next: (() => void) | null }[] = [];

  /** Closed loop: the answer's follow-up, the next request on this connection. */
  private readonly again = (): void => {
    if (!this.load.stopped) this.send(0);
  };

  /** A request's bytes around its key's digits: `put` + key + `putTail` + value, `get` + key + `getTail`. */
  private readonly heads: { put: Buffer; putTail: Buffer; get: Buffer; getTail: Buffer };

  private constructor(private readonly socket: net.Socket, private readonly load: Load, hostHeader: string) {
    const latin1 = (text: string): Buffer => Buffer.from(text, 'latin1');
    this.heads = {
      put: latin1('PUT /kv/k'),
      putTail: latin1(` HTTP/1.1\r\nhost: ${hostHeader}\r\ncontent-length: ${load.payload.byteLength}\r\n\r\n`),
      get: latin1('GET /kv/k'),
      getTail: latin1(`?read=${load.cfg.read} HTTP/1.1\r\nhost: ${hostHeader}\r\n\r\n`),
    };
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => {
      const now = performance.now();
      if (this.current !== null) load.done(this.current.f.read, this.current.f.dueMs, this.current.f.sentMs, 0, now);
      for (const w of this.waiting) load.done(w.f.read, w.f.dueMs, w.f.sentMs, 0, now);
      this.current = null;
      this.waiting.length = 0;
    });
  }

  /**
   * Reads land in `readBuffer` and go straight to onData (net's `onread`), not through a stream's
   * 'data' event with a Buffer per read: that cut the load generator's CPU per request by a quarter
   * (.scratch/httpceil.mjs: 117k to 149k requests a second at one core). Nothing before the
   * connection exists can arrive, so `conn` is set by the time a read does.
   */
  static open(host: string, port: number, load: Load): Promise<HttpConn> {
    return new Promise((resolve, reject) => {
      let conn: HttpConn | null = null;
      const onread = { buffer: readBuffer, callback: (n: number, b: Uint8Array): boolean => conn!.onRead(n, b as Buffer) };
      const s = net.connect({ host, port, onread });
      s.once('connect', () => resolve((conn = new HttpConn(s, load, `${host}:${port}`))));
      s.once('error', reject);
    });
  }

  get busy(): boolean {
    return this.current !== null;
  }

  /** Requests queued behind the one in flight (open loop). */
  get queued(): number {
    return this.waiting.length;
  }

  send(dueMs: number): void {
    const load = this.load;
    const read = load.nextRead();
    const key = load.nextKey();
    load.inFlight++;
    // sentMs is when it leaves this process (requests queued behind another reset it when written).
    const now = performance.now();
    const f: Flight = { dueMs: load.closedLoop ? now : dueMs, sentMs: now, read };
    const next = load.closedLoop ? this.again : null;
    if (this.current !== null) {
      this.waiting.push({ f, key, next });
      return;
    }
    this.write(f, key, next);
  }

  forEachUnanswered(f: (dueMs: number) => void): void {
    if (this.current !== null) f(this.current.f.dueMs);
    for (const w of this.waiting) f(w.f.dueMs);
  }

  close(): void {
    this.socket.destroy();
  }

  /** The request as one Buffer, written with one call: a string per part and a cork cost more than the rest of the request here. */
  private write(f: Flight, key: number, next: (() => void) | null): void {
    this.current = { f, next };
    f.sentMs = performance.now();
    const head = f.read ? this.heads.get : this.heads.put;
    const tail = f.read ? this.heads.getTail : this.heads.putTail;
    const body = f.read ? 0 : this.load.payload.byteLength;
    const digits = decimalDigits(key);
    const b = Buffer.allocUnsafe(head.byteLength + digits + tail.byteLength + body);
    let at = head.copy(b, 0);
    writeDigits(b, at, key, digits);
    at += digits;
    at += tail.copy(b, at);
    if (body > 0) this.load.payload.copy(b, at);
    this.socket.write(b);
  }

  /** `n` bytes read into the shared `b`; a partial response left over is copied out of it. */
  private onRead(n: number, b: Buffer): boolean {
    this.onData(b.subarray(0, n));
    if (this.buf.byteLength > 0 && this.buf.buffer === readBuffer.buffer) this.buf = Buffer.from(this.buf);
    return true;
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.byteLength === 0 ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      const end = this.buf.indexOf(headEnd);
      if (end < 0) {
        // No response head is this long: the stream is not HTTP. Drop the link (its requests fail).
        if (this.buf.byteLength > responseHeadBytesMax) this.socket.destroy();
        return;
      }
      const status = statusOf(this.buf);
      const bodyBytes = contentLength(this.buf, end);
      if (this.buf.byteLength < end + 4 + bodyBytes) return;
      this.buf = this.buf.subarray(end + 4 + bodyBytes);
      const c = this.current;
      if (c === null) {
        // The server answered a request never made: nothing after it can be matched. Drop the link.
        this.socket.destroy();
        return;
      }
      this.current = null;
      this.load.done(c.f.read, c.f.dueMs, c.f.sentMs, status, performance.now());
      const w = this.waiting.shift();
      if (w !== undefined) this.write(w.f, w.key, w.next);
      if (c.next !== null) {
        if (status === 503) setTimeout(c.next, 1);
        else c.next();
      }
    }
  }
}

const headEnd = Buffer.from('\r\n\r\n', 'latin1');
const contentLengthName = Buffer.from('\r\ncontent-length:', 'latin1');

/** An HTTP response's status code from its status line ("HTTP/1.1 200 ..."); 0 if it has none. */
export function statusOf(b: Buffer): number {
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const d = b[i] - 48;
    if (!(d >= 0 && d <= 9)) return 0;
    status = status * 10 + d;
  }
  return b[8] === 32 ? status : 0;
}

/**
 * The Content-Length of the response head b[0, end) (end: where its blank line starts), header
 * name in any case; 0 when absent.
 */
export function contentLength(b: Buffer, end: number): number {
  const name = contentLengthName;
  for (let line = b.indexOf(13); line >= 0 && line < end; line = b.indexOf(13, line + 2)) {
    if (line + name.byteLength > end) return 0;
    let i = 0;
    // ASCII letters compare case-blind with bit 0x20 set on both sides; the rest exactly.
    while (i < name.byteLength && (b[line + i] === name[i] || (name[i] >= 97 && (b[line + i] | 32) === name[i]))) i++;
    if (i < name.byteLength) continue;
    let n = 0;
    let digits = 0;
    for (let at = line + i; at < end; at++) {
      const c = b[at];
      if (c === 32 || c === 9) {
        if (digits > 0) break;
        continue;
      }
      if (c < 48 || c > 57) break;
      n = n * 10 + (c - 48);
      digits++;
    }
    return n;
  }
  return 0;
}

async function run(cfg: LoadConfig): Promise<void> {
  const load = new Load(cfg);
  const conns: Conn[] = [];
  const count = cfg.api === 'ws' ? cfg.connections : cfg.clients;
  for (let i = 0; i < count; i++) {
    conns.push(cfg.api === 'ws'
      ? await WsConn.open(`ws://${cfg.host}:${cfg.ports[i % cfg.ports.length]}/client`, load)
      : await HttpConn.open(cfg.host, cfg.ports[i % cfg.ports.length], load));
  }

  if (cfg.mode === 'closed') {
    // Client c uses connection c mod count; its connection sends again when it is answered, until stopped.
    for (let c = 0; c < cfg.clients; c++) conns[c % conns.length].send(0);
  } else {
    const t0 = performance.now();
    let sent = 0;
    let rr = 0;
    // Over WebSocket a tick's requests all go to one connection and the next tick's to the next:
    // one message per tick rather than one per connection, each costing far more than a request.
    // HTTP carries one request at a time per connection, so there they are spread one by one.
    const spread = cfg.api === 'http';
    const tick = (): void => {
      if (load.stopped) return;
      const now = performance.now();
      const due = Math.floor(((now - t0) / 1000) * cfg.rate);
      for (; sent < due; sent++) {
        const dueMs = t0 + (sent / cfg.rate) * 1000;
        if (load.inFlight >= cfg.outstandingMax) {
          load.countShed();
          continue;
        }
        conns[rr].send(dueMs);
        if (spread) rr = (rr + 1) % conns.length;
      }
      if (!spread) rr = (rr + 1) % conns.length;
      setTimeout(tick, 1);
    };
    tick();
  }

  process.send!({ type: 'ready' });
  process.on('message', (m: Msg) => {
    if (m.type === 'measure') load.measure();
    if (m.type === 'stop') {
      load.stopped = true;
      const now = performance.now();
      for (const c of conns) c.forEachUnanswered((dueMs) => load.unanswered(dueMs, now));
      const result = load.result();
      process.send!({ type: 'result', result }, () => {
        for (const c of conns) c.close();
        process.exit(0);
      });
    }
  });
}

// Started as a child process: the config is the first argument (JSON).
if (process.send !== undefined && process.argv[2] !== undefined) {
  const cfg = JSON.parse(process.argv[2]) as LoadConfig;
  run(cfg).catch((e: Error) => {
    process.send!({ type: 'error', message: e.message }, () => process.exit(1));
  });
  // The parent's death must not leave a load generator running.
  process.on('disconnect', () => process.exit(0));
}
