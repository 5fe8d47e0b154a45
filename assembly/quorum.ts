// Quorum counting: phase-1 Promise counting (one bit per member) and Raft's commit rule.
//
// Promise counter state (u32 words): +0 bits (member m promised), +4 count (= popcount(bits)),
// +8 quorum (Promises that elect).

export function promiseReset(st: usize, quorum: u32): void {
  store<u32>(st, 0);
  store<u32>(st, 0, 4);
  store<u32>(st, quorum, 8);
}

/** Record member's Promise; 1 when this call first reaches the quorum, else 0. */
export function promiseAdd(st: usize, member: u32): i32 {
  const bit: u32 = 1 << member;
  const bits = load<u32>(st);
  if ((bits & bit) != 0) return 0;
  store<u32>(st, bits | bit);
  const count = load<u32>(st, 4) + 1;
  store<u32>(st, count, 4);
  return count == load<u32>(st, 8) ? 1 : 0;
}

/** The quorum-th largest of n f64 at p (sorted in place, descending, by insertion). */
export function quorumIndex(p: usize, n: u32, quorum: u32): f64 {
  for (let i: u32 = 1; i < n; i++) {
    const x = load<f64>(p + (<usize>i << 3));
    let j = i;
    while (j > 0 && load<f64>(p + (<usize>(j - 1) << 3)) < x) {
      store<f64>(p + (<usize>j << 3), load<f64>(p + (<usize>(j - 1) << 3)));
      j--;
    }
    store<f64>(p + (<usize>j << 3), x);
  }
  return load<f64>(p + (<usize>(quorum - 1) << 3));
}
