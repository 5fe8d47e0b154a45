// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), slice-by-8: eight 256-entry tables let
// the loop fold eight bytes per step instead of one. Table 0 is the classic bytewise table;
// table k gives the CRC of a byte followed by k zero bytes.

export const CRC32C_POLY = 0x82f63b78;

const buildTables = (): Int32Array => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ CRC32C_POLY : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let k = 1; k < 8; k++) {
      const prev = t[(k - 1) * 256 + n];
      t[k * 256 + n] = (prev >>> 8) ^ t[prev & 0xff];
    }
  }
  return t;
};

/** Eight tables of 256 entries: T[k * 256 + byte]. */
export const CRC_TABLES = buildTables();

/** Continue the raw (not finalized) register `crc` over bytes [start, end). */
export const crcUpdate = (crc: number, bytes: Uint8Array, start: number, end: number): number => {
  const t = CRC_TABLES;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo = crc ^ (bytes[i] | (bytes[i + 1] << 8) | (bytes[i + 2] << 16) | (bytes[i + 3] << 24));
    crc = t[1792 + (lo & 0xff)] ^ t[1536 + ((lo >>> 8) & 0xff)] ^ t[1280 + ((lo >>> 16) & 0xff)] ^ t[1024 + (lo >>> 24)] ^
      t[768 + bytes[i + 4]] ^ t[512 + bytes[i + 5]] ^ t[256 + bytes[i + 6]] ^ t[bytes[i + 7]];
  }
  for (; i < end; i++) crc = t[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return crc;
};

/** CRC32C of `bytes`, continuing from a previous result `seed` (0 to start). */
export const crc32c = (bytes: Uint8Array, seed = 0): number =>
  (~crcUpdate(~seed, bytes, 0, bytes.length)) >>> 0;

/** CRC32C of a frame or record: every byte but the CRC field at [8, 12). */
export const crcFrame = (bytes: Uint8Array, length: number): number =>
  (~crcUpdate(crcUpdate(-1, bytes, 0, 8), bytes, 12, length)) >>> 0;
