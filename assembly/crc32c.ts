// CRC32C (Castagnoli, reflected polynomial 0x82F63B78).
//
// Tables (built once by the start function, 16 KiB of static memory):
//
//   TABLES + 1024 * k + 4 * byte  ->  CRC of `byte` followed by k zero bytes, k = 0..15
//
// The hot loop is slice-by-16: two u64 loads give 16 bytes, and 16 independent table lookups
// fold them into the register at once. A v128 variant (one i8x16 load, lanes extracted without
// shifts or masks) is kept as crcUpdateSimd for the benchmark; WASM SIMD has neither a gather nor
// a carry-less multiply, so it cannot do the lookups themselves in parallel.

// @ts-ignore: decorator
@inline const POLY: u32 = 0x82f63b78;
const TABLES: usize = memory.data(16 * 256 * 4, 16);

function buildTables(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    store<u32>(TABLES + (<usize>n << 2), c);
  }
  for (let n: u32 = 0; n < 256; n++) {
    for (let k: u32 = 1; k < 16; k++) {
      const prev = load<u32>(TABLES + ((<usize>(k - 1) * 256 + n) << 2));
      store<u32>(TABLES + ((<usize>k * 256 + n) << 2), (prev >>> 8) ^ load<u32>(TABLES + ((<usize>(prev & 0xff)) << 2)));
    }
  }
}
buildTables();

// @ts-ignore: decorator
@inline function T(k: u32, b: u32): u32 {
  return load<u32>(TABLES + ((<usize>k << 10) | (<usize>b << 2)));
}

/** Continue the raw register `crc` over [p, p + n). */
export function crcUpdate(crc: u32, p: usize, n: usize): u32 {
  const end = p + n;
  while (p + 16 <= end) {
    const w0 = load<u64>(p) ^ <u64>crc;
    const w1 = load<u64>(p, 8);
    const a = <u32>w0, b = <u32>(w0 >>> 32), c = <u32>w1, d = <u32>(w1 >>> 32);
    crc = T(15, a & 0xff) ^ T(14, (a >>> 8) & 0xff) ^ T(13, (a >>> 16) & 0xff) ^ T(12, a >>> 24) ^
      T(11, b & 0xff) ^ T(10, (b >>> 8) & 0xff) ^ T(9, (b >>> 16) & 0xff) ^ T(8, b >>> 24) ^
      T(7, c & 0xff) ^ T(6, (c >>> 8) & 0xff) ^ T(5, (c >>> 16) & 0xff) ^ T(4, c >>> 24) ^
      T(3, d & 0xff) ^ T(2, (d >>> 8) & 0xff) ^ T(1, (d >>> 16) & 0xff) ^ T(0, d >>> 24);
    p += 16;
  }
  while (p < end) {
    crc = T(0, (crc ^ <u32>load<u8>(p)) & 0xff) ^ (crc >>> 8);
    p++;
  }
  return crc;
}

/** The same fold with a v128 load and lane extracts, kept to measure against crcUpdate. */
export function crcUpdateSimd(crc: u32, p: usize, n: usize): u32 {
  const end = p + n;
  while (p + 16 <= end) {
    const v = v128.xor(v128.load(p), i32x4.replace_lane(i32x4.splat(0), 0, crc));
    crc = T(15, i8x16.extract_lane_u(v, 0)) ^ T(14, i8x16.extract_lane_u(v, 1)) ^
      T(13, i8x16.extract_lane_u(v, 2)) ^ T(12, i8x16.extract_lane_u(v, 3)) ^
      T(11, i8x16.extract_lane_u(v, 4)) ^ T(10, i8x16.extract_lane_u(v, 5)) ^
      T(9, i8x16.extract_lane_u(v, 6)) ^ T(8, i8x16.extract_lane_u(v, 7)) ^
      T(7, i8x16.extract_lane_u(v, 8)) ^ T(6, i8x16.extract_lane_u(v, 9)) ^
      T(5, i8x16.extract_lane_u(v, 10)) ^ T(4, i8x16.extract_lane_u(v, 11)) ^
      T(3, i8x16.extract_lane_u(v, 12)) ^ T(2, i8x16.extract_lane_u(v, 13)) ^
      T(1, i8x16.extract_lane_u(v, 14)) ^ T(0, i8x16.extract_lane_u(v, 15));
    p += 16;
  }
  while (p < end) {
    crc = T(0, (crc ^ <u32>load<u8>(p)) & 0xff) ^ (crc >>> 8);
    p++;
  }
  return crc;
}

/** CRC32C of [p, p + n) continuing from a finished CRC `seed` (0 to start). */
export function crc32c(p: usize, n: usize, seed: u32): u32 {
  return ~crcUpdate(~seed, p, n);
}

/** The same with the v128 loop, for the benchmark. */
export function crc32cSimd(p: usize, n: usize, seed: u32): u32 {
  return ~crcUpdateSimd(~seed, p, n);
}

/** CRC32C of a frame or record of `length` bytes at p: every byte but the CRC field at [8, 12). */
export function crcFrame(p: usize, length: usize): u32 {
  return ~crcUpdate(crcUpdate(0xffffffff, p, 8), p + 12, length - 12);
}
