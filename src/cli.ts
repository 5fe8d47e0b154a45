// The `paxlog` command: serve, cluster, status, sim. Parsed by commander; logs by pino.

import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { httpPortProblem, startKvServer } from './api/server.js';
import { missingNodeFlags, serveNodeFlags } from './node/v8-flags.js';
import { benchCommand } from './bench/command.js';
import type { KernelKind } from './kernels/types.js';
import { plantedBugs, type PlantedBug, type ProtocolName } from './protocol/types.js';
import { isListenHost, parsePeers, PeerListError } from './transport/addresses.js';
import { LogStore, logExists } from './storage/log-store.js';
import { makeDirs } from './storage/dirs.js';
import { loadKernels } from './kernels/index.js';
import type { PeerAddress } from './transport/peers.js';
import { soakDefaults } from './soak/defaults.js';

/** A user's mistake in flags: printed as one line, exit code 2. */
class UsageError extends Error {}

/** --peers for commander: the same parser, its errors as commander's. */
const peersOption = (text: string): Map<number, PeerAddress> => {
  try {
    return parsePeers(text);
  } catch (e) {
    if (e instanceof PeerListError) throw new InvalidArgumentError(e.message);
    throw e;
  }
};

const intIn = (lo: number, hi: number) => (v: string): number => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`"${v}" is not a whole number`);
  const n = Number(v);
  if (n < lo || n > hi) throw new InvalidArgumentError(`${n} is not in ${lo}..${hi}`);
  return n;
};

const onOff = (v: string): boolean => {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new InvalidArgumentError(`"${v}" is not on or off`);
};

/** A probability in [0, 1] for the simulator's disk options. */
const probability = (v: string): number => {
  const p = Number(v);
  if (v.trim() === '' || !(p >= 0 && p <= 1)) throw new InvalidArgumentError(`"${v}" is not a probability in [0, 1]`);
  return p;
};

/** --bug for commander: one planted bug per flag, repeatable; the set goes to the simulator. */
const bugOption = (v: string, bugs: Partial<Record<PlantedBug, boolean>> = {}): Partial<Record<PlantedBug, boolean>> => {
  if (!(plantedBugs as readonly string[]).includes(v)) {
    throw new InvalidArgumentError(`"${v}" is not a planted bug: expected one of ${plantedBugs.join(', ')}`);
  }
  return { ...bugs, [v]: true };
};

const makeLogger = (level: string, id?: number): Logger =>
  pino({ level, base: id !== undefined ? { node: id } : {}, timestamp: pino.stdTimeFunctions.isoTime });

interface ServeFlags {
  id: number;
  stopWithStdin: boolean;
  peers: Map<number, PeerAddress>;
  data: string;
  listenHost?: string;
  httpPort?: number;
  protocol: ProtocolName;
  fsync: boolean;
  batchMax?: number;
  pipeline?: number;
  secret?: string;
  kernels: KernelKind;
  tickMs: number;
  requestTimeoutMs: number;
  snapshotSlots: number;
  snapshotBytes: number;
  rejoinWithoutVoting: boolean;
  newCluster: boolean;
  preallocateMib: number;
  logLevel: string;
  faultLoss: number;
  faultDelayMs: number;
  faultSeed: number;
  faultControl: boolean;
  secretFile?: string;
  clientToken?: string;
  clientTokenFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/**
 * A secret from a flag, a file or the environment (at most one flag). A file's trailing newline is
 * not part of the secret. The value is never logged or echoed in an error. An empty one given is
 * refused, wherever it comes from: `--client-token "$TOKEN"` with TOKEN unset would otherwise turn
 * client authentication off without a word (leaving a secret out is how one runs without it).
 */
function readSecret(what: string, flag: string | undefined, file: string | undefined, flagName: string, envName: string): string | undefined {
  if (flag !== undefined && file !== undefined) throw new UsageError(`give ${flagName} or ${flagName}-file, not both`);
  if (file === undefined) {
    const given = flag ?? process.env[envName];
    if (given === '') throw new UsageError(`the ${what} is empty (${flag !== undefined ? flagName : envName}): give a non-empty one, or leave it out`);
    return given;
  }
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${flagName}-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const secret = text.replace(/\r?\n$/, '');
  if (secret === '' || /[\r\n]/.test(secret)) throw new UsageError(`${flagName}-file ${file} must hold the ${what} on one non-empty line`);
  return secret;
}

async function serve(f: ServeFlags): Promise<void> {
  if (!f.peers.has(f.id)) throw new UsageError(`--id ${f.id} is not in --peers (${[...f.peers.keys()].join(', ')})`);
  const portProblem = httpPortProblem(f.httpPort, f.peers.get(f.id)!.port);
  if (portProblem !== null) throw new UsageError(portProblem);
  const secret = readSecret('cluster secret', f.secret, f.secretFile, '--secret', 'PAXLOG_SECRET') ?? '';
  const clientToken = readSecret('client token', f.clientToken, f.clientTokenFile, '--client-token', 'PAXLOG_CLIENT_TOKEN');
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw new UsageError('TLS needs both --tls-cert and --tls-key');
  if (f.tlsCa !== undefined && f.tlsCert === undefined) throw new UsageError('--tls-ca needs --tls-cert and --tls-key');
  const tls = f.tlsCert !== undefined && f.tlsKey !== undefined ? { certFile: f.tlsCert, keyFile: f.tlsKey, caFile: f.tlsCa } : undefined;
  const log = makeLogger(f.logLevel, f.id);
  const missing = missingNodeFlags();
  if (missing.length > 0) log.warn({ missing }, `node was started without ${missing.join(' ')}: expect frequent full garbage collections and less throughput (run bin/paxlog.js directly, or pass the flags to node)`);
  const server = await startKvServer({
    id: f.id, peers: f.peers, listenHost: f.listenHost, dataDir: f.data, logger: log, protocol: f.protocol, kernels: f.kernels, fsync: f.fsync,
    secret, clientToken, tls, batchMax: f.batchMax, pipeline: f.pipeline, tickMs: f.tickMs,
    requestTimeoutMs: f.requestTimeoutMs, httpPort: f.httpPort, snapshotSlots: f.snapshotSlots, snapshotBytes: f.snapshotBytes, rejoinWithoutVoting: f.rejoinWithoutVoting, newCluster: f.newCluster,
    preallocateBytes: f.preallocateMib * 1024 * 1024,
    faults: f.faultLoss > 0 || f.faultDelayMs > 0 ? { lossProbability: f.faultLoss, delayMs: f.faultDelayMs, seed: f.faultSeed } : undefined,
    faultControl: f.faultControl,
  }, log);
  const stop = (why: string): void => {
    // A signal is how an operator stops a node; standard input closing means the harness that
    // started it is gone, which whoever reads the log should see.
    log[why.startsWith('SIG') ? 'info' : 'warn']({ why }, 'stopping');
    server.stop().then(() => process.exit(0), (err: Error) => {
      log.error({ err: err.message }, 'the node did not stop cleanly');
      process.exit(1);
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  if (f.stopWithStdin) {
    // The harness that started this node holds the other end: if it dies, even by SIGKILL, the
    // pipe closes and the node stops rather than run on as an orphan holding its ports.
    process.stdin.once('end', () => stop('stdin closed'));
    process.stdin.once('error', () => stop('stdin closed'));
    process.stdin.resume();
  }
}

interface ClusterFlags {
  nodes: number;
  protocol: ProtocolName;
  data?: string;
  basePort: number;
  /** Client HTTP port of node 1 (default basePort + 1000). */
  httpBasePort?: number;
  fsync: boolean;
  secret?: string;
  kernels: KernelKind;
  batchMax?: number;
  pipeline?: number;
}

async function cluster(f: ClusterFlags): Promise<void> {
  const dataRoot = path.resolve(f.data ?? path.join('data', `cluster-${f.protocol}`));
  const peers = Array.from({ length: f.nodes }, (_, i) => `${i + 1}=127.0.0.1:${f.basePort + i}`).join(',');
  const secret = f.secret ?? process.env.PAXLOG_SECRET ?? crypto.randomBytes(16).toString('hex');
  const bin = fileURLToPath(new URL('../../bin/paxlog.js', import.meta.url));
  const httpBase = f.httpBasePort ?? f.basePort + 1000;
  const children: ChildProcess[] = [];
  let stopping = false;
  // No node has a log yet: the cluster is new, and its nodes vote once a majority of them has
  // answered holding nothing (serve --new-cluster). Otherwise a node without
  // a log lost it (or was added) and rejoins without voting, as `serve` does by default.
  const newCluster = Array.from({ length: f.nodes }, (_, i) => path.join(dataRoot, `n${i + 1}`)).every((dir) => !logExists(dir));
  if (f.nodes === 2) process.stderr.write('paxlog cluster: 2 nodes survive no failure (a majority of 2 is 2); 3 survive one\n');
  // A port taken (another cluster) would let this one's readiness check reach the other's nodes.
  for (let i = 0; i < f.nodes; i++) {
    for (const [what, port] of [['peer', f.basePort + i], ['client HTTP', httpBase + i]] as const) {
      if (port > 65535) throw new UsageError(`node ${i + 1}'s ${what} port ${port} is past 65535 (--base-port, --http-base-port)`);
      const taken = await new Promise<string | null>((resolve) => {
        const srv = net.createServer();
        srv.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(null)));
      });
      if (taken !== null) throw new UsageError(`node ${i + 1}'s ${what} port 127.0.0.1:${port} cannot be used (${taken}): is another cluster running?`);
    }
  }
  for (let id = 1; id <= f.nodes; id++) {
    const dir = path.join(dataRoot, `n${id}`);
    makeDirs(dir);
    const logFile = fs.openSync(path.join(dir, 'node.log'), 'a');
    const args = [...serveNodeFlags, bin, 'serve', '--id', String(id), '--peers', peers, '--data', dir, '--protocol', f.protocol,
      '--fsync', f.fsync ? 'on' : 'off', '--kernels', f.kernels, '--http-port', String(httpBase + id - 1)];
    if (newCluster) args.push('--new-cluster');
    if (f.batchMax !== undefined) args.push('--batch-max', String(f.batchMax));
    if (f.pipeline !== undefined) args.push('--pipeline', String(f.pipeline));
    args.push('--stop-with-stdin');
    const child = spawn(process.execPath, args, { stdio: ['pipe', logFile, logFile], env: { ...process.env, PAXLOG_SECRET: secret } });
    child.on('exit', (code, signal) => {
      if (stopping) return;
      process.exitCode = 1;
      const last = fs.readFileSync(path.join(dir, 'node.log'), 'utf8').trimEnd().split('\n').pop() ?? '';
      process.stderr.write(`node ${id} exited (code ${code}, signal ${signal}); see ${path.join(dir, 'node.log')}${last !== '' ? `: ${last}` : ''}\n`);
    });
    children.push(child);
  }
  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    process.stdout.write('\nstopping the cluster...\n');
    // Non-zero if a node exited on its own (its exit handler set it).
    const code = process.exitCode ?? 0;
    let left = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
    if (left === 0) process.exit(code);
    for (const c of children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      c.once('exit', () => {
        if (--left === 0) process.exit(code);
      });
      c.kill('SIGTERM');
    }
    setTimeout(() => {
      for (const c of children) c.kill('SIGKILL');
      process.exit(code);
    }, 5000).unref();
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);

  // Wait until every node answers /status (bounded), then say how to talk to the cluster.
  const deadline = performance.now() + 15_000;
  for (let id = 1; id <= f.nodes; id++) {
    const url = `http://127.0.0.1:${httpBase + id - 1}/status`;
    for (;;) {
      if (stopping) return;
      const gone = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
      if (gone >= 0) {
        process.stderr.write(`node ${gone + 1} did not start; stopping the cluster\n`);
        stopAll();
        return;
      }
      try {
        const r = await fetch(url);
        if (r.ok) break;
      } catch {
        // not up yet
      }
      if (performance.now() > deadline) {
        process.stderr.write(`node ${id} did not come up in 15 s; see ${path.join(dataRoot, `n${id}`, 'node.log')}\n`);
        process.exitCode = 1;
        stopAll();
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const lines = [
    `paxlog cluster: ${f.nodes} nodes, protocol ${f.protocol}, fsync ${f.fsync ? 'on' : 'off'}, data in ${dataRoot}${newCluster ? ' (a new cluster)' : ''}`,
    ...Array.from({ length: f.nodes }, (_, i) =>
      `  node ${i + 1}: http://127.0.0.1:${httpBase + i}  (peer port ${f.basePort + i}, log ${path.join(dataRoot, `n${i + 1}`, 'node.log')})`),
    '',
    'try:',
    `  curl -X PUT --data-binary 'hello' http://127.0.0.1:${httpBase}/kv/greeting`,
    `  curl http://127.0.0.1:${httpBase + 1}/kv/greeting`,
    `  curl -X POST --data-binary 'bye' 'http://127.0.0.1:${httpBase}/kv/greeting?expect=hello'`,
    `  curl -X DELETE http://127.0.0.1:${httpBase}/kv/greeting`,
    `  curl http://127.0.0.1:${httpBase}/status`,
    `  curl http://127.0.0.1:${httpBase}/metrics`,
    '',
    'Ctrl-C stops every node.',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

interface StatusFlags {
  endpoint: string;
  clientToken?: string;
  clientTokenFile?: string;
}

async function status(f: StatusFlags): Promise<void> {
  let url: URL;
  try {
    url = new URL('/status', f.endpoint);
  } catch {
    throw new UsageError(`--endpoint ${f.endpoint} is not a URL (e.g. http://127.0.0.1:8001)`);
  }
  const token = readSecret('client token', f.clientToken, f.clientTokenFile, '--client-token', 'PAXLOG_CLIENT_TOKEN');
  let r: Response;
  try {
    r = await fetch(url, { signal: AbortSignal.timeout(5000), headers: token !== undefined ? { authorization: `Bearer ${token}` } : {} });
  } catch (e) {
    // fetch says only "fetch failed"; the cause (refused, a certificate not trusted, ...) is the news.
    const cause = (e as Error & { cause?: unknown }).cause;
    throw new UsageError(`cannot reach ${url.href}: ${(e as Error).message}${cause instanceof Error ? ` (${cause.message})` : ''}`);
  }
  const body = await r.text();
  if (!r.ok) throw new UsageError(`${url.href} answered ${r.status}: ${body}`);
  process.stdout.write(JSON.stringify(JSON.parse(body), null, 2) + '\n');
}

export function buildProgram(): Command {
  const program = new Command('paxlog')
    .description('A Multi-Paxos replicated log for Node.js (with a Raft baseline)')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride((err) => {
      process.exit(err.exitCode === 0 ? 0 : 2);
    });

  const protocolOption = () => new Option('--protocol <name>', 'the consensus protocol').choices(['multipaxos', 'raft']).default('multipaxos');
  const kernelsOption = () => new Option('--kernels <kind>', 'hot-path kernels: WebAssembly or their TypeScript twin').choices(['wasm', 'js']).default('wasm');
  const fsyncOption = () => new Option('--fsync <on|off>', 'sync every log write before acknowledging it; off is for experiments and loses acknowledged writes on a power cut')
    .argParser(onOff).default(true, 'on');

  program.command('serve')
    .description('run one node')
    .requiredOption('--id <n>', 'this node\'s id (1..65535)', intIn(1, 65535))
    .requiredOption('--peers <list>', 'every node\'s peer address: 1=127.0.0.1:7001,2=127.0.0.1:7002,... (IPv6 in brackets: 1=[::1]:7001); the node listens on its own', peersOption)
    .requiredOption('--data <dir>', 'the node\'s data directory (its LMDB log)')
    .option('--listen-host <addr>', 'bind the peer and client ports on this address (0.0.0.0 or :: for every interface) ' +
      'while peers dial the one in --peers; default: this node\'s own host in --peers', (v: string) => {
      if (!isListenHost(v)) throw new InvalidArgumentError(`"${v}" is not an IP address (no brackets) or a host name`);
      return v;
    })
    .option('--http-port <port>', 'the client HTTP port (default: peer port + 1000)', intIn(1, 65535))
    .addOption(protocolOption())
    .addOption(fsyncOption())
    .option('--batch-max <n>', 'commands per slot at most', intIn(1, 65536))
    .option('--pipeline <n>', 'slots in flight at most', intIn(1, 4096))
    .option('--secret <secret>', 'the cluster secret (also PAXLOG_SECRET; visible in ps: prefer the file or the environment)')
    .option('--secret-file <file>', 'read the cluster secret from this file (one line)')
    .option('--client-token <token>', 'clients must send Authorization: Bearer <token> (also PAXLOG_CLIENT_TOKEN); default: no client auth')
    .option('--client-token-file <file>', 'read the client token from this file (one line)')
    .option('--tls-cert <file>', 'PEM certificate: serve peers and clients over TLS (https, wss) and dial peers with wss; needs --tls-key')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--tls-ca <file>', 'PEM CA that outbound peer links trust (default: the system trust store)')
    .addOption(kernelsOption())
    .option('--tick-ms <ms>', 'milliseconds per protocol tick', intIn(1, 1000), 20)
    .option('--request-timeout-ms <ms>', 'a write with no answer after this long gets 504 (or an election timeout after a leader change, if sooner)', intIn(100, 600_000), 5000)
    .option('--snapshot-slots <n>', 'snapshot the state machine and trim the log below it every n applied slots (0: never)', intIn(0, 1e9), 100_000)
    .option('--rejoin-without-voting', 'if the log is damaged (corrupt or missing state), set it aside in the data directory and ' +
      'rejoin without voting until caught up from the peers, instead of refusing to start', false)
    .option('--new-cluster', 'a new data directory belongs to a new cluster: it votes once a majority of the members say they hold nothing ' +
      '(bootstrap with a minority down); without it a new directory (maybe a wiped one) rejoins without voting until every other member ' +
      'answered once. Never use it to restart a node whose disk was wiped (if a member that answers holds a ballot or a slot, the node rejoins anyway)', false)
    .option('--snapshot-bytes <n>', '... or once the slots applied since the last snapshot hold n bytes (0: never)', intIn(0, 2 ** 40), 64 * 1024 * 1024)
    .option('--preallocate-mib <n>', 'a log file shorter than n MiB (a new one, or one paxlog compact left) is filled with zeros to n MiB first, so that its syncs need not grow it (0: no)', intIn(0, 1024 * 1024), 128)
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info'))
    .option('--fault-loss <p>', 'benchmarks only: drop each outbound peer frame with this probability', (v: string) => {
      const p = Number(v);
      if (v.trim() === '' || !(p >= 0 && p < 1)) throw new InvalidArgumentError(`"${v}" is not a probability in [0, 1)`);
      return p;
    }, 0)
    .option('--fault-delay-ms <ms>', 'benchmarks only: hold each outbound peer message this long', intIn(0, 10_000), 0)
    .option('--fault-seed <n>', 'seed of the injected loss', intIn(0, 2 ** 31), 1)
    .option('--fault-control', 'TESTS ONLY: serve POST /fault/partition (a JSON list of peer ids to cut off, both directions; [] heals) and POST /fault/disk ({"delayMs": N}: a slow disk, N ms more per log transaction; 0 heals)', false)
    .option('--stop-with-stdin', 'stop when standard input ends: a harness keeps a pipe open, so its nodes stop if it dies', false)
    .action((f: ServeFlags) => serve(f));

  program.command('cluster')
    .description('run a local cluster of `serve` processes on 127.0.0.1 until Ctrl-C')
    .addOption(new Option('--nodes <n>', 'how many nodes').argParser(intIn(1, 9)).default(3))
    .addOption(protocolOption())
    .option('--data <dir>', 'data directory (default: data/cluster-<protocol>)')
    .option('--base-port <port>', 'peer port of node 1; node i gets base + i - 1', intIn(1, 65000), 7001)
    .option('--http-base-port <port>', 'client HTTP port of node 1; node i gets it + i - 1 (default: base port + 1000)', intIn(1, 65000))
    .addOption(fsyncOption())
    .option('--secret <secret>', 'the cluster secret (default: PAXLOG_SECRET or a random one)')
    .addOption(kernelsOption())
    .option('--batch-max <n>', 'commands per slot at most', intIn(1, 65536))
    .option('--pipeline <n>', 'slots in flight at most', intIn(1, 4096))
    .action((f: ClusterFlags) => cluster(f));

  program.command('status')
    .description('print a node\'s state')
    .option('--endpoint <url>', 'the node\'s client HTTP endpoint (https: trusts the system CAs and NODE_EXTRA_CA_CERTS)', 'http://127.0.0.1:8001')
    .option('--client-token <token>', 'the node\'s client token, if it has one (also PAXLOG_CLIENT_TOKEN)')
    .option('--client-token-file <file>', 'read the client token from this file (one line)')
    .action((f: StatusFlags) => status(f));

  program.command('compact')
    .description('shrink a stopped node\'s log file to its live pages (the pages log compaction freed are otherwise only reused)')
    .requiredOption('--data <dir>', 'the node\'s data directory')
    .action(async (f: { data: string }) => {
      const { bytesBefore, bytesAfter } = await LogStore.compactDir(f.data, loadKernels('wasm'));
      process.stdout.write(`compacted ${path.join(f.data, 'paxlog.mdb')}: ${bytesBefore} -> ${bytesAfter} bytes\n`);
    });

  program.command('sim')
    .description('run the deterministic simulator over many seeds')
    .option('--seeds <n>', 'how many seeds', intIn(1, 100_000_000), 100)
    .option('--start <s>', 'the first seed', intIn(0, Number.MAX_SAFE_INTEGER), 1)
    .addOption(new Option('--nodes <n>', 'cluster size').choices(['3', '5']).default('3').argParser((v) => {
      if (v !== '3' && v !== '5') throw new InvalidArgumentError(`"${v}" is not 3 or 5`);
      return Number(v);
    }))
    .option('--steps <k>', 'steps per seed', intIn(1, 100_000_000), 2000)
    .addOption(protocolOption())
    .option('--bug <name>', `TEST ONLY: plant a known bug the simulator must catch (repeatable; one of ${plantedBugs.join(', ')})`, bugOption)
    .option('--storage-faults <p>', 'probability a restart finds the node\'s storage damaged (it refuses and stays down; a minority at most)', probability)
    .option('--rejoin-share <p>', 'share of damaged restarts that set the log aside and rejoin without voting instead', probability)
    .option('--wipes <p>', 'probability a restart finds an empty disk and rejoins without voting', probability)
    .option('--pauses <p>', 'per-tick, per-node probability that a node pauses (as under SIGSTOP) for 1 to 4 election timeouts', probability)
    .option('--stops <p>', 'share of crashes that are graceful stops: the node tells its peers it is stopping, and a follower of a stopped leader campaigns at once', probability)
    .option('--new-cluster', 'the cluster bootstraps as serve --new-cluster starts it: every node votes once a majority answered holding nothing', false)
    .action(async (f: {
      seeds: number; start: number; nodes: number; steps: number; protocol: ProtocolName; bug?: Partial<Record<PlantedBug, boolean>>;
      storageFaults?: number; rejoinShare?: number; wipes?: number; pauses?: number; stops?: number; newCluster: boolean;
    }) => {
      // The simulator lives in src/sim/main.ts; load it only when asked.
      const modulePath = './sim/main.js';
      type SimMain = (o: Omit<typeof f, 'bug'> & { bugs?: typeof f.bug }) => Promise<number | void> | number | void;
      const mod = (await import(modulePath)) as { simMain: SimMain };
      const code = await mod.simMain({
        seeds: f.seeds, start: f.start, nodes: Number(f.nodes), steps: f.steps, protocol: f.protocol, bugs: f.bug,
        storageFaults: f.storageFaults, rejoinShare: f.rejoinShare, wipes: f.wipes, pauses: f.pauses, stops: f.stops, newCluster: f.newCluster,
      });
      if (typeof code === 'number') process.exitCode = code;
    });

  program.command('soak')
    .description('kill the leader of a local cluster with SIGKILL every 10 +- 5 s under load, then check the history is linearizable and no acknowledged write was lost')
    .option('--minutes <m>', 'how long the load runs', soakDefaults.minutes)
    .option('--protocol <name>', 'multipaxos or raft', soakDefaults.protocol)
    .option('--nodes <n>', 'cluster size: 3 or 5', soakDefaults.nodes)
    .option('--seed <s>', 'seeds the kill times and the clients\' keys', soakDefaults.seed)
    .option('--base-port <port>', 'peer port of node 1; client HTTP ports start at base + 10', soakDefaults['base-port'])
    .option('--snapshot-slots <n>', 'every node snapshots every n applied slots (small, so that snapshots and their transfers happen under the kills)', soakDefaults['snapshot-slots'])
    .option('--recovery-bound-ms <ms>', 'fail if the p99 time from a kill to the first acknowledged write is over this; the default is two election timeouts', soakDefaults['recovery-bound-ms'])
    .action(async (f: { minutes: string; protocol: string; nodes: string; seed: string; basePort: string; snapshotSlots: string; recoveryBoundMs: string }) => {
      // The soak lives in src/soak/main.ts (which checks these flags); load it only when asked.
      const modulePath = './soak/main.js';
      const mod = (await import(modulePath)) as { soakMain: (argv: string[]) => Promise<number> };
      process.exitCode = await mod.soakMain(['--minutes', f.minutes, '--protocol', f.protocol, '--nodes', f.nodes, '--seed', f.seed, '--base-port', f.basePort,
        '--snapshot-slots', f.snapshotSlots, '--recovery-bound-ms', f.recoveryBoundMs]);
    });

  program.addCommand(benchCommand());

  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (e) {
    // InvalidArgumentError: a bad flag found after parsing (bench's resolveOptions), as bad as one found during it.
    if (e instanceof UsageError || e instanceof InvalidArgumentError) {
      process.stderr.write(`error: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`error: ${(e as Error).message}\n`);
    process.exit(1);
  }
}
