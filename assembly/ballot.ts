// Ballots: round * 65536 + nodeId, carried across the boundary as safe-integer f64 (never i64,
// which JavaScript would see as a BigInt). Invalid input returns -1; the TypeScript face turns
// that into an assertion failure, as the twin does.

// @ts-ignore: decorator
@inline const NODE_SPAN: f64 = 65536;
// @ts-ignore: decorator
@inline const SAFE_MAX: f64 = 9007199254740991;
// @ts-ignore: decorator
@inline const ROUND_MAX: f64 = 137438953470; // floor(SAFE_MAX / 65536) - 1

/** True if x is an integer in [0, 2^53 - 1]; NaN fails every compare. */
// @ts-ignore: decorator
@inline export function isSafe(x: f64): bool {
  return x >= 0 && x <= SAFE_MAX && floor<f64>(x) == x;
}

export function ballotPack(round: f64, node: f64): f64 {
  if (!(round >= 0 && round <= ROUND_MAX && floor<f64>(round) == round)) return -1;
  if (!(node >= 0 && node < NODE_SPAN && floor<f64>(node) == node)) return -1;
  return round * NODE_SPAN + node;
}

export function ballotRound(ballot: f64): f64 {
  if (!isSafe(ballot)) return -1;
  return floor<f64>(ballot / NODE_SPAN);
}

export function ballotNode(ballot: f64): f64 {
  if (!isSafe(ballot)) return -1;
  return <f64>(<u64>ballot & 0xffff);
}

export function ballotCompare(a: f64, b: f64): i32 {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function ballotNextAbove(above: f64, node: f64): f64 {
  const round = ballotRound(above);
  if (round < 0) return -1;
  const same = ballotPack(round, node);
  if (same < 0) return -1;
  return same > above ? same : ballotPack(round + 1, node);
}
