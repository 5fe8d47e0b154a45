// The client API of a KV node, on the node's uWS App: HTTP (/kv/{key}, /status, /metrics) and the
// binary WebSocket /client (see client-protocol.ts).
//
// Status codes: 200 done; 404 absent; 412 compare-and-set mismatch; 400 malformed, with a JSON
// {error}; 413 key or value too large; 503 with Retry-After only when the command was surely not
// proposed (no leader known, queue full, read not confirmed); 504 when the outcome is unknown
// (no answer in time: the write may or may not be applied). Never a 200 that did not happen.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import type { HttpRequest, HttpResponse } from '@trufflesuite/uws-js-unofficial';
import type * as Uws from '@trufflesuite/uws-js-unofficial';
import { isUtf8 } from 'node:buffer';
import { keyBytesMax, KvInputError, KvOpCode, opBytes, opBytesFromRequest, opInPlace, valueBytesMax, type KvOp } from '../kv/ops.js';
import type { KvResult, KvStore } from '../kv/store.js';
import { envelopeBytes } from '../node/envelope.js';
import type { PaxlogNode, ProposeDone, RequestError } from '../node/node.js';
import type { ReadMode } from '../protocol/types.js';
import { partitionPeersMax } from '../transport/faults.js';
import { diskDelayMsMax } from '../storage/log-store.js';
import { ClientOp, encodeResponse, forEachRequest, ResponseWriter, type ClientReadMode, type RequestView } from './client-protocol.js';

const statusText: Record<number, string> = {
  200: '200 OK', 400: '400 Bad Request', 401: '401 Unauthorized', 404: '404 Not Found', 405: '405 Method Not Allowed', 412: '412 Precondition Failed',
  413: '413 Payload Too Large', 500: '500 Internal Server Error', 503: '503 Service Unavailable', 504: '504 Gateway Timeout',
  507: '507 Insufficient Storage',
};

/** Body bytes accepted at most: the largest value plus room for nothing else. */
const bodyBytesMax = valueBytesMax;
/**
 * Bytes of bodies still arriving (copied out of their chunks, see withBody) that this process holds
 * at most, over all connections; a request whose next chunk would pass it gets 503 and its
 * connection is closed. Without it, 2,000 connections each sending most of a 1 MiB body held 2 GB.
 * Invariant: 0 <= bodyBytesHeld <= bodyBytesHeldMax.
 */
const bodyBytesHeldMax = 64 * 1024 * 1024;
let bodyBytesHeld = 0;
/** Requests in flight per /client connection at most; beyond it requests get 503. */
const clientInFlightMax = 4096;
/**
 * Answer bytes one /client connection gathers in one turn at most (its maxBackpressure): a GET's
 * value beyond it is answered 503 instead. Without it 4096 GETs of a 1 MiB value made one 4 GiB message.
 */
const clientTurnBytesMax = 16 * 1024 * 1024;

export interface Answer {
  status: number;
  body?: Uint8Array | string;
  /** Seconds, for 503. */
  retryAfter?: number;
  contentType?: string;
}

const kvStatus: Record<KvResult, number> = { ok: 200, 'not-found': 404, mismatch: 412, full: 507, bad: 400 };
const error = (status: number, message: string, retryAfter?: number): Answer =>
  ({ status, body: JSON.stringify({ error: message }), contentType: 'application/json', retryAfter });

/** Receives a request's answer. */
export type Answered = (a: Answer) => void;

const ok: Answer = { status: 200 };

/** The KV operation of a /client write op. */
const writeOp = (op: ClientOp): KvOp['op'] => (op === ClientOp.Put ? 'put' : op === ClientOp.Delete ? 'delete' : 'cas');

/** A /client write's tag (see PaxlogNode.proposeEnveloped): its op and request id, exactly, in one number. */
const clientWriteTag = (r: RequestView): number => r.op * 2 ** 32 + r.id;
const tagOp = (tag: number): ClientOp => Math.floor(tag / 2 ** 32);
const tagId = (tag: number): number => tag % 2 ** 32;
const opCodes = { put: KvOpCode.Put, delete: KvOpCode.Delete, cas: KvOpCode.Cas } as const;
const resultReasons: Record<KvResult, string> = {
  ok: '', 'not-found': 'no such key', mismatch: 'the key is absent or its value differs from expect', full: 'the store is full', bad: 'bad command',
};

/**
 * The operations themselves, shared by HTTP and /client. Never throws on bad input; every call
 * answers exactly once (possibly before it returns). Callbacks, not promises: /client answers
 * hundreds of thousands of requests a second, and a promise chain per request was a visible share.
 */
export class KvService {
  constructor(private readonly node: PaxlogNode<KvResult>, private readonly kv: KvStore) {}

  /** Writes of one /client message, proposed together by flushWrites(). Bounded by the requests in one message. */
  private envelopes: Uint8Array[] = [];
  private dones: ProposeDone<KvResult>[] = [];
  private tags: number[] = [];

  /** A put, delete or cas from its parts (key as a string or UTF-8 bytes; views are copied before this returns). */
  writeParts(op: KvOp['op'], key: string | Uint8Array, expect: Uint8Array | null, value: Uint8Array | null, done: Answered): void {
    let envelope: Buffer;
    try {
      envelope = opBytes(opCodes[op], key, expect, value, envelopeBytes);
    } catch (e) {
      if (e instanceof KvInputError) return done(error(e.status, e.message));
      throw e;
    }
    this.node.proposeEnveloped([envelope], [this.resultHandler(op, done)]);
  }

  /**
   * The copy of the /client message whose writes are queued (and the message it copies): puts and
   * deletes become commands in place in it (opInPlace), one copy per message rather than per write.
   */
  private messageCopy: Buffer | null = null;
  private copied: Buffer | null = null;

  /**
   * Queue a /client request's put, delete or cas (copied now) for flushWrites(); `done` hears how it
   * ends with the tag clientWriteTag(r). Returns the answer to a request refused at once, else null.
   */
  queueWrite(r: RequestView, done: ProposeDone<KvResult>): Answer | null {
    const op = writeOp(r.op);
    let envelope: Buffer;
    try {
      if (op === 'cas' || r.expectLength !== 0) {
        envelope = opBytesFromRequest(opCodes[op], r.bytes, r.keyStart, r.keyLength, r.expectLength, r.end, envelopeBytes);
      } else {
        if (this.copied !== r.bytes) {
          this.messageCopy = Buffer.allocUnsafe(r.bytes.byteLength);
          r.bytes.copy(this.messageCopy);
          this.copied = r.bytes;
        }
        envelope = opInPlace(opCodes[op], this.messageCopy!, r.keyStart, r.keyLength, r.end, envelopeBytes);
      }
    } catch (e) {
      if (e instanceof KvInputError) return error(e.status, e.message);
      throw e;
    }
    this.envelopes.push(envelope);
    this.dones.push(done);
    this.tags.push(clientWriteTag(r));
    return null;
  }

  /** Propose the queued writes in one call (at the end of each /client message). */
  flushWrites(): void {
    this.messageCopy = null;
    this.copied = null;
    if (this.envelopes.length === 0) return;
    const envelopes = this.envelopes;
    this.envelopes = [];
    // The node copies dones and tags; the core may keep the envelopes (a forwarded Propose).
    this.node.proposeEnveloped(envelopes, this.dones, this.tags);
    this.dones.length = 0;
    this.tags.length = 0;
  }

  private resultHandler(op: KvOp['op'], done: Answered): ProposeDone<KvResult> {
    return (err, result) => done(this.writeAnswer(op, err, result));
  }

  /** The answer to a write that ended with `err` or `result` (counted in the metrics). */
  writeAnswer(op: KvOp['op'], err: RequestError | null, result: KvResult | undefined): Answer {
    if (err !== null) return this.failed(op, err);
    const status = kvStatus[result!];
    this.count(op, status);
    return status === 200 ? ok : error(status, resultReasons[result!]);
  }

  /** A write from its parts; `value` and `expect` are copied before this returns. */
  write(o: KvOp, done: Answered): void {
    if (o.op === 'delete') this.writeParts('delete', o.key, null, null, done);
    else this.writeParts(o.op, o.key, o.op === 'cas' ? o.expect : null, o.value, done);
  }

  /** A read of `key` (a string, or its UTF-8 bytes) served in `mode`. */
  get(key: string | Uint8Array, mode: ClientReadMode, done: Answered): void {
    const size = typeof key === 'string' ? Buffer.byteLength(key, 'utf8') : key.byteLength;
    if (size === 0) return done(error(400, 'the key is empty'));
    if (size > keyBytesMax) return done(error(413, `the key is ${size} bytes; at most ${keyBytesMax}`));
    if (typeof key !== 'string' && !isUtf8(key)) return done(error(400, 'the key is not UTF-8'));
    const answer = (): void => {
      const value = this.kv.get(key);
      this.count('get', value === undefined ? 404 : 200);
      done(value === undefined ? error(404, 'no such key') : { status: 200, body: value, contentType: 'application/octet-stream' });
    };
    if (mode === 'local') return answer();
    // A /client key is a view into a message that dies with its callback: keep a copy for later.
    if (typeof key !== 'string') key = Buffer.from(key);
    this.node.readWith(mode === 'linearizable' ? 'lease' : mode as ReadMode, (err) => (err === null ? answer() : done(this.failed('get', err))));
  }

  private count(op: string, status: number): void {
    this.node.metrics.countRequest(op, status);
  }

  private failed(op: string, e: RequestError): Answer {
    const status = e.surelyNotProposed ? 503 : 504;
    this.count(op, status);
    return error(status, e.message, status === 503 ? 1 : undefined);
  }
}

export interface ApiOptions {
  /** When non-empty, every request needs `Authorization: Bearer <clientToken>`; 401 otherwise. */
  clientToken?: string;
  /** Open /client connections at most (default 1024); an upgrade past it gets 503 with Retry-After. */
  clientConnectionsMax?: number;
  /**
   * Answer bytes waiting unread in /client connections' send buffers, over all of them, at most
   * (default 256 MiB). Past it, a connection that still has answers unread is closed (1008) when
   * the next ones for it are ready; connections whose clients read are served on.
   */
  clientBufferedBytesMax?: number;
}

/**
 * What every /client connection of a node holds together. Each may also hold a message still
 * arriving (maxPayloadLength) and its own unread answers (maxBackpressure): without a bound on
 * both sums, 60 connections that never read held 800 MB of 1 MiB answers, and 100 that sent most
 * of a message and never the end held 400 MB, for as long as they kept the connection alive.
 */
class ClientBudget {
  /** Open /client connections. Invariant: 0 <= connections <= connectionsMax. */
  connections = 0;
  /** The sum of each open connection's `buffered`. Invariant: >= 0. */
  buffered = 0;
  /** The answer instead of a value while `buffered` is past `bufferedMax`. */
  readonly full: Answer;
  constructor(readonly connectionsMax: number, readonly bufferedMax: number) {
    this.full = error(503, `the node holds over ${bufferedMax} bytes of /client answers its clients have not read; retry`, 1);
  }

  /** Count what the connection's send buffer holds now. */
  account(ws: Uws.WebSocket<ClientConn>, conn: ClientConn): void {
    const now = conn.closed ? 0 : ws.getBufferedAmount();
    this.buffered += now - conn.buffered;
    conn.buffered = now;
  }
}

export function attachApi(node: PaxlogNode<KvResult>, kv: KvStore, o: ApiOptions = {}): KvService {
  const service = new KvService(node, kv);
  const app = node.app;
  const allowed = bearerCheck(o.clientToken);
  // Every route below asks first; uWS runs the first handler whose pattern matches, so a refusal
  // must be answered inside each route, not in a catch-all before them.
  const refused = (res: HttpResponse, req: HttpRequest): boolean => {
    // Without a token nothing is refused, and no request's header is read for it.
    if (allowed === allowAll || allowed(req.getHeader('authorization'))) return false;
    res.onAborted(() => {});
    send(res, unauthorized, true);
    return true;
  };

  app.get('/status', (res, req) => {
    if (!refused(res, req)) send(res, { status: 200, body: JSON.stringify(node.status()), contentType: 'application/json' });
  });
  app.get('/metrics', (res, req) => {
    if (refused(res, req)) return;
    const aborted = onAbort(res);
    node.metrics.registry.metrics().then((text) => {
      if (!aborted.value) send(res, { status: 200, body: text, contentType: node.metrics.registry.contentType });
    }, () => {
      if (!aborted.value) send(res, error(500, 'metrics unavailable'));
    });
  });

  app.get('/kv/*', (res, req) => {
    if (refused(res, req)) return;
    const key = keyOf(req);
    const mode = new URLSearchParams(req.getQuery() ?? '').get('read') ?? 'linearizable';
    if (key === null) return send(res, error(400, 'the key is not valid percent-encoded UTF-8'));
    if (!(['linearizable', 'lease', 'quorum', 'local'] as string[]).includes(mode)) {
      return send(res, error(400, `read=${mode} is not one of lease, quorum, local`));
    }
    const aborted = onAbort(res);
    service.get(key, mode as ClientReadMode, (a) => aborted.value || send(res, a));
  });

  app.del('/kv/*', (res, req) => {
    if (refused(res, req)) return;
    const key = keyOf(req);
    if (key === null) return send(res, error(400, 'the key is not valid percent-encoded UTF-8'));
    const aborted = onAbort(res);
    service.write({ op: 'delete', key }, (a) => aborted.value || send(res, a));
  });

  app.put('/kv/*', (res, req) => {
    if (refused(res, req)) return;
    const key = keyOf(req);
    withBody(res, req, key, (value, done) => service.write({ op: 'put', key: key!, value }, done));
  });

  app.post('/kv/*', (res, req) => {
    if (refused(res, req)) return;
    const key = keyOf(req);
    const expect = expectOf(req.getQuery() ?? '');
    if (typeof expect === 'string') {
      res.onAborted(() => {});
      return send(res, error(400, expect), true);
    }
    withBody(res, req, key, (value, done) => service.write({ op: 'cas', key: key!, expect, value }, done));
  });

  // Take a snapshot now and trim the log below it (also taken every --snapshot-slots or
  // --snapshot-bytes); answers with the snapshot's prefix once it is durable.
  app.post('/admin/snapshot', (res, req) => {
    if (refused(res, req)) return;
    const aborted = onAbort(res);
    node.snapshot().then((prefix) => {
      if (!aborted.value) send(res, { status: 200, body: JSON.stringify({ snapshotPrefix: prefix }), contentType: 'application/json' });
    }, (e: Error) => {
      if (!aborted.value) send(res, error(503, `snapshot not taken: ${e.message}`, 1));
    });
  });

  // Tests only (serve --fault-control): the body is a JSON list of peer ids to cut this node off
  // from, both directions; [] heals.
  faultRoute(app, node, '/fault/partition', 'a list of peer ids such as [2, 3]', (v) => checkPartition(v, (id) => node.isPeer(id)), (peers) => {
    node.partition(peers);
    return { partitioned: node.partitioned };
  });
  // Tests only (serve --fault-control): the body is {"delayMs": N}, the slow disk's delay per log
  // transaction; 0 heals.
  faultRoute(app, node, '/fault/disk', '{"delayMs": N}', checkDiskDelay, (ms) => {
    node.slowDisk(ms);
    return { diskDelayMs: ms };
  });

  app.any('/kv/*', (res, req) => {
    if (!refused(res, req)) send(res, error(405, 'use GET, PUT, DELETE or POST on /kv/{key}'));
  });
  app.any('/*', (res, req) => {
    if (!refused(res, req)) send(res, error(404, `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}`));
  });

  const budget = new ClientBudget(o.clientConnectionsMax ?? 1024, o.clientBufferedBytesMax ?? 256 * 1024 * 1024);
  attachClientSocket(app, node, service, allowed, budget);
  return service;
}

const unauthorized: Answer = { ...error(401, 'this node needs Authorization: Bearer <token> (the client token)') };

/** bearerCheck's answer when there is no token. */
const allowAll = (): boolean => true;

/**
 * A check of an Authorization header against the token, in constant time: both sides are hashed
 * first, so neither the comparison nor its length reveals how much of a guess was right.
 */
export function bearerCheck(token: string | undefined): (header: string) => boolean {
  if (token === undefined || token === '') return allowAll;
  const want = crypto.createHash('sha256').update(`Bearer ${token}`).digest();
  return (header) => crypto.timingSafeEqual(want, crypto.createHash('sha256').update(header).digest());
}

/**
 * A test-only fault control (serve --fault-control) at POST `path`, its body JSON: `check` gives the
 * fault asked for or what is wrong with it (400), `apply` sets it and gives the answer's JSON.
 * Without the flag the route does not exist (404).
 */
function faultRoute<T>(app: Uws.TemplatedApp, node: PaxlogNode<KvResult>, path: string, expected: string,
  check: (v: unknown) => T | string, apply: (fault: T) => unknown): void {
  app.post(path, (res, req) => {
    if (!node.faultControl) {
      res.onAborted(() => {});
      return send(res, error(404, `no route POST ${path} (it exists only with serve --fault-control, for tests)`), true);
    }
    withBody(res, req, '', (body, done) => {
      let v: unknown;
      try {
        v = JSON.parse(Buffer.from(body).toString('utf8'));
      } catch {
        return done(error(400, `the body is not JSON: expected ${expected}`));
      }
      const fault = check(v);
      if (typeof fault === 'string') return done(error(400, fault));
      done({ status: 200, body: JSON.stringify(apply(fault)), contentType: 'application/json' });
    });
  });
}

/** The body of POST /fault/disk, {"delayMs": N}: N, or what is wrong with it. */
function checkDiskDelay(v: unknown): number | string {
  const ms = (v as { delayMs?: unknown } | null)?.delayMs;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || !Number.isSafeInteger(ms) || (ms as number) < 0 || (ms as number) > diskDelayMsMax) {
    return `expected {"delayMs": N} with N a whole number of ms from 0 to ${diskDelayMsMax}`;
  }
  return ms as number;
}

/** A partition request's body: a list of distinct other members' ids; a string says what is wrong. */
function checkPartition(v: unknown, isPeer: (id: number) => boolean): number[] | string {
  if (!Array.isArray(v) || v.length > partitionPeersMax) return `expected a JSON list of at most ${partitionPeersMax} peer ids`;
  for (const id of v) {
    if (!Number.isSafeInteger(id) || !isPeer(id as number)) return `${JSON.stringify(id)} is not the id of another member`;
  }
  return [...new Set(v as number[])];
}

/**
 * The old value of a compare-and-set, `?expect=`, as bytes: each %XX is one byte (RFC 3986), so any
 * value can be expected, not only UTF-8 text; '+' is a space, as in a form. A string says what is
 * wrong (no expect, or a % not followed by two hex digits).
 */
export function expectOf(query: string): Buffer | string {
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if ((eq < 0 ? part : part.slice(0, eq)) !== 'expect') continue;
    const text = eq < 0 ? '' : part.slice(eq + 1);
    const out = Buffer.allocUnsafe(Buffer.byteLength(text, 'utf8'));
    let n = 0;
    let from = 0; // text[from..i) is copied as UTF-8 at the next escape or the end
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 0x25 && c !== 0x2b) continue;
      n += out.write(text.slice(from, i), n, 'utf8');
      if (c === 0x2b) {
        out[n++] = 0x20;
        from = i + 1;
        continue;
      }
      const hex = text.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return `?expect= has a % not followed by two hex digits at character ${i + 1}`;
      out[n++] = parseInt(hex, 16);
      i += 2;
      from = i + 1;
    }
    n += out.write(text.slice(from), n, 'utf8');
    return out.subarray(0, n);
  }
  return 'POST /kv/{key} needs ?expect={old value} (compare-and-set)';
}

/** The key of /kv/{key}, percent-decoded; null if it does not decode. */
function keyOf(req: HttpRequest): string | null {
  try {
    return decodeURIComponent(req.getUrl().slice(4));
  } catch {
    return null;
  }
}

/** Whether the client went away before its answer; `then` runs when it does. */
function onAbort(res: HttpResponse, then?: () => void): { value: boolean } {
  const aborted = { value: false };
  res.onAborted(() => {
    aborted.value = true;
    then?.();
  });
  return aborted;
}

/**
 * Read the request body (bounded), then run `handle`; answers 400/413 itself for bad input. The
 * body handed to `handle` is valid only until it returns (a body in one chunk is uWS's memory,
 * not a copy): `handle` copies what it keeps.
 */
function withBody(res: HttpResponse, req: HttpRequest, key: string | null, handle: (body: Uint8Array, done: Answered) => void): void {
  let chunks: Buffer[] | null = null;
  let size = 0;
  let refused = false;
  /** Give back what this request's copies hold of bodyBytesHeld (once: at its end, refusal or abort). */
  const release = (): void => {
    if (chunks !== null) bodyBytesHeld -= chunks.reduce((n, c) => n + c.byteLength, 0);
    chunks = null;
    assert.ok(bodyBytesHeld >= 0, `bodyBytesHeld ${bodyBytesHeld}`);
  };
  const aborted = onAbort(res, release);
  if (key === null) return send(res, error(400, 'the key is not valid percent-encoded UTF-8'), true);
  const declared = req.getHeader('content-length');
  if (declared !== '' && Number(declared) > bodyBytesMax) {
    return send(res, error(413, `the value is ${declared} bytes; at most ${bodyBytesMax}`), true);
  }
  const done = (a: Answer): void => {
    if (!aborted.value) send(res, a);
  };
  res.onData((chunk, isLast) => {
    if (refused) return;
    size += chunk.byteLength;
    if (size > bodyBytesMax) {
      refused = true;
      release();
      return send(res, error(413, `the value is over ${bodyBytesMax} bytes`), true);
    }
    // The usual body comes in one chunk, handled during this callback, while its memory is valid.
    if (isLast && chunks === null) return handle(new Uint8Array(chunk), done);
    // Otherwise each chunk is copied: its memory is only valid during this callback.
    if (bodyBytesHeld + chunk.byteLength > bodyBytesHeldMax) {
      refused = true;
      release();
      return send(res, error(503, `the node holds ${bodyBytesHeldMax} bytes of bodies still arriving; retry`, 1), true);
    }
    bodyBytesHeld += chunk.byteLength;
    (chunks ??= []).push(Buffer.from(new Uint8Array(chunk)));
    if (!isLast) return;
    const body = Buffer.concat(chunks, size);
    release();
    handle(body, done);
  });
}

function send(res: HttpResponse, a: Answer, closeConnection = false): void {
  res.cork(() => {
    res.writeStatus(statusText[a.status] ?? String(a.status));
    if (a.contentType !== undefined) res.writeHeader('content-type', a.contentType);
    if (a.retryAfter !== undefined) res.writeHeader('retry-after', String(a.retryAfter));
    const body = a.body ?? '';
    // A refusal that closes the connection ends it at once: nothing else is read from it.
    if (closeConnection) return void res.end(body, true);
    // Every other answer goes out only as the client reads it. With end(), uWS buffered every
    // answer of a client that pipelines requests and never reads: gigabytes of 64 KiB values, and
    // about 5 MiB a second of small answers (404s, /status). While one is pending, uWS closes the
    // connection on the next pipelined request.
    const bytes = typeof body !== 'string' ? body : body === '' ? noBody : Buffer.from(body);
    const start = res.getWriteOffset();
    const [ok, done] = res.tryEnd(bytes, bytes.byteLength);
    if (ok || done) return;
    res.onWritable((offset) => res.tryEnd(bytes.subarray(offset - start), bytes.byteLength)[0]);
    // uWS requires an abort handler on a response still pending when its handler returns; the
    // caller's, if any, is done with `res` once it sent (send is a request's last use of it).
    res.onAborted(() => {});
  });
}

const noBody = new Uint8Array(0);

/** Per /client connection (uWS user data). */
interface ClientConn {
  /** Requests received and not yet answered. Invariant: answered with 503 beyond clientInFlightMax. */
  inFlight: number;
  /** The socket closed: answers are dropped (uWS forbids sending on a closed socket). */
  closed: boolean;
  /**
   * Answers encoded in this turn of the event loop, sent together as one message when it ends
   * (one uWS send per answer cost more CPU than the answer itself). Bounded by clientInFlightMax answers.
   */
  out: ResponseWriter;
  /** How this connection's writes end (one callback for all, told apart by tag; made at the first message). */
  writeDone: ProposeDone<KvResult> | null;
  /** Bytes its send buffer held when last looked at (ClientBudget.account); 0 once closed. */
  buffered: number;
  /** The node's, shared by all its connections. */
  budget: ClientBudget;
}

function attachClientSocket(app: Uws.TemplatedApp, node: PaxlogNode<KvResult>, service: KvService, allowed: (header: string) => boolean, budget: ClientBudget): void {
  app.ws<ClientConn>('/client', {
    compression: node.uws.DISABLED,
    maxPayloadLength: 4 * 1024 * 1024,
    maxBackpressure: 16 * 1024 * 1024,
    closeOnBackpressureLimit: 1,
    idleTimeout: 120,
    upgrade: (res, req, context) => {
      if (!allowed(req.getHeader('authorization'))) {
        res.onAborted(() => {});
        return send(res, unauthorized, true);
      }
      if (budget.connections >= budget.connectionsMax) {
        res.onAborted(() => {});
        return send(res, error(503, `${budget.connectionsMax} /client connections are open on this node; retry, or share one (it carries many requests)`, 1), true);
      }
      res.upgrade<ClientConn>({ inFlight: 0, closed: false, out: new ResponseWriter(), writeDone: null, buffered: 0, budget }, req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: () => {
      budget.connections++;
    },
    message: (ws, message, isBinary) => {
      const conn = ws.getUserData();
      if (!isBinary) {
        ws.send(encodeResponse(0, 400, 'the /client protocol is binary'), true);
        return;
      }
      // The message dies with this callback; writes copy what they keep when queued, reads copy the key.
      const writeDone = (conn.writeDone ??= (err, result, tag) => answer(ws, conn, tagId(tag), service.writeAnswer(writeOp(tagOp(tag)), err, result)));
      const bad = forEachRequest(new Uint8Array(message), (r) => {
        if (conn.closed) return; // cut off by its answers (see answer): the rest is not taken
        conn.inFlight++;
        if (conn.inFlight > clientInFlightMax) return answer(ws, conn, r.id, error(503, `more than ${clientInFlightMax} requests in flight on this connection`, 1));
        if (r.op === ClientOp.Get) {
          const id = r.id;
          service.get(r.bytes.subarray(r.keyStart, r.keyStart + r.keyLength), r.readMode, (a) => answer(ws, conn, id, a));
        } else {
          const refused = service.queueWrite(r, writeDone);
          if (refused !== null) answer(ws, conn, r.id, refused);
        }
      });
      service.flushWrites();
      if (bad !== null && !conn.closed) ws.send(encodeResponse(bad.id, 400, bad.reason), true);
    },
    drain: (ws) => {
      budget.account(ws, ws.getUserData());
    },
    close: (ws) => {
      const conn = ws.getUserData();
      conn.closed = true;
      budget.account(ws, conn);
      budget.connections--;
    },
  });
}

/** Answers this long or shorter (a status, a small value) are sent even past the unread budget. */
const unreadAnswerBytesMin = 256;

const turnFull = error(503, `over ${clientTurnBytesMax} bytes of answers on this connection at once; read them, then retry`, 1);

/**
 * Answer bytes past clientTurnBytesMax a turn may still gather (its 503s, each about 100 bytes)
 * before the connection is closed: one message of a few MiB of tiny writes, each past the in-flight
 * bound answered with a 503 text, asked for answers several times its size.
 */
const clientTurnSlackBytes = 1024 * 1024;

/** Queue one answer on a /client connection; the first of a turn schedules the send. */
function answer(ws: Uws.WebSocket<ClientConn>, conn: ClientConn, id: number, a: Answer): void {
  conn.inFlight--;
  if (conn.closed) return;
  if (conn.out.length > clientTurnBytesMax + clientTurnSlackBytes) {
    conn.closed = true;
    ws.end(1008, `over ${clientTurnBytesMax + clientTurnSlackBytes} bytes of answers asked for at once`);
    return;
  }
  if (conn.out.length === 0) setImmediate(() => sendAnswers(ws, conn));
  const bytes = typeof a.body === 'string' ? Buffer.byteLength(a.body) : a.body?.byteLength ?? 0;
  if (conn.out.length + bytes > clientTurnBytesMax) a = turnFull;
  // While the node holds its budget of unread answers, a value is not added to them.
  else if (bytes > unreadAnswerBytesMin && conn.budget.buffered > conn.budget.bufferedMax) a = conn.budget.full;
  conn.out.write(id, a.status, a.body ?? '');
}

/** Sends the answers queued on a /client connection in this turn as one message. */
function sendAnswers(ws: Uws.WebSocket<ClientConn>, conn: ClientConn): void {
  const bytes = conn.out.take();
  if (conn.closed || bytes.byteLength === 0) return;
  const budget = conn.budget;
  budget.account(ws, conn);
  if (conn.buffered > 0 && budget.buffered + bytes.byteLength > budget.bufferedMax) {
    conn.closed = true;
    ws.end(1008, `answers unread: the node holds ${budget.bufferedMax} bytes of unread /client answers`);
    return;
  }
  ws.send(bytes, true);
  budget.account(ws, conn);
}
