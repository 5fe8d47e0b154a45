// The key-value store's data: a hash table and the records it points to, in this module's own
// linear memory (one instance per store; build/kv.wasm). The TypeScript face is src/kv/store.ts,
// which checks each command's key (length, UTF-8) and copies the command into `io`.
//
// Why here and not in a JavaScript Map: with 100,000 keys a Map lookup was the largest cost of
// every node under load (cache misses on its buckets, entries and key strings, and a fresh string
// per value for the garbage collector to copy). Here a lookup touches one table entry and one
// record, and a put of a value of the same size class writes over the old one in place.
//
// Memory, from __heap_base:
//   io       commands (or a key) copied in by the face: IO_BYTES
//   heads    the free list of each size class: CLASSES u32
//   arena    blocks, each [size u32][hash or next-free u32][valueLen u32][keyLen u16][kind u16]
//            then its bytes: a record's key then value, or the table's entries.
// The table: `capacity` entries of [hash u32][record u32]; record 0 is an empty entry. Linear
// probing, deletion by backward shift (no tombstones). Invariant: count * 2 <= capacity.
//
// Everything results depend on (count, bytesHeld) is a function of the keys and values held, never
// of the layout: two replicas, one restored from a snapshot, refuse the same writes. So the hash
// is seeded at random per instance (init): without a seed, anyone could build keys of one hash
// (FNV-1a multicollisions take seconds) and make every insert probe them all, on every replica.

const KEY_BYTES_MAX: u32 = 1024;
const VALUE_BYTES_MAX: u32 = 1 << 20;
/** The longest command: a compare-and-set of the longest key and two of the longest values. */
const IO_BYTES: u32 = (3 + KEY_BYTES_MAX + 4 + 2 * VALUE_BYTES_MAX + 15) & ~15;
const HEADER: u32 = 16;
const CLASSES: u32 = 160;
const TABLE_CAPACITY_MIN: u32 = 1024;
/** The arena is compacted once its free blocks exceed half the live bytes plus this. */
const SLACK_BYTES: u32 = 16 << 20;

const KIND_FREE: u16 = 0;
const KIND_RECORD: u16 = 1;
const KIND_TABLE: u16 = 2;

const PUT: u8 = 1;
const DELETE: u8 = 2;
const CAS: u8 = 3;

// Result codes (src/kv/store.ts names them).
const OK: i32 = 0;
const NOT_FOUND: i32 = 1;
const MISMATCH: i32 = 2;
const FULL: i32 = 3;
const BAD: i32 = 4;
/** memory.grow failed: the host is out of memory; the face stops the node. */
const NO_MEMORY: i32 = -1;

let io: usize = 0;
let heads: usize = 0;
let arenaBase: usize = 0;
/** The first byte no block uses. Invariant: arenaBase <= arenaTop <= memory size. */
let arenaTop: usize = 0;
/** The table's first entry (its block's bytes). */
let table: usize = 0;
/** Entries in the table: a power of two. */
let capacity: u32 = 0;
/** Keys held. Invariant: <= keysMax. */
let count: u32 = 0;
/** Sum of the key and value bytes held. Invariant: <= bytesMax. */
let bytesHeld: u32 = 0;
/** Sum of the sizes of the blocks in use (records and the table). */
let liveBytes: usize = 0;
let keysMax: u32 = 0;
let bytesMax: u32 = 0;
/** The hash's starting state: random, so that no one can choose keys that collide. */
let seed: u32 = 0;

/** Sets up an empty store; returns where the face copies commands (IO_BYTES bytes). */
export function init(keysLimit: u32, bytesLimit: u32, hashSeed: u32): usize {
  assert(io == 0, 'init twice');
  keysMax = keysLimit;
  bytesMax = bytesLimit;
  seed = hashSeed;
  io = (__heap_base + 15) & ~15;
  heads = io + IO_BYTES;
  arenaBase = (heads + CLASSES * 4 + 15) & ~15;
  arenaTop = arenaBase;
  assert(reserve(0));
  memory.fill(heads, 0, CLASSES * 4);
  capacity = TABLE_CAPACITY_MIN;
  table = newTable(capacity);
  assert(table != 0);
  return io;
}

export function ioBytes(): u32 {
  return IO_BYTES;
}
export function keys(): u32 {
  return count;
}
export function bytes(): u32 {
  return bytesHeld;
}
export function tableAt(): usize {
  return table;
}
export function tableCapacity(): u32 {
  return capacity;
}
export function arenaStart(): usize {
  return arenaBase;
}
export function arenaEnd(): usize {
  return arenaTop;
}

/** Applies the command of n bytes at io + at (its key already checked by the face); a result code. */
export function apply(at: u32, n: u32): i32 {
  const cmd = io + at;
  const code = load<u8>(cmd);
  const keyLen: u32 = load<u16>(cmd + 1);
  const key = cmd + 3;
  let off: u32 = 3 + keyLen;
  const h = hash(key, keyLen);
  const i = find(key, keyLen, h);
  const rec: usize = i >= 0 ? <usize>load<u32>(table + (<usize>i << 3), 4) : 0;
  if (code == PUT) {
    if (n - off > VALUE_BYTES_MAX) return BAD;
    return set(i, rec, h, key, keyLen, cmd + off, n - off);
  }
  if (code == DELETE) {
    if (off != n) return BAD;
    if (rec == 0) return NOT_FOUND;
    remove(<u32>i, rec);
    return OK;
  }
  if (code == CAS) {
    if (off + 4 > n) return BAD;
    const expectLen = load<u32>(cmd + off);
    off += 4;
    if (expectLen > VALUE_BYTES_MAX || <u64>off + expectLen > n || n - (off + expectLen) > VALUE_BYTES_MAX) return BAD;
    if (rec == 0 || load<u32>(rec, 8) != expectLen || !same(rec + HEADER + keyLen, cmd + off, expectLen)) return MISMATCH;
    return set(i, rec, h, key, keyLen, cmd + off + expectLen, n - off - expectLen);
  }
  return BAD;
}

/** Bytes the last serialize() wrote. */
let serializedBytes: u32 = 0;

export function serialized(): u32 {
  return serializedBytes;
}

/**
 * Writes the entries of table slots `start`.. as a snapshot's [keyLen u16][key][valueLen u32][value]
 * at io, while they fit in IO_BYTES (the largest entry always does); returns the slot to go on
 * from (capacity once every entry is written), and serialized() the bytes written.
 */
export function serialize(start: u32): u32 {
  let at: usize = io;
  const end: usize = io + IO_BYTES;
  let j = start;
  for (; j < capacity; j++) {
    const rec: usize = <usize>load<u32>(table + (<usize>j << 3), 4);
    if (rec == 0) continue;
    const keyLen: u32 = load<u16>(rec, 12);
    const valueLen = load<u32>(rec, 8);
    const size: usize = 6 + <usize>keyLen + valueLen;
    if (at + size > end) break;
    store<u16>(at, <u16>keyLen);
    memory.copy(at + 2, rec + HEADER, keyLen);
    store<u32>(at + 2 + keyLen, valueLen);
    memory.copy(at + 6 + keyLen, rec + HEADER + keyLen, valueLen);
    at += size;
  }
  serializedBytes = <u32>(at - io);
  return j;
}

/** The record of the key of n bytes at io, or 0. */
export function lookup(n: u32): usize {
  const h = hash(io, n);
  const i = find(io, n, h);
  return i >= 0 ? <usize>load<u32>(table + (<usize>i << 3), 4) : 0;
}

function set(i: i32, rec: usize, h: u32, key: usize, keyLen: u32, value: usize, valueLen: u32): i32 {
  const old: u32 = rec != 0 ? load<u32>(rec, 8) : 0;
  const grow: i64 = rec == 0 ? <i64>keyLen + valueLen : <i64>valueLen - old;
  if ((rec == 0 && count >= keysMax) || <i64>bytesHeld + grow > <i64>bytesMax) return FULL;
  const size = blockSize(HEADER + keyLen + valueLen);
  if (rec != 0 && load<u32>(rec) == size) {
    // The same size class: write the value over the old one.
    memory.copy(rec + HEADER + keyLen, value, valueLen);
    store<u32>(rec, valueLen, 8);
    bytesHeld = <u32>(<i64>bytesHeld + grow);
    return OK;
  }
  if (rec == 0 && (count + 1) * 2 > capacity) {
    if (!growTable()) return NO_MEMORY;
  }
  const b = allocate(size);
  if (b == 0) return NO_MEMORY;
  store<u32>(b, h, 4);
  store<u32>(b, valueLen, 8);
  store<u16>(b, <u16>keyLen, 12);
  store<u16>(b, KIND_RECORD, 14);
  memory.copy(b + HEADER, key, keyLen);
  memory.copy(b + HEADER + keyLen, value, valueLen);
  if (rec != 0) {
    store<u32>(table + (<usize>i << 3), <u32>b, 4);
    release(rec);
  } else {
    // The table may have grown since find(): probe again for the empty entry.
    const e = table + (<usize>(~find(key, keyLen, h)) << 3);
    store<u32>(e, h);
    store<u32>(e, <u32>b, 4);
    count++;
  }
  bytesHeld = <u32>(<i64>bytesHeld + grow);
  compactIfSparse();
  return OK;
}

/** Removes entry i (record rec): backward-shift deletion keeps every probe run unbroken. */
function remove(i: u32, rec: usize): void {
  const mask = capacity - 1;
  let hole = i;
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const e = table + (<usize>j << 3);
    if (load<u32>(e, 4) == 0) break;
    const home = load<u32>(e) & mask;
    // Entry j may move to the hole unless its home lies cyclically in (hole, j].
    const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
    if (stays) continue;
    store<u64>(table + (<usize>hole << 3), load<u64>(e));
    hole = j;
  }
  store<u64>(table + (<usize>hole << 3), 0);
  bytesHeld -= load<u16>(rec, 12) + load<u32>(rec, 8);
  count--;
  release(rec);
  compactIfSparse();
}

/** The entry of the key, or ~(the empty entry where it would go). */
function find(key: usize, keyLen: u32, h: u32): i32 {
  const mask = capacity - 1;
  let i = h & mask;
  while (true) {
    const e = table + (<usize>i << 3);
    const rec: usize = load<u32>(e, 4);
    if (rec == 0) return ~(<i32>i);
    if (load<u32>(e) == h && load<u16>(rec, 12) == keyLen && same(rec + HEADER, key, keyLen)) return <i32>i;
    i = (i + 1) & mask;
  }
}

/** FNV-1a over the key from the seeded state, then murmur3's finalizer so that the low bits (the home entry) mix well. */
function hash(p: usize, n: u32): u32 {
  let h: u32 = 0x811c9dc5 ^ seed;
  for (let k: u32 = 0; k < n; k++) h = (h ^ load<u8>(p + k)) * 0x01000193;
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  return h ^ (h >> 16);
}

function same(a: usize, b: usize, n: u32): bool {
  let k: u32 = 0;
  for (; k + 8 <= n; k += 8) if (load<u64>(a + k) != load<u64>(b + k)) return false;
  for (; k < n; k++) if (load<u8>(a + k) != load<u8>(b + k)) return false;
  return true;
}

/** Doubles the table, re-placing every entry by its hash. */
function growTable(): bool {
  const oldTable = table;
  const oldCapacity = capacity;
  const next = newTable(oldCapacity << 1);
  if (next == 0) return false;
  table = next;
  capacity = oldCapacity << 1;
  const mask = capacity - 1;
  for (let j: u32 = 0; j < oldCapacity; j++) {
    const e = oldTable + (<usize>j << 3);
    if (load<u32>(e, 4) == 0) continue;
    let i = load<u32>(e) & mask;
    while (load<u32>(table + (<usize>i << 3), 4) != 0) i = (i + 1) & mask;
    store<u64>(table + (<usize>i << 3), load<u64>(e));
  }
  release(oldTable - HEADER);
  return true;
}

/** A zeroed table of n entries; its first entry, or 0 without memory. */
function newTable(n: u32): usize {
  const b = allocate(blockSize(HEADER + n * 8));
  if (b == 0) return 0;
  store<u16>(b, KIND_TABLE, 14);
  memory.fill(b + HEADER, 0, <usize>n * 8);
  return b + HEADER;
}

// ---- The arena: blocks in size classes, a free list per class.

/** A block's size for `need` bytes: 16-byte steps to 1 KiB, then quarter steps between powers of two. */
function blockSize(need: u32): u32 {
  if (need <= 1024) return (need + 15) & ~15;
  const p: u32 = 31 - clz<u32>(need - 1);
  const step: u32 = 1 << (p - 2);
  return (need + step - 1) & ~(step - 1);
}

/** The class of a size blockSize() returns: 1..64 to 1 KiB, then four per power of two. */
function classOf(size: u32): u32 {
  if (size <= 1024) return size >> 4;
  const p: u32 = 31 - clz<u32>(size - 1);
  const c: u32 = 64 + (p - 10) * 4 + ((size - (1 << p)) >> (p - 2));
  assert(c < CLASSES, 'size class out of range');
  return c;
}

/** A block of `size` bytes (a blockSize), or 0 when memory cannot grow. */
function allocate(size: u32): usize {
  const head = heads + (<usize>classOf(size) << 2);
  let b: usize = load<u32>(head);
  if (b != 0) {
    store<u32>(head, load<u32>(b, 4));
  } else {
    if (!reserve(size)) return 0;
    b = arenaTop;
    arenaTop += size;
  }
  store<u32>(b, size);
  liveBytes += size;
  return b;
}

function release(b: usize): void {
  const size = load<u32>(b);
  const head = heads + (<usize>classOf(size) << 2);
  store<u16>(b, KIND_FREE, 14);
  store<u32>(b, load<u32>(head), 4);
  store<u32>(head, <u32>b);
  liveBytes -= size;
}

/** Grows memory so that `size` more bytes fit above arenaTop; false if it cannot. */
function reserve(size: u32): bool {
  const end: u64 = <u64>arenaTop + size;
  const have: u64 = <u64>memory.size() << 16;
  if (end >= (<u64>1 << 32)) return false; // arenaTop would wrap to 0
  if (end <= have) return true;
  const pages = <i32>((end - have + 0xffff) >> 16);
  return memory.grow(pages) >= 0;
}

/** Slides the live blocks down over the free ones once free bytes pass half the live ones (plus slack). */
function compactIfSparse(): void {
  const used: usize = arenaTop - arenaBase;
  if (used - liveBytes <= (liveBytes >> 1) + SLACK_BYTES) return;
  let to = arenaBase;
  let from = arenaBase;
  while (from < arenaTop) {
    const size = load<u32>(from);
    const kind = load<u16>(from, 14);
    if (kind != KIND_FREE) {
      if (to != from) {
        memory.copy(to, from, size);
        if (kind == KIND_TABLE) table = to + HEADER;
        else repoint(from, to);
      }
      to += size;
    }
    from += size;
  }
  arenaTop = to;
  memory.fill(heads, 0, CLASSES * 4);
}

/** The table entry of the record that was at `from` now names `to`. */
function repoint(from: usize, to: usize): void {
  const mask = capacity - 1;
  let i = load<u32>(to, 4) & mask;
  while (load<u32>(table + (<usize>i << 3), 4) != <u32>from) i = (i + 1) & mask;
  store<u32>(table + (<usize>i << 3), <u32>to, 4);
}
