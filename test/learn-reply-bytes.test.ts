// A Multi-Paxos learner that lags behind slots holding large values: the LearnReply that answers it
// must fit in one frame (FRAME_BYTES_MAX), or encoding it throws inside the serving node's pump and
// the node that was asked (often the leader) dies, and the learner never catches up.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MultiPaxos } from '../src/protocol/multipaxos/index.js';
import { MsgType, type Message } from '../src/protocol/messages.js';
import { defaultConfig, type Restored } from '../src/protocol/types.js';
import { FRAME_BYTES_MAX, loadKernels } from '../src/kernels/index.js';
import { Prng } from '../src/sim/prng.js';

const k = loadKernels('js');
const peers = [1, 2, 3];

test('a LearnReply for slots of large values fits in a frame, and the learner still catches up', () => {
  // Node 2 holds 80 chosen slots of 1 MiB each (one 1 MiB PUT per slot, as the HTTP API allows):
  // 80 MiB in all, more than one frame.
  const slots = 80;
  const slotBytes = 1024 * 1024;
  const b = k.ballotPack(1, 1);
  const restored: Restored = {
    hardState: { ballot: b, vote: 0 },
    records: Array.from({ length: slots }, (_, i) => ({ position: i + 1, ballot: b, value: new Uint8Array(slotBytes).fill((i % 250) + 1) })),
    chosenPrefix: slots + 1,
    appliedPrefix: slots + 1,
    snapshot: null,
    rejoining: false,
  };
  const server = new MultiPaxos({ config: defaultConfig(2, peers), kernels: k, rng: new Prng(2), restored });
  const learner = new MultiPaxos({ config: defaultConfig(3, peers), kernels: k, rng: new Prng(3) });
  // The learner hears that slots below 81 are chosen, as from a LearnReply of any peer.
  learner.step({ type: MsgType.LearnReply, from: 2, to: 3, chosenPrefix: slots + 1, entries: [] });

  let replies = 0;
  for (let round = 0; round < 400 && learner.status().chosenPrefix <= slots; round++) {
    learner.tick();
    const toServer: Message[] = [];
    while (learner.hasReady()) {
      const rd = learner.ready();
      for (const m of [...rd.messages, ...rd.messagesAfterPersist]) if (m.type === MsgType.LearnRequest) toServer.push({ ...m, to: 2 });
      learner.advance(rd);
    }
    for (const m of toServer) server.step(m);
    const toLearner: Message[] = [];
    while (server.hasReady()) {
      const rd = server.ready();
      for (const m of [...rd.messages, ...rd.messagesAfterPersist]) {
        // What the transport does with every message: one frame each.
        const frame = k.encode(m);
        assert.ok(frame.byteLength <= FRAME_BYTES_MAX, `a ${frame.byteLength}-byte frame`);
        if (m.type === MsgType.LearnReply && m.to === 3) { toLearner.push(m); replies++; }
      }
      server.advance(rd);
    }
    for (const m of toLearner) learner.step(m);
  }
  assert.ok(replies > 1, 'the slots came in more than one reply');
  assert.equal(learner.status().chosenPrefix, slots + 1, 'the learner learned every slot');
});
