// A hand-driven network of protocol cores (Raft unless told otherwise) for races no scenario file
// reaches: durable state as the simulator models it (Durable), persists that complete at once or
// only when the test says so (so a crash loses what was not durable), wiped disks, cut links, and
// messages held back to be delivered late or reordered.

import assert from 'node:assert/strict';
import { Raft } from '../src/protocol/raft/index.js';
import type { Message } from '../src/protocol/messages.js';
import { defaultConfig, type Config, type Protocol, type ProtocolOptions, type Ready, type Restored } from '../src/protocol/types.js';
import { loadKernels } from '../src/kernels/index.js';
import { Prng } from '../src/sim/prng.js';
import { Durable } from '../src/sim/durable.js';

export const k = loadKernels('js');
const enc = new TextEncoder();
const dec = new TextDecoder();
export const cmds = (...w: string[]): Uint8Array[] => w.map((x) => enc.encode(x));

interface N<C> {
  id: number;
  core: C | null;
  disk: Durable;
  pending: Ready[];
  /** When true, each Ready is persisted at once. */
  autoPersist: boolean;
  applied: string[];
}

export class Net<C extends Protocol = Raft> {
  readonly nodes = new Map<number, N<C>>();
  queue: Message[] = [];
  /** cut links "from>to" */
  readonly cuts = new Set<string>();
  readonly reads: { node: number; id: number; index: number; appliedLen: number }[] = [];
  readonly readsFailed: { node: number; id: number }[] = [];
  readonly log: string[] = [];
  seedBase = 1;
  /** Messages matching it are moved to `held` instead of being delivered. */
  holdIf: (m: Message) => boolean = () => false;
  held: Message[] = [];

  constructor(readonly n: number, readonly cfg: Partial<Config> = {}, private readonly make: (o: ProtocolOptions) => C = (o) => new Raft(o) as Protocol as C) {
    for (let id = 1; id <= n; id++) {
      this.nodes.set(id, { id, core: null, disk: new Durable(), pending: [], autoPersist: true, applied: [] });
      this.start(id, false);
    }
  }

  config(id: number): Config {
    const peers = Array.from({ length: this.n }, (_, i) => i + 1);
    return { ...defaultConfig(id, peers), ...this.cfg };
  }

  start(id: number, restore: boolean, rejoining = false): void {
    const nd = this.nodes.get(id)!;
    const restored: Restored | undefined = restore ? { ...nd.disk.restored(), rejoining } : undefined;
    nd.core = this.make({ config: this.config(id), kernels: k, rng: new Prng(id * 1000 + this.seedBase++), restored });
    nd.pending = [];
    nd.applied = restored?.snapshot ? (JSON.parse(dec.decode(restored.snapshot.bytes)) as string[]) : [];
  }

  crash(id: number): void {
    const nd = this.nodes.get(id)!;
    nd.core = null;
    nd.pending = [];
    nd.disk.crash();
  }

  restart(id: number): void {
    this.start(id, true);
  }

  /** Node id loses its disk (replaced, or set aside) and starts again from nothing, rejoining without voting. */
  wipe(id: number): void {
    const nd = this.nodes.get(id)!;
    nd.core = null;
    nd.pending = [];
    nd.disk = new Durable();
    this.start(id, true, true);
  }

  core(id: number): C {
    const c = this.nodes.get(id)!.core;
    assert.ok(c, `node ${id} is down`);
    return c;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  priv(id: number): any {
    return this.core(id) as unknown;
  }

  cut(a: number, b: number, both = true): void {
    this.cuts.add(`${a}>${b}`);
    if (both) this.cuts.add(`${b}>${a}`);
  }

  heal(a: number, b: number): void {
    this.cuts.delete(`${a}>${b}`);
    this.cuts.delete(`${b}>${a}`);
  }

  isolate(a: number): void {
    for (let b = 1; b <= this.n; b++) if (b !== a) this.cut(a, b);
  }

  /** Take every Ready of every live node; persist at once those with autoPersist. */
  process(): void {
    for (const nd of this.nodes.values()) {
      for (;;) {
        const core = nd.core;
        if (!core) break;
        if (nd.autoPersist && nd.pending.length > 0) { this.persist(nd.id); continue; }
        if (!core.hasReady()) break;
        const rd = core.ready();
        this.queue.push(...rd.messages);
        nd.pending.push(rd);
      }
      nd.core?.invariants();
    }
  }

  /** Complete the oldest `count` persists of node id. */
  persist(id: number, count = Infinity): void {
    const nd = this.nodes.get(id)!;
    for (let i = 0; i < count && nd.pending.length > 0; i++) {
      const rd = nd.pending.shift()!;
      nd.disk.persist(rd);
      this.queue.push(...rd.messagesAfterPersist);
      if (rd.install && rd.snapshot) nd.applied = JSON.parse(dec.decode(rd.snapshot.bytes)) as string[];
      for (const a of rd.apply) {
        assert.equal(a.position, nd.applied.length + 1, `node ${id} applied ${a.position} out of order`);
        const c = k.decodeBatch(a.value);
        assert.ok(Array.isArray(c));
        nd.applied.push(c.length === 0 ? 'noop' : c.map((x) => dec.decode(x)).join(' '));
      }
      for (const r of rd.reads) this.reads.push({ node: id, id: r.id, index: r.index, appliedLen: nd.applied.length });
      for (const r of rd.readsFailed) this.readsFailed.push({ node: id, id: r });
      nd.core!.advance(rd);
    }
  }

  deliver(filter: (m: Message) => boolean = () => true): void {
    const batch = this.queue;
    this.queue = [];
    for (const m of batch) {
      if (!filter(m)) { this.queue.push(m); continue; }
      if (this.holdIf(m)) { this.held.push(m); continue; }
      const t = this.nodes.get(m.to)!;
      if (!t.core || this.cuts.has(`${m.from}>${m.to}`)) continue;
      t.core.step(m);
    }
    this.process();
  }

  stabilize(max = 200): void {
    this.process();
    for (let i = 0; this.queue.length > 0 && i < max; i++) this.deliver();
  }

  tickAll(times = 1, settle = true): void {
    for (let t = 0; t < times; t++) {
      for (const nd of this.nodes.values()) nd.core?.tick();
      if (settle) this.stabilize(); else this.process();
    }
  }

  role(id: number): string {
    return this.core(id).status().role;
  }
}
