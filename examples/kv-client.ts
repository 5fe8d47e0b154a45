// Talking to a running KV cluster over the binary /client WebSocket (pipelined, answered by id).
// Start a cluster (`npm start`), then: node dist/examples/kv-client.js [ws://127.0.0.1:8001/client]

import { PaxlogClient } from '../src/index.js';

const url = process.argv[2] ?? 'ws://127.0.0.1:8001/client';
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

let client: PaxlogClient;
try {
  client = await PaxlogClient.connect(url);
} catch (err) {
  // A wrong URL or no node there: say which and how to start one, without a stack trace.
  console.error(`kv-client: cannot reach a node at ${url}: ${(err as Error).message} (start a cluster with \`npm start\`, or pass its ws://host:port/client URL)`);
  process.exit(1);
}
// 100 writes in flight at once: the node batches them into a few slots.
const started = performance.now();
const puts = await Promise.all(Array.from({ length: 100 }, (_, i) => client.put(`example-${i}`, bytes(`value ${i}`))));
console.log(`100 pipelined PUTs: ${puts.filter((a) => a.status === 200).length} answered 200 in ${(performance.now() - started).toFixed(1)} ms`);
console.log('GET example-42 (linearizable):', text((await client.get('example-42')).body));
const cas = await client.cas('example-42', bytes('value 42'), bytes('swapped'));
console.log('compare-and-set example-42:', cas.status, '; now', text((await client.get('example-42', 'quorum')).body));
const missing = await client.get('no-such-key');
console.log('GET no-such-key:', missing.status, text(missing.body));
client.close();
