// The leader's slot window: in-flight slots [prefix, prefix + capacity), each with an ack bitset
// over member indexes 0..31 and a chosen mark. One ack() call records an Accepted for a run of
// slots and reports the slots it made chosen (holes allowed); the prefix then moves past every
// chosen slot at its front, freeing those places for slots above. A slot is chosen once its acks
// reach the quorum and include every `required` member (the leader: its own accept on disk).
//
// State block (8-aligned):
//
//   +0   prefix f64         the first slot not chosen; every slot below it is chosen
//   +8   quorum u32         acks that choose a slot, 1..32
//   +12  capacity u32       slots in the window
//   +16  chosenAbove u32    chosen slots at or above prefix (< capacity)
//   +20  newlyChosenCount u32  slots in newlyChosen from the last ack
//   +24  required u32       members whose ack a slot needs to be chosen, bit per member
//   +32  newlyChosen f64[capacity]       slots made chosen by the last ack, in order
//   +32 + 8c  acked u32[capacity]       ack bitset of slot s at [s % capacity]
//   +32 + 12c chosen u8[capacity]       1 if slot s (same place) is chosen
//
// Slots cross the boundary as f64 (safe integers) and are u64 inside.

// @ts-ignore: decorator
@inline const HEADER: usize = 32;

export function windowBytes(capacity: u32): usize {
  return HEADER + 13 * <usize>capacity;
}

// @ts-ignore: decorator
@inline function ackedAt(st: usize, cap: u32, i: u64): usize {
  return st + HEADER + 8 * <usize>cap + (<usize>i << 2);
}

// @ts-ignore: decorator
@inline function chosenAt(st: usize, cap: u32, i: u64): usize {
  return st + HEADER + 12 * <usize>cap + <usize>i;
}

export function windowInit(st: usize, capacity: u32): void {
  memory.fill(st, 0, windowBytes(capacity));
  store<f64>(st, 1);
  store<u32>(st, 1, 8);
  store<u32>(st, capacity, 12);
}

export function windowReset(st: usize, prefix: f64, quorum: u32, required: u32): void {
  const cap = load<u32>(st, 12);
  memory.fill(st + HEADER, 0, 13 * <usize>cap);
  store<f64>(st, prefix);
  store<u32>(st, quorum, 8);
  store<u32>(st, 0, 16);
  store<u32>(st, 0, 20);
  store<u32>(st, required, 24);
}

/** Move the prefix past chosen slots at the front, clearing their places. */
function advance(st: usize, cap: u32): void {
  let prefix = <u64>load<f64>(st);
  let above = load<u32>(st, 16);
  let i = prefix % cap;
  while (load<u8>(chosenAt(st, cap, i)) != 0) {
    store<u8>(chosenAt(st, cap, i), 0);
    store<u32>(ackedAt(st, cap, i), 0);
    above--;
    prefix++;
    i++;
    if (i == <u64>cap) i = 0;
  }
  store<f64>(st, <f64>prefix);
  store<u32>(st, above, 16);
}

/**
 * Count `member` as having accepted slots [first, first + count). Returns how many slots became
 * chosen (their numbers are in newlyChosen), or -1 if the run reaches past the window.
 */
export function windowAck(st: usize, member: u32, first: f64, count: f64): i32 {
  store<u32>(st, 0, 20);
  if (count == 0) return 0;
  const cap = load<u32>(st, 12);
  const quorum = load<u32>(st, 8);
  const required = load<u32>(st, 24);
  const prefix = <u64>load<f64>(st);
  const from = <u64>first;
  const end = from + <u64>count;
  if (end - 1 >= prefix + cap) return -1;
  const bit: u32 = 1 << member;
  let above = load<u32>(st, 16);
  let n: u32 = 0;
  let s = max<u64>(from, prefix);
  let i = s % cap;
  for (; s < end; s++) {
    const a = ackedAt(st, cap, i);
    const acks = load<u32>(a) | bit;
    store<u32>(a, acks);
    const c = chosenAt(st, cap, i);
    if (load<u8>(c) == 0 && <u32>popcnt<u32>(acks) >= quorum && (acks & required) == required) {
      store<u8>(c, 1);
      above++;
      store<f64>(st + HEADER + (<usize>n << 3), <f64>s);
      n++;
    }
    i++;
    if (i == <u64>cap) i = 0;
  }
  store<u32>(st, above, 16);
  store<u32>(st, n, 20);
  advance(st, cap);
  return <i32>n;
}

/** Mark a slot chosen directly. Returns -1 if it lies past the window. */
export function windowMark(st: usize, slot: f64): i32 {
  const cap = load<u32>(st, 12);
  const prefix = <u64>load<f64>(st);
  const s = <u64>slot;
  if (s < prefix) return 0;
  if (s >= prefix + cap) return -1;
  const c = chosenAt(st, cap, s % cap);
  if (load<u8>(c) == 0) {
    store<u8>(c, 1);
    store<u32>(st, load<u32>(st, 16) + 1, 16);
    advance(st, cap);
  }
  return 0;
}

export function windowIsChosen(st: usize, slot: f64): i32 {
  const cap = load<u32>(st, 12);
  const prefix = <u64>load<f64>(st);
  const s = <u64>slot;
  if (s < prefix) return 1;
  if (s >= prefix + cap) return 0;
  return <i32>load<u8>(chosenAt(st, cap, s % cap));
}

export function windowAckers(st: usize, slot: f64): u32 {
  const cap = load<u32>(st, 12);
  const prefix = <u64>load<f64>(st);
  const s = <u64>slot;
  if (s < prefix || s >= prefix + cap) return 0;
  return load<u32>(ackedAt(st, cap, s % cap));
}
