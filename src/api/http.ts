// The client API of a KV node, on the node's uWS App: HTTP (/kv/{key}, /status, /metrics) and the
// binary WebSocket /client (see client-protocol.ts).
//
// Status codes: 200 done; 404 absent; 412 compare-and-set mismatch; 400 malformed, with a JSON
// {error}; 413 key or value too large; 503 with Retry-After only when the command was surely not
// proposed (no leader known, queue full, read not confirmed); 504 when the outcome is unknown
// (no answer in time: the write may or may not be applied). Never a 200 that did not happen.

import crypto from 'node:crypto';
import type { HttpRequest, HttpResponse } from '@trufflesuite/uws-js-unofficial';
import type * as Uws from '@trufflesuite/uws-js-unofficial';
import type { Logger } from 'pino';
import { encodeOp, keyBytes, KvInputError, valueBytesMax, type KvOp } from '../kv/ops.js';
import type { KvResult, KvStore } from '../kv/store.js';
import { RequestError, type PaxlogNode } from '../node/node.js';
import type { ReadMode } from '../protocol/types.js';
import { partitionPeersMax } from '../transport/faults.js';
import { ClientOp, decodeRequests, encodeResponse, type ClientReadMode, type ClientRequest } from './client-protocol.js';

const statusText: Record<number, string> = {
  200: '200 OK', 400: '400 Bad Request', 401: '401 Unauthorized', 404: '404 Not Found', 405: '405 Method Not Allowed', 412: '412 Precondition Failed',
  413: '413 Payload Too Large', 500: '500 Internal Server Error', 503: '503 Service Unavailable', 504: '504 Gateway Timeout',
  507: '507 Insufficient Storage',
};

/** Body bytes accepted at most: the largest value plus room for nothing else. */
const bodyBytesMax = valueBytesMax;
/** Requests in flight per /client connection at most; beyond it requests get 503. */
const clientInFlightMax = 4096;

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

/** The operations themselves, shared by HTTP and /client. Never throws. */
export class KvService {
  constructor(private readonly node: PaxlogNode<KvResult>, private readonly kv: KvStore, private readonly log: Logger) {}

  async write(o: KvOp): Promise<Answer> {
    let command: Uint8Array;
    try {
      command = encodeOp(o);
    } catch (e) {
      if (e instanceof KvInputError) return error(e.status, e.message);
      throw e;
    }
    const op = o.op;
    try {
      const result = await this.node.propose(command);
      this.node.metrics.requests.inc({ op, status: String(kvStatus[result]) });
      return result === 'ok' ? { status: 200 } : error(kvStatus[result], result === 'not-found' ? 'no such key' :
        result === 'mismatch' ? 'the current value differs from expect' : result === 'full' ? 'the store is full' : 'bad command');
    } catch (e) {
      return this.failed(op, e);
    }
  }

  async get(key: string, mode: ClientReadMode): Promise<Answer> {
    try {
      keyBytes(key);
    } catch (e) {
      if (e instanceof KvInputError) return error(e.status, e.message);
      throw e;
    }
    try {
      if (mode !== 'local') await this.node.read(mode === 'linearizable' ? 'lease' : mode as ReadMode);
    } catch (e) {
      return this.failed('get', e);
    }
    const value = this.kv.get(key);
    this.node.metrics.requests.inc({ op: 'get', status: value === undefined ? '404' : '200' });
    return value === undefined ? error(404, 'no such key') : { status: 200, body: value, contentType: 'application/octet-stream' };
  }

  private failed(op: string, e: unknown): Answer {
    if (!(e instanceof RequestError)) {
      this.log.error({ err: (e as Error).message, op }, 'request failed unexpectedly');
      return error(500, 'internal error');
    }
    const status = e.surelyNotProposed ? 503 : 504;
    this.node.metrics.requests.inc({ op, status: String(status) });
    return error(status, e.message, status === 503 ? 1 : undefined);
  }
}

export interface ApiOptions {
  /** When non-empty, every request needs `Authorization: Bearer <clientToken>`; 401 otherwise. */
  clientToken?: string;
}

export function attachApi(node: PaxlogNode<KvResult>, kv: KvStore, log: Logger, o: ApiOptions = {}): KvService {
  const service = new KvService(node, kv, log);
  const app = node.app;
  const allowed = bearerCheck(o.clientToken);
  // Every route below asks first; uWS runs the first handler whose pattern matches, so a refusal
  // must be answered inside each route, not in a catch-all before them.
  const refused = (res: HttpResponse, req: HttpRequest): boolean => {
    if (allowed(req.getHeader('authorization'))) return false;
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
    void service.get(key, mode as ClientReadMode).then((a) => aborted.value || send(res, a));
  });

  app.del('/kv/*', (res, req) => {
    if (refused(res, req)) return;
    const key = keyOf(req);
    if (key === null) return send(res, error(400, 'the key is not valid percent-encoded UTF-8'));
    const aborted = onAbort(res);
    void service.write({ op: 'delete', key }).then((a) => aborted.value || send(res, a));
  });

  app.put('/kv/*', (res, req) => {
    if (refused(res, req)) return;
    const key = keyOf(req);
    withBody(res, req, key, (value) => service.write({ op: 'put', key: key!, value }));
  });

  app.post('/kv/*', (res, req) => {
    if (refused(res, req)) return;
    const key = keyOf(req);
    const expect = new URLSearchParams(req.getQuery() ?? '').get('expect');
    if (expect === null) {
      res.onAborted(() => {});
      return send(res, error(400, 'POST /kv/{key} needs ?expect={old value} (compare-and-set)'), true);
    }
    const expectBytes = Buffer.from(expect, 'utf8');
    withBody(res, req, key, (value) => service.write({ op: 'cas', key: key!, expect: expectBytes, value }));
  });

  // Take a snapshot now and trim the log below it (also taken every --snapshot-slots or
  // --snapshot-bytes); answers with the snapshot's prefix once it is durable.
  app.post('/admin/snapshot', (res, req) => {
    if (refused(res, req)) return;
    const aborted = onAbort(res);
    node.snapshot().then((prefix) => {
      if (!aborted.value) send(res, { status: 200, body: JSON.stringify({ snapshotPrefix: prefix }), contentType: 'application/json' });
    }, (e: Error) => {
      if (!aborted.value) send(res, error(503, `snapshot not taken: ${e.message}`));
    });
  });

  // Tests only (serve --fault-control): the body is a JSON list of peer ids to cut this node off
  // from, both directions; [] heals. Without the flag the route does not exist.
  app.post('/fault/partition', (res, req) => {
    if (!node.faultControl) {
      res.onAborted(() => {});
      return send(res, error(404, 'no route POST /fault/partition (it exists only with serve --fault-control, for tests)'), true);
    }
    withBody(res, req, '', async (body) => {
      const peers = parsePartition(Buffer.from(body).toString('utf8'), (id) => node.isPeer(id));
      if (typeof peers === 'string') return error(400, peers);
      node.partition(peers);
      return { status: 200, body: JSON.stringify({ partitioned: node.partitioned }), contentType: 'application/json' };
    });
  });

  app.any('/kv/*', (res, req) => {
    if (!refused(res, req)) send(res, error(405, 'use GET, PUT, DELETE or POST on /kv/{key}'));
  });
  app.any('/*', (res, req) => {
    if (!refused(res, req)) send(res, error(404, `no route ${req.getMethod().toUpperCase()} ${req.getUrl()}`));
  });

  attachClientSocket(app, node, service, allowed);
  return service;
}

const unauthorized: Answer = { ...error(401, 'this node needs Authorization: Bearer <token> (the client token)') };

/**
 * A check of an Authorization header against the token, in constant time: both sides are hashed
 * first, so neither the comparison nor its length reveals how much of a guess was right.
 */
export function bearerCheck(token: string | undefined): (header: string) => boolean {
  if (token === undefined || token === '') return () => true;
  const want = crypto.createHash('sha256').update(`Bearer ${token}`).digest();
  return (header) => crypto.timingSafeEqual(want, crypto.createHash('sha256').update(header).digest());
}

/** A partition request's body: a JSON list of distinct other members' ids; a string says what is wrong. */
export function parsePartition(text: string, isPeer: (id: number) => boolean): number[] | string {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return 'the body is not JSON: expected a list of peer ids such as [2, 3]';
  }
  if (!Array.isArray(v) || v.length > partitionPeersMax) return `expected a JSON list of at most ${partitionPeersMax} peer ids`;
  for (const id of v) {
    if (!Number.isSafeInteger(id) || !isPeer(id as number)) return `${JSON.stringify(id)} is not the id of another member`;
  }
  return [...new Set(v as number[])];
}

/** The key of /kv/{key}, percent-decoded; null if it does not decode. */
function keyOf(req: HttpRequest): string | null {
  try {
    return decodeURIComponent(req.getUrl().slice(4));
  } catch {
    return null;
  }
}

function onAbort(res: HttpResponse): { value: boolean } {
  const aborted = { value: false };
  res.onAborted(() => {
    aborted.value = true;
  });
  return aborted;
}

/** Read the request body (bounded), then run `handle`; answers 400/413 itself for bad input. */
function withBody(res: HttpResponse, req: HttpRequest, key: string | null, handle: (body: Uint8Array) => Promise<Answer>): void {
  const aborted = onAbort(res);
  if (key === null) return send(res, error(400, 'the key is not valid percent-encoded UTF-8'), true);
  const declared = req.getHeader('content-length');
  if (declared !== '' && Number(declared) > bodyBytesMax) {
    return send(res, error(413, `the value is ${declared} bytes; at most ${bodyBytesMax}`), true);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  res.onData((chunk, isLast) => {
    if (refused) return;
    size += chunk.byteLength;
    if (size > bodyBytesMax) {
      refused = true;
      return send(res, error(413, `the value is over ${bodyBytesMax} bytes`), true);
    }
    // The chunk's memory is only valid during this callback: copy it.
    chunks.push(Buffer.from(new Uint8Array(chunk)));
    if (!isLast) return;
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
    void handle(body).then((a) => aborted.value || send(res, a));
  });
}

function send(res: HttpResponse, a: Answer, closeConnection = false): void {
  res.cork(() => {
    res.writeStatus(statusText[a.status] ?? String(a.status));
    if (a.contentType !== undefined) res.writeHeader('content-type', a.contentType);
    if (a.retryAfter !== undefined) res.writeHeader('retry-after', String(a.retryAfter));
    res.end(a.body ?? '', closeConnection);
  });
}

/** Per /client connection (uWS user data). */
interface ClientConn {
  /** Requests received and not yet answered. Invariant: answered with 503 beyond clientInFlightMax. */
  inFlight: number;
  /** The socket closed: answers are dropped (uWS forbids sending on a closed socket). */
  closed: boolean;
  /**
   * Answers encoded in this turn of the event loop, sent together as one message when it ends
   * (one uWS send per answer cost more CPU than the answer itself). Bounded by clientInFlightMax.
   */
  answers: Uint8Array[];
  /** Sum of the byte lengths in `answers`. */
  answersBytes: number;
}

function attachClientSocket(app: Uws.TemplatedApp, node: PaxlogNode<KvResult>, service: KvService, allowed: (header: string) => boolean): void {
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
      res.upgrade<ClientConn>({ inFlight: 0, closed: false, answers: [], answersBytes: 0 }, req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    message: (ws, message, isBinary) => {
      const conn = ws.getUserData();
      const reply = (id: number, a: Answer): void => {
        conn.inFlight--;
        if (conn.closed) return;
        const bytes = encodeResponse(id, a.status, a.body ?? '');
        conn.answers.push(bytes);
        conn.answersBytes += bytes.byteLength;
        if (conn.answers.length === 1) setImmediate(() => sendAnswers(ws, conn));
      };
      if (!isBinary) {
        ws.send(encodeResponse(0, 400, 'the /client protocol is binary'), true);
        return;
      }
      // decodeRequests gives views into `message`, which dies with this callback: operations copy
      // what they keep (encodeOp copies keys and values into the command).
      const { requests, error: bad } = decodeRequests(new Uint8Array(message));
      for (const r of requests) {
        conn.inFlight++;
        if (conn.inFlight > clientInFlightMax) {
          reply(r.id, error(503, `more than ${clientInFlightMax} requests in flight on this connection`, 1));
          continue;
        }
        void run(service, r).then((a) => reply(r.id, a));
      }
      if (bad !== null) ws.send(encodeResponse(bad.id, 400, bad.reason), true);
    },
    close: (ws) => {
      ws.getUserData().closed = true;
    },
  });
}

/** Sends the answers queued on a /client connection in this turn as one message. */
function sendAnswers(ws: Uws.WebSocket<ClientConn>, conn: ClientConn): void {
  const answers = conn.answers;
  const bytes = conn.answersBytes;
  conn.answers = [];
  conn.answersBytes = 0;
  if (conn.closed || answers.length === 0) return;
  ws.send(answers.length === 1 ? answers[0] : Buffer.concat(answers, bytes), true);
}

function run(service: KvService, r: ClientRequest): Promise<Answer> {
  switch (r.op) {
    case ClientOp.Put: return service.write({ op: 'put', key: r.key, value: r.value });
    case ClientOp.Delete: return service.write({ op: 'delete', key: r.key });
    case ClientOp.Cas: return service.write({ op: 'cas', key: r.key, expect: r.expect, value: r.value });
    case ClientOp.Get: return service.get(r.key, r.readMode);
  }
}
