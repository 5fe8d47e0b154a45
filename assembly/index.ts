// paxlog's WebAssembly kernels. Runtime stub: nothing here allocates; every region (scratch,
// encode output, batcher rings, slot windows) is handed in by the TypeScript face (src/wasm),
// which manages the heap above __heap_base. Imports: `abort` only (for the asserts kept in
// release, see asconfig.json).

export { ballotPack, ballotRound, ballotNode, ballotCompare, ballotNextAbove } from './ballot';
export { crc32c, crc32cSimd, crcFrame } from './crc32c';
export { rulesPtr, encodeFrame, decodeFrame, encodeRecord, decodeRecord, decodeBatch } from './codec';
export { batcherCut, batcherMove } from './batch';
export { windowBytes, windowInit, windowReset, windowAck, windowMark, windowIsChosen, windowAckers } from './window';
export { promiseReset, promiseAdd, quorumIndex } from './quorum';

/** The first byte the TypeScript face may use for its own regions. */
export function heapBase(): usize {
  return __heap_base;
}
