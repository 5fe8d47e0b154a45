// The TypeScript twin of every kernel, assembled into one Kernels object. It is the reference
// model the WASM kernels are tested against, and selectable at run time (kernels: 'js').

import type { Kernels } from '../types.js';
import { ballotCompare, ballotNextAbove, ballotNode, ballotPack, ballotRound } from './ballot.js';
import { JsBatcher } from './batch.js';
import { JsCodec, decodeBatch, decodeBatchPlaces, encodeBatch } from './codec.js';
import { crc32c } from './crc32c.js';
import { JsPromiseCounter, quorumIndex } from './quorum.js';
import { StreamFrameReader } from './reader.js';
import { JsSlotWindow } from './window.js';

export const createJsKernels = (): Kernels => {
  const codec = new JsCodec();
  return {
    kind: 'js',
    ballotPack, ballotRound, ballotNode, ballotCompare, ballotNextAbove,
    crc32c,
    encode: (m) => codec.encode(m),
    decode: (frame) => codec.decode(frame),
    encodeRecord: (r) => codec.encodeRecord(r),
    decodeRecord: (bytes) => codec.decodeRecord(bytes),
    decodeBatch,
    decodeBatchPlaces,
    encodeBatch,
    newBatcher: (countMax, bytesMax) => new JsBatcher(countMax, bytesMax),
    newSlotWindow: (capacity) => new JsSlotWindow(capacity),
    newPromiseCounter: () => new JsPromiseCounter(),
    newFrameReader: (frameBytesMax) => new StreamFrameReader(frameBytesMax),
    quorumIndex,
  };
};
