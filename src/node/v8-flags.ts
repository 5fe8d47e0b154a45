// The V8 flags a paxlog node process runs with (`paxlog cluster`, the benchmark, the soak and the
// tests start `serve` with them; bin/paxlog.js passes them through its #! line).
//
// --initial-old-space-size=256: a node's own heap is small (the KV data live in WebAssembly
// memory), so V8 set its old-generation limit a few MB above it, and the garbage promoted
// by requests in flight reached that limit several times a second: a follower under HTTP load ran
// 60-100 full mark-compacts in 10 s. With the flag it ran 1-2, and HTTP writes went from 25k to
// 35k a second (see docs/measurements.md).
export const serveNodeFlags: readonly string[] = ['--initial-old-space-size=256'];

/** The flags of serveNodeFlags this process was started without (on its command line or in NODE_OPTIONS). */
export function missingNodeFlags(): string[] {
  const options = process.env.NODE_OPTIONS ?? '';
  return serveNodeFlags.filter((f) => !process.execArgv.includes(f) && !options.split(/\s+/).includes(f));
}
