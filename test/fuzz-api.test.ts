// Malformed input against a real node process: HTTP requests (bad methods, paths, percent-encodings,
// huge keys and values, bad `expect` and `read=`, bodies on GET, chunked garbage, raw garbage) over
// raw TCP, and malformed /client WebSocket messages. Every answer must be a 4xx with a JSON reason
// (HTTP) or an error response with a reason (WebSocket); requests that uWS's HTTP parser itself
// refuses get the connection closed without an answer, which is counted separately. Afterwards the
// node must still be running and serve a good request.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import WebSocket from 'ws';
import { TestRng } from '../src/kernels/gen.js';
import { decodeRequests, decodeResponses, encodeRequest, ClientOp, type ClientResponse } from '../src/api/client-protocol.js';
import { suiteCluster } from './node-harness.js';

const c = suiteCluster({ nodes: 1, basePort: 23200 });
const rng = new TestRng(20261127);
const httpCases = 1500;
const wsMessages = 3000;


interface RawAnswer {
  /** 0 when the connection closed without a whole response. */
  status: number;
  body: string;
  /** The server was still waiting for more bytes (of a body it considers incomplete) when we half-closed. */
  waited: boolean;
}

/**
 * Send raw bytes on a fresh connection; the first whole response, or status 0 if it closed first.
 * With waitMs, a server still silent after that long gets our FIN (it may be waiting for a body).
 */
function raw(bytes: Buffer, waitMs?: number, timeoutMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const s = net.connect(c.httpPort(1), '127.0.0.1');
    let got = Buffer.alloc(0);
    let done = false;
    let waited = false;
    const wait = waitMs === undefined ? undefined : setTimeout(() => {
      waited = true;
      s.end();
    }, waitMs);
    const finish = (a: RawAnswer): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(wait);
      s.destroy();
      resolve(a);
    };
    const timer = setTimeout(() => {
      done = true;
      clearTimeout(wait);
      s.destroy();
      reject(new Error(`no answer and no close within ${timeoutMs} ms for ${JSON.stringify(bytes.subarray(0, 120).toString('latin1'))}`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = got.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (got.byteLength < end + 4 + length) return;
      finish({ status: Number(head.split(' ')[1]), body: got.subarray(end + 4, end + 4 + length).toString('utf8'), waited: false });
    });
    s.on('close', () => finish({ status: 0, body: '', waited }));
    s.on('error', () => finish({ status: 0, body: '', waited }));
    s.write(bytes);
  });
}

const req = (method: string, target: string, headers: string[] = [], body = ''): Buffer =>
  Buffer.from(`${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.map((h) => `${h}\r\n`).join('')}` +
    `${body !== '' && !headers.some((h) => /^(content-length|transfer-encoding)/i.test(h)) ? `Content-Length: ${Buffer.byteLength(body)}\r\n` : ''}\r\n${body}`, 'latin1');

const token = (lo: number, hi: number, alphabet: string): string =>
  Array.from({ length: rng.int(lo, hi) }, () => alphabet[rng.int(0, alphabet.length)]).join('');
const keyChars = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~';
const badPercents = ['%', '%Z1', '%E0%A4', '%FF', '%C0%80', '%ED%A0%80', '%G0', '%%', '%e2%82'];

/** A malformed HTTP request, what it is, which statuses may answer it, and whether uWS's parser may close instead. */
interface HttpCase {
  family: string;
  bytes: Buffer;
  statuses: number[];
  parserMayClose: boolean;
  /** The parser may wait for more body bytes (a body it considers incomplete) instead of answering. */
  mayWait?: boolean;
}

function httpCase(): HttpCase {
  const key = token(1, 20, keyChars);
  switch (rng.int(0, 13)) {
    case 0: return { family: 'bad method', bytes: req(rng.pick(['PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', token(3, 10, 'QWXYZ')]), `/kv/${key}`),
      statuses: [405], parserMayClose: true };
    case 1: return { family: 'unknown path', bytes: req(rng.pick(['GET', 'PUT', 'DELETE', 'POST']), `/${rng.pick(['', 'kv', 'kvx/', 'status/x', 'peer2', 'client2'])}${token(0, 30, keyChars)}`),
      statuses: [404, 405], parserMayClose: false };
    case 2: return { family: 'bad percent-encoding', bytes: req(rng.pick(['GET', 'PUT', 'DELETE']), `/kv/${token(0, 5, keyChars)}${rng.pick(badPercents)}${token(0, 5, keyChars)}`, [], rng.bool() ? 'v' : ''),
      statuses: [400], parserMayClose: false };
    case 3: return { family: 'huge key', bytes: req(rng.pick(['GET', 'PUT', 'DELETE']), `/kv/${'k'.repeat(rng.int(1025, 8000))}`, [], 'v'),
      statuses: [413], parserMayClose: false };
    case 4: return { family: 'empty key', bytes: req(rng.pick(['GET', 'PUT', 'DELETE']), '/kv/', [], 'v'), statuses: [400], parserMayClose: false };
    case 5: return { family: 'bad read=', bytes: req('GET', `/kv/${key}?read=${rng.pick(['', 'LEASE', 'stale', 'quorum2', token(1, 12, keyChars)])}`),
      statuses: [400], parserMayClose: false };
    case 6: return { family: 'POST without expect', bytes: req('POST', `/kv/${key}${rng.pick(['', '?', '?expec=x', '?read=local'])}`, [], 'new'),
      statuses: [400], parserMayClose: false };
    case 7: return { family: 'bad expect', bytes: req('POST', `/fuzz-absent/${key}`.replace('/fuzz-absent/', `/kv/absent-${rng.u32()}-`) + `?expect=${rng.pick(badPercents)}${token(0, 10, keyChars)}`, [], 'new'),
      statuses: [400, 404, 412], parserMayClose: false };
    case 8: {
      // uWS's parser itself refuses a Content-Length of ten digits or more (it closes the connection).
      const declared = rng.bool() ? rng.int(1024 * 1024 + 1, 1e9) : rng.int(1e9, 2 ** 32);
      return { family: 'huge value (declared)', bytes: req('PUT', `/kv/${key}`, [`Content-Length: ${declared}`]), statuses: [413], parserMayClose: declared >= 1e9 };
    }
    // Read locally: what is fuzzed is the body on a GET, and a lease read in a loaded run can meet a
    // lapsed lease (503, retry), as a CI run did once.
    case 9: return { family: 'body on GET', bytes: req('GET', `/kv/absent-${rng.u32()}?read=local`, [], token(1, 100, keyChars)), statuses: [404], parserMayClose: true, mayWait: true };
    case 10: return { family: 'chunked garbage', bytes: req('PUT', `/kv/${key}`, ['Transfer-Encoding: chunked'], `${rng.pick(['Z', 'G1', '-5', 'fffffffffffffffff', '1;'])}\r\n${token(0, 20, keyChars)}\r\n`),
      statuses: [400, 413], parserMayClose: true, mayWait: true };
    case 11: return { family: 'bad content-length', bytes: req('PUT', `/kv/${key}`, [`Content-Length: ${rng.pick(['abc', '-1', '1e3', '99999999999999999999', '5, 6'])}`], 'hello'),
      statuses: [400, 413], parserMayClose: true, mayWait: true };
    default: {
      const g = rng.bytes(rng.int(1, 400));
      return { family: 'raw garbage', bytes: Buffer.concat([Buffer.from(g), Buffer.from('\r\n\r\n')]), statuses: [400], parserMayClose: true, mayWait: true };
    }
  }
}

test(`${httpCases} malformed HTTP requests: each gets a 4xx with a JSON reason or a closed connection, and the node keeps serving`, async () => {
  const counts = new Map<string, { answered: number; closed: number; waited: number }>();
  // Sixteen connections at a time (the cases are drawn first, so the run stays deterministic).
  const cases = Array.from({ length: httpCases }, httpCase);
  const answers: RawAnswer[] = [];
  for (let i = 0; i < cases.length; i += 16) {
    answers.push(...await Promise.all(cases.slice(i, i + 16).map((k) => raw(k.bytes, k.mayWait === true ? 150 : undefined))));
  }
  for (let i = 0; i < httpCases; i++) {
    const k = cases[i];
    const a = answers[i];
    const row = counts.get(k.family) ?? { answered: 0, closed: 0, waited: 0 };
    counts.set(k.family, row);
    const what = `${k.family}: ${JSON.stringify(k.bytes.subarray(0, 160).toString('latin1'))}`;
    if (a.status === 0 && a.waited) {
      row.waited++;
      continue;
    }
    if (a.status === 0) {
      assert.ok(k.parserMayClose, `${what} closed the connection without an answer`);
      row.closed++;
      continue;
    }
    row.answered++;
    assert.ok(k.statuses.includes(a.status), `${what} answered ${a.status} ${a.body}, expected ${k.statuses.join(' or ')}`);
    const reason = (JSON.parse(a.body) as { error?: unknown }).error;
    assert.ok(typeof reason === 'string' && reason.length > 0, `${what} answered ${a.status} without a JSON reason: ${a.body}`);
  }
  console.log('HTTP fuzz, per family: answered 4xx with a JSON reason / closed by the parser / parser waited for more body:');
  for (const [f, r] of counts) console.log(`  ${f}: ${r.answered} / ${r.closed} / ${r.waited}`);
  assert.equal(c.procs.size, 1, `the node exited\n${c.describe()}`);
  assert.equal((await c.put(1, 'after-http-fuzz', 'ok')).status, 200);
  assert.equal((await c.http(1, 'GET', '/kv/after-http-fuzz')).body, 'ok');
});

/** A /client connection that collects responses. */
async function clientSocket(): Promise<{ ws: WebSocket; got: ClientResponse[]; closed: Promise<number> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${c.httpPort(1)}/client`, { perMessageDeflate: false });
  const got: ClientResponse[] = [];
  ws.binaryType = 'nodebuffer';
  ws.on('message', (d: Buffer, isBinary: boolean) => {
    assert.ok(isBinary, 'the node answered with a text message');
    const rs = decodeResponses(d);
    assert.ok(!('error' in rs), `the node sent a malformed response: ${JSON.stringify(rs)}`);
    got.push(...rs);
  });
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise((r, j) => {
    ws.once('open', r);
    ws.once('error', j);
  });
  return { ws, got, closed };
}

/** A malformed /client message: random bytes or a valid request with one field broken. */
function wsMessage(): Uint8Array {
  const valid = encodeRequest({ id: rng.u32(), op: rng.pick([ClientOp.Put, ClientOp.Get, ClientOp.Delete, ClientOp.Cas]),
    key: `fz-${rng.int(0, 50)}`, value: rng.bytes(rng.int(0, 16)) });
  const v = new DataView(valid.buffer);
  switch (rng.int(0, 8)) {
    case 0: return rng.bytes(rng.int(1, 200));
    case 1: return valid.subarray(0, rng.int(1, 16)); // truncated header
    case 2: v.setUint32(0, rng.pick([0, 1, 15, valid.byteLength + 1, 0xffffffff]), true); return valid; // a length that lies
    case 3: valid[8] = rng.pick([0, 5, 255]); return valid; // unknown op
    case 4: valid[9] = rng.int(4, 256); return valid; // unknown read mode
    case 5: v.setUint16(10, 0xffff, true); return valid; // key runs past the request
    case 6: valid[16] = 0xff; return valid; // key not UTF-8
    default: { const two = new Uint8Array(valid.byteLength * 2); two.set(valid); two.set(rng.bytes(valid.byteLength), valid.byteLength); return two; }
  }
}

test(`${wsMessages} malformed /client messages: each gets an error response with a reason, text frames too, and the node keeps serving`, async () => {
  const { ws, got } = await clientSocket();
  let errorsWanted = 0;
  let requestsWanted = 0;
  for (let i = 0; i < wsMessages; i++) {
    const m = wsMessage();
    // The node's own decoder says what the message holds: its good requests are answered, and its
    // bad tail gets a 400 whose body is the reason.
    const d = decodeRequests(m);
    requestsWanted += d.requests.length;
    if (d.error !== null) errorsWanted++;
    ws.send(m);
  }
  ws.send('a text frame');
  errorsWanted++;
  await c.waitFor('every /client answer', async () => (got.length >= requestsWanted + errorsWanted ? true : undefined), 20_000);
  const errors = got.filter((r) => r.status === 400);
  assert.ok(errors.length >= errorsWanted, `${errors.length} error responses for ${errorsWanted} malformed messages`);
  for (const e of errors) assert.ok(new TextDecoder().decode(e.body).length > 0, `an error response (id ${e.id}) has no reason`);
  assert.ok(errors.some((e) => new TextDecoder().decode(e.body) === 'the /client protocol is binary'), 'the text frame got no reason');
  console.log(`/client fuzz: ${wsMessages} messages, ${errorsWanted} malformed (each answered 400 with a reason), ${requestsWanted} well-formed requests inside them answered`);
  // The connection still serves a good request.
  ws.send(encodeRequest({ id: 4_000_000_007, op: ClientOp.Put, key: 'after-ws-fuzz', value: new TextEncoder().encode('ok') }));
  await c.waitFor('the good request after the fuzz', async () => (got.some((r) => r.id === 4_000_000_007 && r.status === 200) ? true : undefined));
  ws.close();
});

test('a /client message over the 4 MiB bound closes that connection with a code, and the node keeps serving', async () => {
  const { ws, closed } = await clientSocket();
  ws.send(new Uint8Array(4 * 1024 * 1024 + 1));
  const code = await closed;
  assert.ok(code === 1009 || code === 1006, `closed with code ${code}`);
  assert.equal(c.procs.size, 1, `the node exited\n${c.describe()}`);
  const s = await c.status(1);
  assert.ok(s !== null, '/status does not answer');
  assert.equal((await c.http(1, 'GET', '/kv/after-ws-fuzz')).body, 'ok');
});
