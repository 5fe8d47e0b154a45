// The load generator: a child process of `paxlog bench` (forked with an IPC channel) that drives
// one cluster node over the binary /client WebSocket or over HTTP/1.1, and measures latency in
// HDR histograms (microseconds).
//
// Closed loop: `clients` requests are kept in flight; each answer sends the next request.
// Open loop: requests are due at a fixed `rate`; each one's latency is measured from the moment
// it was due, not from when it was sent, so a stalled server is charged for the requests it kept
// waiting (the correction for coordinated omission). The uncorrected figure is kept beside it.
//
// The parent drives the phases over IPC: load starts at once (the warmup); 'measure' resets
// every counter and histogram; 'stop' sends the result back and ends the process.

import net from 'node:net';
import { performance } from 'node:perf_hooks';
import hdr from 'hdr-histogram-js';
import WebSocket from 'ws';
import { Prng } from '../sim/prng.js';

export interface LoadConfig {
  api: 'ws' | 'http';
  host: string;
  /** The node's client HTTP port (also serves /client). */
  port: number;
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
  /** Latency of successful requests: from when each was due (open loop) or sent (closed loop). */
  latency: LatencySummary;
  /** Open loop only: from when each was actually sent. */
  latencyUncorrected: LatencySummary | null;
  /** The load generator's own CPU use over the window, in percent of one core. */
  cpuPercent: number;
}

type Msg = { type: 'measure' } | { type: 'stop' };

const newHistogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: 3 });

function summarize(h: hdr.Histogram): LatencySummary {
  return {
    count: h.totalCount, mean: h.mean, p50: h.getValueAtPercentile(50), p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99), p999: h.getValueAtPercentile(99.9), max: h.maxValue,
    encoded: hdr.encodeIntoCompressedBase64(h),
  };
}

/** One request in flight: when it was due and sent (ms, performance.now), and whether it reads. */
interface Flight {
  dueMs: number;
  sentMs: number;
  read: boolean;
}

/** The load's state and its counters; the counters cover the measured window only. */
class Load {
  /** True between 'measure' and 'stop': answers outside the window are not counted. */
  private measuring = false;
  /** Microseconds from due (open loop) or sent (closed loop) to answered, successful requests only. */
  private latency = newHistogram();
  /** Open loop: microseconds from sent to answered. */
  private latencyUncorrected = newHistogram();
  /** Successful writes (200) and reads (200 or 404) in the window. */
  private writesOk = 0;
  private readsOk = 0;
  /** Open-loop requests not sent because outstandingMax were in flight. */
  private shed = 0;
  /** Failed answers by status; 0 for a connection that closed under the request. */
  private errors: Record<string, number> = {};
  /** performance.now() at 'measure'. */
  private windowStartMs = 0;
  /** This process's CPU use at 'measure'. */
  private cpuStart = process.cpuUsage();
  /** Picks keys and reads; seeded, so a run's request stream can be replayed. */
  private readonly rng: Prng;
  /** The value of every write: payloadBytes bytes, the same for all. */
  readonly payload: Buffer;
  /** Requests in flight over all connections. Invariant: <= max(clients, outstandingMax). */
  inFlight = 0;
  /** Set by 'stop': no new request is sent. */
  stopped = false;

  constructor(readonly cfg: LoadConfig) {
    this.rng = new Prng(cfg.seed);
    this.payload = Buffer.alloc(cfg.payloadBytes, 'paxlog-');
  }

  nextOp(): { key: string; read: boolean } {
    const read = this.cfg.readRatio > 0 && this.rng.next() < this.cfg.readRatio;
    return { key: `k${this.rng.int(0, this.cfg.keys)}`, read };
  }

  done(f: Flight, status: number, nowMs: number): void {
    this.inFlight--;
    if (!this.measuring) return;
    const ok = status === 200 || (f.read && status === 404);
    if (!ok) {
      this.errors[status] = (this.errors[status] ?? 0) + 1;
      return;
    }
    if (f.read) this.readsOk++;
    else this.writesOk++;
    this.latency.recordValue(Math.max(1, Math.round((nowMs - f.dueMs) * 1000)));
    if (this.cfg.mode === 'open') this.latencyUncorrected.recordValue(Math.max(1, Math.round((nowMs - f.sentMs) * 1000)));
  }

  countShed(): void {
    if (this.measuring) this.shed++;
  }

  measure(): void {
    this.latency.reset();
    this.latencyUncorrected.reset();
    this.writesOk = 0;
    this.readsOk = 0;
    this.shed = 0;
    this.errors = {};
    this.windowStartMs = performance.now();
    this.cpuStart = process.cpuUsage();
    this.measuring = true;
  }

  result(): LoadResult {
    const windowS = (performance.now() - this.windowStartMs) / 1000;
    const cpu = process.cpuUsage(this.cpuStart);
    this.measuring = false;
    return {
      windowS, writesOk: this.writesOk, readsOk: this.readsOk, errors: this.errors, shed: this.shed,
      latency: summarize(this.latency),
      latencyUncorrected: this.cfg.mode === 'open' ? summarize(this.latencyUncorrected) : null,
      cpuPercent: ((cpu.user + cpu.system) / 1e6 / windowS) * 100,
    };
  }
}

/** A connection that carries requests: WebSocket (pipelined) or HTTP (one at a time). */
interface Conn {
  /** Sends one request now or at the end of this turn; `next` runs when it is answered (closed loop). */
  send(f: Flight, key: string, next: (() => void) | null): void;
  close(): void;
}

const readModeCode = { lease: 1, quorum: 2 } as const;
/** Bytes of an HTTP response head at most. */
const responseHeadBytesMax = 64 * 1024;

class WsConn implements Conn {
  /** The next request id on this connection: 1..2^32-1, wrapping. */
  private nextId = 1;
  /** Requests sent and unanswered, by id. Bounded by the caller's in-flight bound. */
  private readonly flights = new Map<number, { f: Flight; next: (() => void) | null }>();
  /** Requests encoded this turn, sent as one WebSocket message. */
  private queue: Buffer[] = [];
  /** Sum of the byte lengths in `queue`. */
  private queueBytes = 0;
  /** A flush is scheduled for the end of this turn. */
  private flushScheduled = false;

  private constructor(private readonly ws: WebSocket, private readonly load: Load) {
    ws.on('message', (data: Buffer) => this.onMessage(data));
    ws.on('error', () => {
      // 'close' follows and fails what is in flight.
    });
    ws.on('close', () => {
      const now = performance.now();
      for (const [, w] of this.flights) load.done(w.f, 0, now);
      this.flights.clear();
    });
  }

  static open(url: string, load: Load): Promise<WsConn> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.binaryType = 'nodebuffer';
      ws.once('open', () => resolve(new WsConn(ws, load)));
      ws.once('error', reject);
    });
  }

  send(f: Flight, key: string, next: (() => void) | null): void {
    const id = this.nextId;
    this.nextId = (this.nextId % 0xffffffff) + 1;
    const value = f.read ? null : this.load.payload;
    const keyLength = Buffer.byteLength(key, 'latin1');
    const length = 16 + keyLength + (value?.byteLength ?? 0);
    const b = Buffer.allocUnsafe(length);
    b.writeUInt32LE(length, 0);
    b.writeUInt32LE(id, 4);
    b[8] = f.read ? 4 : 1; // Get : Put (ClientOp in src/api/client-protocol.ts)
    b[9] = f.read ? readModeCode[this.load.cfg.read] : 0;
    b.writeUInt16LE(keyLength, 10);
    b.writeUInt32LE(0, 12);
    b.write(key, 16, 'latin1');
    if (value !== null) value.copy(b, 16 + keyLength);
    this.flights.set(id, { f, next });
    this.queue.push(b);
    this.queueBytes += length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  close(): void {
    this.ws.terminate();
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length === 0 || this.ws.readyState !== WebSocket.OPEN) return;
    const data = this.queue.length === 1 ? this.queue[0] : Buffer.concat(this.queue, this.queueBytes);
    this.queue = [];
    this.queueBytes = 0;
    this.ws.send(data, { binary: true });
  }

  private onMessage(data: Buffer): void {
    const now = performance.now();
    let at = 0;
    while (at + 12 <= data.byteLength) {
      const length = data.readUInt32LE(at);
      if (length < 12 || at + length > data.byteLength) break;
      const id = data.readUInt32LE(at + 4);
      const status = data.readUInt16LE(at + 8);
      at += length;
      const w = this.flights.get(id);
      if (w === undefined) continue;
      this.flights.delete(id);
      this.load.done(w.f, status, now);
      if (w.next !== null) {
        // A 503 says "retry shortly": back off a little instead of spinning.
        if (status === 503) setTimeout(w.next, 1);
        else w.next();
      }
    }
  }
}

class HttpConn implements Conn {
  /** The request written and not yet answered; HTTP/1.1 without pipelining has at most one. */
  private current: { f: Flight; next: (() => void) | null } | null = null;
  /** Bytes received and not yet parsed (a partial response). Bounded by one response. */
  private buf: Buffer = Buffer.alloc(0);
  /** Open loop: requests due while `current` is out, in order. Bounded by outstandingMax overall. */
  private readonly waiting: { f: Flight; key: string; next: (() => void) | null }[] = [];

  private constructor(private readonly socket: net.Socket, private readonly load: Load, private readonly hostHeader: string) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => {});
    socket.on('close', () => {
      const now = performance.now();
      if (this.current !== null) load.done(this.current.f, 0, now);
      for (const w of this.waiting) load.done(w.f, 0, now);
      this.current = null;
      this.waiting.length = 0;
    });
  }

  static open(host: string, port: number, load: Load): Promise<HttpConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port });
      s.once('connect', () => resolve(new HttpConn(s, load, `${host}:${port}`)));
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

  send(f: Flight, key: string, next: (() => void) | null): void {
    if (this.current !== null) {
      this.waiting.push({ f, key, next });
      return;
    }
    this.write(f, key, next);
  }

  close(): void {
    this.socket.destroy();
  }

  private write(f: Flight, key: string, next: (() => void) | null): void {
    this.current = { f, next };
    f.sentMs = performance.now();
    if (f.read) {
      this.socket.write(`GET /kv/${key}?read=${this.load.cfg.read} HTTP/1.1\r\nhost: ${this.hostHeader}\r\n\r\n`, 'latin1');
    } else {
      this.socket.cork();
      this.socket.write(`PUT /kv/${key} HTTP/1.1\r\nhost: ${this.hostHeader}\r\ncontent-length: ${this.load.payload.byteLength}\r\n\r\n`, 'latin1');
      this.socket.write(this.load.payload);
      this.socket.uncork();
    }
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.byteLength === 0 ? d : Buffer.concat([this.buf, d]);
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0) {
        // No response head is this long: the stream is not HTTP. Drop the link (its requests fail).
        if (this.buf.byteLength > responseHeadBytesMax) this.socket.destroy();
        return;
      }
      const head = this.buf.toString('latin1', 0, end);
      const status = Number(head.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const bodyBytes = m === null ? 0 : Number(m[1]);
      if (this.buf.byteLength < end + 4 + bodyBytes) return;
      this.buf = this.buf.subarray(end + 4 + bodyBytes);
      const c = this.current;
      if (c === null) {
        // The server answered a request never made: nothing after it can be matched. Drop the link.
        this.socket.destroy();
        return;
      }
      this.current = null;
      this.load.done(c.f, Number.isInteger(status) ? status : 0, performance.now());
      const w = this.waiting.shift();
      if (w !== undefined) this.write(w.f, w.key, w.next);
      if (c.next !== null) {
        if (status === 503) setTimeout(c.next, 1);
        else c.next();
      }
    }
  }
}

async function run(cfg: LoadConfig): Promise<void> {
  const load = new Load(cfg);
  const conns: Conn[] = [];
  const count = cfg.api === 'ws' ? cfg.connections : cfg.clients;
  for (let i = 0; i < count; i++) {
    conns.push(cfg.api === 'ws'
      ? await WsConn.open(`ws://${cfg.host}:${cfg.port}/client`, load)
      : await HttpConn.open(cfg.host, cfg.port, load));
  }

  const issue = (conn: Conn, dueMs: number, next: (() => void) | null): void => {
    const op = load.nextOp();
    load.inFlight++;
    // sentMs is when it leaves this process (HTTP requests queued behind another reset it when written).
    conn.send({ dueMs, sentMs: performance.now(), read: op.read }, op.key, next);
  };

  if (cfg.mode === 'closed') {
    // Client c uses connection c mod count; it sends again when answered, until stopped.
    for (let c = 0; c < cfg.clients; c++) {
      const conn = conns[c % conns.length];
      const loop = (): void => {
        if (!load.stopped) issue(conn, performance.now(), loop);
      };
      loop();
    }
  } else {
    const t0 = performance.now();
    let sent = 0;
    let rr = 0;
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
        issue(conns[rr], dueMs, null);
        rr = (rr + 1) % conns.length;
      }
      setTimeout(tick, 1);
    };
    tick();
  }

  process.send!({ type: 'ready' });
  process.on('message', (m: Msg) => {
    if (m.type === 'measure') load.measure();
    if (m.type === 'stop') {
      load.stopped = true;
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
