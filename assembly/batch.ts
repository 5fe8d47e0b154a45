// The batcher: client commands waiting for a slot, kept in rings in linear memory and cut into
// one encoded batch (count u32 | (length u32 | bytes)*) by count and bytes in a single call.
//
// State block (u32 words; the TypeScript face pushes into the rings and grows them):
//
//   +0  countMax   +4  bytesMax     bounds on pending commands and their payload bytes
//   +8  head       index in the length ring of the oldest command      (< lenCap)
//   +12 count      commands pending                                    (<= lenCap, <= countMax)
//   +16 byteHead   offset in the byte ring of the oldest command's bytes (< byteCap)
//   +20 bytes      payload bytes pending                               (<= byteCap, <= bytesMax)
//   +24 lenCap     +28 byteCap      ring capacities
//   +32 lenRing    +36 byteRing     ring addresses (u32 lengths; raw bytes, wrapping)

// @ts-ignore: decorator
@inline const HEAD: usize = 8;
// @ts-ignore: decorator
@inline const COUNT: usize = 12;
// @ts-ignore: decorator
@inline const BYTE_HEAD: usize = 16;
// @ts-ignore: decorator
@inline const BYTES: usize = 20;
// @ts-ignore: decorator
@inline const LEN_CAP: usize = 24;
// @ts-ignore: decorator
@inline const BYTE_CAP: usize = 28;
// @ts-ignore: decorator
@inline const LEN_RING: usize = 32;
// @ts-ignore: decorator
@inline const BYTE_RING: usize = 36;

/** Copy n bytes starting at ring offset `from` (wrapping at cap) to dst. */
function copyOut(ring: usize, cap: u32, from: u32, n: u32, dst: usize): void {
  const first = min<u32>(n, cap - from);
  memory.copy(dst, ring + from, first);
  if (first < n) memory.copy(dst + first, ring, n - first);
}

/**
 * Cut the oldest commands, at most countMax of them and at most bytesMax bytes of encoded batch
 * (but at least one command if any is pending), encoded into out. Returns the batch length.
 * The caller sizes out for 4 + 4 * count + bytes.
 */
export function batcherCut(st: usize, out: usize, countMax: u32, bytesMax: u32): u32 {
  const head = load<u32>(st + HEAD);
  const count = load<u32>(st + COUNT);
  const lenCap = load<u32>(st + LEN_CAP);
  const byteCap = load<u32>(st + BYTE_CAP);
  const lenRing = <usize>load<u32>(st + LEN_RING);
  const byteRing = <usize>load<u32>(st + BYTE_RING);
  let byteHead = load<u32>(st + BYTE_HEAD);
  let n: u32 = 0;
  let at: usize = 4;
  let payload: u64 = 0;
  while (n < count && n < countMax) {
    let li = head + n;
    if (li >= lenCap) li -= lenCap;
    const size = load<u32>(lenRing + (<usize>li << 2));
    if (n > 0 && 4 + 4 * <u64>(n + 1) + payload + size > <u64>bytesMax) break;
    store<u32>(out + at, size);
    copyOut(byteRing, byteCap, byteHead, size, out + at + 4);
    byteHead += size;
    if (byteHead >= byteCap) byteHead -= byteCap;
    at += 4 + size;
    payload += size;
    n++;
  }
  store<u32>(out, n);
  let newHead = head + n;
  if (newHead >= lenCap) newHead -= lenCap;
  const left = count - n;
  store<u32>(st + HEAD, left == 0 ? 0 : newHead);
  store<u32>(st + COUNT, left);
  store<u32>(st + BYTE_HEAD, left == 0 ? 0 : byteHead);
  store<u32>(st + BYTES, load<u32>(st + BYTES) - <u32>payload);
  return <u32>at;
}

/** Move the pending commands into new, larger rings (linearized from index 0). */
export function batcherMove(st: usize, lenRing: usize, lenCap: u32, byteRing: usize, byteCap: u32): void {
  const count = load<u32>(st + COUNT);
  const bytes = load<u32>(st + BYTES);
  assert(count <= lenCap && bytes <= byteCap, 'batcherMove: new rings too small');
  const oldLenCap = load<u32>(st + LEN_CAP);
  const head = load<u32>(st + HEAD);
  const oldLenRing = <usize>load<u32>(st + LEN_RING);
  const firstLens = min<u32>(count, oldLenCap - head);
  memory.copy(lenRing, oldLenRing + (<usize>head << 2), <usize>firstLens << 2);
  if (firstLens < count) memory.copy(lenRing + (<usize>firstLens << 2), oldLenRing, <usize>(count - firstLens) << 2);
  copyOut(<usize>load<u32>(st + BYTE_RING), load<u32>(st + BYTE_CAP), load<u32>(st + BYTE_HEAD), bytes, byteRing);
  store<u32>(st + HEAD, 0);
  store<u32>(st + BYTE_HEAD, 0);
  store<u32>(st + LEN_CAP, lenCap);
  store<u32>(st + BYTE_CAP, byteCap);
  store<u32>(st + LEN_RING, <u32>lenRing);
  store<u32>(st + BYTE_RING, <u32>byteRing);
}
