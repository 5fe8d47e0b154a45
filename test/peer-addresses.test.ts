// The peer list: a host that would make the dialed ws:// URL name another host, port or path than
// the one written is refused with the entry named, instead of dialing somewhere else. IPv6 over
// [::1], port 27916-27917; listenHost, ports 27450-27453.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { createNode, startKvServer } from '../src/index.js';
import { loadKernels } from '../src/kernels/index.js';
import { MsgType } from '../src/protocol/messages.js';
import { hostInUrl, parsePeers, PeerListError } from '../src/transport/addresses.js';
import { PeerTransport } from '../src/transport/peers.js';
import { loadNativeUws } from '../src/transport/uws.js';

const kernels = loadKernels('js');

test('parsePeers takes host names and IPv4 addresses', () => {
  const p = parsePeers('1=127.0.0.1:7001, 2=node-2.example.com:7002,3=paxlog_3:7003');
  assert.deepEqual([...p.entries()], [[1, { host: '127.0.0.1', port: 7001 }], [2, { host: 'node-2.example.com', port: 7002 }],
    [3, { host: 'paxlog_3', port: 7003 }]]);
});

test('parsePeers refuses a host with URL syntax in it (it would be dialed at another address)', () => {
  // Each of these was accepted, and node 2 was then dialed at 10.0.0.2:80, at "evil":7002, at
  // host:80 with path /, or threw "Invalid URL" only when the link was dialed.
  for (const bad of ['10.0.0.2/24', 'user@evil', 'host?x', 'host#x', '[', 'a%2fb']) {
    assert.throws(() => parsePeers(`1=127.0.0.1:7001,2=${bad}:7002`),
      (e: Error) => e instanceof PeerListError && e.message.includes(`2=${bad}:7002`), bad);
  }
});

test('parsePeers takes IPv6 addresses in brackets, and only addresses there', () => {
  const p = parsePeers('1=[::1]:7001,2=[fd00::2]:7002,3=127.0.0.1:7003');
  assert.deepEqual([...p.entries()], [[1, { host: '::1', port: 7001 }], [2, { host: 'fd00::2', port: 7002 }], [3, { host: '127.0.0.1', port: 7003 }]]);
  assert.equal(hostInUrl('::1'), '[::1]');
  assert.equal(hostInUrl('127.0.0.1'), '127.0.0.1');
  for (const bad of ['[::1', '::1', '[:::1:]', '[1.2.3.4]', '[host]']) {
    assert.throws(() => parsePeers(`1=127.0.0.1:7001,2=${bad}:7002`), (e: Error) => e instanceof PeerListError && e.message.includes(`2=${bad}:7002`), bad);
  }
});

test('two peers link over IPv6 loopback ([::1])', { timeout: 20_000 }, async () => {
  const uws = loadNativeUws();
  const app = uws.App();
  const peers = parsePeers('1=[::1]:27916,2=[::1]:27917');
  const heard: number[] = [];
  const listener = new PeerTransport({ id: 1, peers, secret: 'v6', kernels, logger: pino({ level: 'silent' }), onMessage: (m) => heard.push(m.from) });
  listener.attach(app, uws);
  const sock = await new Promise<unknown>((resolve) => app.listen('::1', 27916, resolve));
  assert.ok(sock, 'listening on [::1]:27916');
  const dialer = new PeerTransport({ id: 2, peers, secret: 'v6', kernels, logger: pino({ level: 'silent' }), onMessage: () => {} });
  try {
    dialer.start();
    for (let i = 0; i < 250 && !dialer.connected.includes(1); i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(dialer.connected, [1], 'the link over [::1] came up');
    dialer.send({ type: MsgType.HeartbeatAck, from: 2, to: 1, ballot: 1, chosenPrefix: 1, seq: 1 });
    dialer.flush();
    for (let i = 0; i < 100 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(heard, [2]);
  } finally {
    dialer.close();
    listener.close();
    uws.us_listen_socket_close(sock as never);
  }
});

// listenHost (serve --listen-host): a node behind a NAT or in a container is dialed at an address
// that is not its machine's. Ports 27450-27453.
test('listenHost binds the node\'s ports on another address than the one peers dial; without it, an address not of this machine cannot be listened on', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-listen-host-'));
  const log = pino({ level: 'silent' });
  // 192.0.2.1 is TEST-NET-1: no machine's address.
  const options = { id: 1, peers: '1=192.0.2.1:27450', dataDir: dir, logger: log, newCluster: true, httpPort: 27451, tickMs: 10 };
  try {
    await assert.rejects(startKvServer(options), /cannot listen on 192\.0\.2\.1:27450 \(in use, or not an address of this machine\)/);
    const server = await startKvServer({ ...options, listenHost: '127.0.0.1' });
    try {
      let status = 0;
      for (let i = 0; i < 200 && status !== 200; i++) {
        status = (await fetch('http://127.0.0.1:27451/kv/a', { method: 'PUT', body: 'x' })).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(status, 200);
      assert.equal(await (await fetch('http://127.0.0.1:27451/kv/a')).text(), 'x');
    } finally {
      await server.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('listenHost 0.0.0.0 listens on every interface; by default a node listens on its own peer address only', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-listen-any-'));
  const connects = (host: string, port: number): Promise<boolean> => new Promise((resolve) => {
    const s = net.connect(port, host, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  const log = pino({ level: 'silent' });
  try {
    for (const [listenHost, elsewhere] of [[undefined, false], ['0.0.0.0', true]] as const) {
      const node = await createNode({ id: 1, peers: '1=127.0.0.1:27452', listenHost, dataDir: dir, newCluster: true, tickMs: 10, logger: log,
        stateMachine: { apply: () => 0, snapshot: () => new Uint8Array(0), restore: () => {} } });
      try {
        assert.equal(await connects('127.0.0.1', 27452), true, 'the peer address');
        // 127.0.0.2 is this machine too (all of 127/8), but not the address in peers.
        assert.equal(await connects('127.0.0.2', 27452), elsewhere, `127.0.0.2 with listenHost ${listenHost}`);
      } finally {
        await node.stop();
      }
    }
    await assert.rejects(createNode({ id: 1, peers: '1=127.0.0.1:27453', listenHost: '[::]', dataDir: dir, logger: log,
      stateMachine: { apply: () => 0, snapshot: () => new Uint8Array(0), restore: () => {} } }),
      new RangeError('NodeOptions.listenHost "[::]" is not an IP address (no brackets) or a host name'));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
