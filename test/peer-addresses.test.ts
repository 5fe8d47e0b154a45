// The peer list: a host that would make the dialed ws:// URL name another host, port or path than
// the one written is refused with the entry named, instead of dialing somewhere else.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePeers, PeerListError } from '../src/transport/addresses.js';

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
