// CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
//
// Static tables, built once by the start function:
//
//   TABLES + 1024 * k + 4 * byte  ->  CRC register after `byte` then k zero bytes, k = 0..15  (16 KiB)
//   SHIFT  + 1024 * k + 4 * byte  ->  the register (byte << 8k) after BLOCK_BYTES zero bytes    (4 KiB)
//
// The loop is slice-by-16 (16 independent table lookups fold 16 bytes) run on two streams at once:
// each 2 * BLOCK_BYTES chunk is two blocks whose CRCs are computed interleaved and then joined,
// since the register is linear: crc(A || B) = shift_|B|(crc(A)) ^ crc0(B). One stream is bound by
// the latency of its lookups; two streams fill that wait (measured: about 1.5x one stream here).
// A v128 variant (one load, lanes extracted without shifts or masks) is kept as crc32cSimd for
// the benchmark; WASM SIMD has neither a gather nor a carry-less multiply, so the lookups
// themselves cannot run in parallel lanes.

// @ts-ignore: decorator
@inline const POLY: u32 = 0x82f63b78;
// @ts-ignore: decorator
@inline const BLOCK_BYTES: usize = 256;
const TABLES: usize = memory.data(16 * 256 * 4, 16);
const SHIFT: usize = memory.data(4 * 256 * 4, 16);

/** One byte at a time: the definition, used for tails and to build the shift table. */
// @ts-ignore: decorator
@inline function step(crc: u32, b: u32): u32 {
  return load<u32>(TABLES + (<usize>((crc ^ b) & 0xff) << 2)) ^ (crc >>> 8);
}

function buildTables(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(TABLES + (<usize>n << 2), c);
  }
  for (let n: u32 = 0; n < 256; n++) {
    for (let k: u32 = 1; k < 16; k++) {
      const prev = load<u32>(TABLES + ((<usize>(k - 1) * 256 + n) << 2));
      store<u32>(TABLES + ((<usize>k * 256 + n) << 2), (prev >>> 8) ^ load<u32>(TABLES + (<usize>(prev & 0xff) << 2)));
    }
  }
  // Shifting by BLOCK_BYTES zero bytes is linear: build it from the 32 single-bit registers.
  const basis = memory.data(32 * 4, 16);
  for (let i: u32 = 0; i < 32; i++) {
    let r: u32 = 1 << i;
    for (let k: usize = 0; k < BLOCK_BYTES; k++) r = step(r, 0);
    store<u32>(basis + (<usize>i << 2), r);
  }
  for (let k: u32 = 0; k < 4; k++) {
    for (let b: u32 = 0; b < 256; b++) {
      let r: u32 = 0;
      for (let j: u32 = 0; j < 8; j++) if (b & (1 << j)) r ^= load<u32>(basis + (<usize>(8 * k + j) << 2));
      store<u32>(SHIFT + ((<usize>k * 256 + b) << 2), r);
    }
  }
}
buildTables();

/** The register after BLOCK_BYTES zero bytes. */
// @ts-ignore: decorator
@inline function shiftBlock(r: u32): u32 {
  return load<u32>(SHIFT + (<usize>(r & 0xff) << 2)) ^ load<u32>(SHIFT + (<usize>((r >>> 8) & 0xff) << 2), 1024) ^
    load<u32>(SHIFT + (<usize>((r >>> 16) & 0xff) << 2), 2048) ^ load<u32>(SHIFT + (<usize>(r >>> 24) << 2), 3072);
}

/** Fold the 16 bytes at p into the register. */
// @ts-ignore: decorator
@inline function fold16(crc: u32, p: usize): u32 {
  const x = crc ^ load<u32>(p);
  return load<u32>(TABLES + (<usize>(x & 0xff) << 2), 15360) ^
    load<u32>(TABLES + (<usize>((x >>> 8) & 0xff) << 2), 14336) ^
    load<u32>(TABLES + (<usize>((x >>> 16) & 0xff) << 2), 13312) ^
    load<u32>(TABLES + (<usize>(x >>> 24) << 2), 12288) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 4) << 2), 11264) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 5) << 2), 10240) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 6) << 2), 9216) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 7) << 2), 8192) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 8) << 2), 7168) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 9) << 2), 6144) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 10) << 2), 5120) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 11) << 2), 4096) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 12) << 2), 3072) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 13) << 2), 2048) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 14) << 2), 1024) ^
    load<u32>(TABLES + (<usize>load<u8>(p, 15) << 2), 0);
}

/** The same fold with a v128 load and lane extracts. */
// @ts-ignore: decorator
@inline function fold16v(crc: u32, p: usize): u32 {
  const v = v128.xor(v128.load(p), i32x4.replace_lane(i32x4.splat(0), 0, crc));
  return load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 0) << 2), 15360) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 1) << 2), 14336) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 2) << 2), 13312) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 3) << 2), 12288) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 4) << 2), 11264) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 5) << 2), 10240) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 6) << 2), 9216) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 7) << 2), 8192) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 8) << 2), 7168) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 9) << 2), 6144) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 10) << 2), 5120) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 11) << 2), 4096) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 12) << 2), 3072) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 13) << 2), 2048) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 14) << 2), 1024) ^
    load<u32>(TABLES + (<usize>i8x16.extract_lane_u(v, 15) << 2), 0);
}

/** Continue the raw register `crc` over [p, p + n). */
export function crcUpdate(crc: u32, p: usize, n: usize): u32 {
  const end = p + n;
  while (p + 2 * BLOCK_BYTES <= end) {
    let a = crc;
    let b: u32 = 0;
    const q = p + BLOCK_BYTES;
    for (let i: usize = 0; i < BLOCK_BYTES; i += 16) {
      a = fold16(a, p + i);
      b = fold16(b, q + i);
    }
    crc = shiftBlock(a) ^ b;
    p += 2 * BLOCK_BYTES;
  }
  for (; p + 16 <= end; p += 16) crc = fold16(crc, p);
  for (; p < end; p++) crc = step(crc, load<u8>(p));
  return crc;
}

/** crcUpdate with the v128 fold, for the benchmark. */
export function crcUpdateSimd(crc: u32, p: usize, n: usize): u32 {
  const end = p + n;
  while (p + 2 * BLOCK_BYTES <= end) {
    let a = crc;
    let b: u32 = 0;
    const q = p + BLOCK_BYTES;
    for (let i: usize = 0; i < BLOCK_BYTES; i += 16) {
      a = fold16v(a, p + i);
      b = fold16v(b, q + i);
    }
    crc = shiftBlock(a) ^ b;
    p += 2 * BLOCK_BYTES;
  }
  for (; p + 16 <= end; p += 16) crc = fold16v(crc, p);
  for (; p < end; p++) crc = step(crc, load<u8>(p));
  return crc;
}

/** CRC32C of [p, p + n) continuing from a finished CRC `seed` (0 to start). */
export function crc32c(p: usize, n: usize, seed: u32): u32 {
  return ~crcUpdate(~seed, p, n);
}

/** The same with the v128 fold, for the benchmark. */
export function crc32cSimd(p: usize, n: usize, seed: u32): u32 {
  return ~crcUpdateSimd(~seed, p, n);
}

/** CRC32C of a frame or record of `length` bytes at p: every byte but the CRC field at [8, 12). */
export function crcFrame(p: usize, length: usize): u32 {
  return ~crcUpdate(crcUpdate(0xffffffff, p, 8), p + 12, length - 12);
}
