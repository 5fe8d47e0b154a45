// The package's published types (package.json "types", dist/src/*.d.ts) compile in a strict
// TypeScript application that loads no DOM types and checks library files (skipLibCheck false):
// a declaration that leaned on the DOM's globals (WebAssembly, `name`) would fail there.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

test('an application compiles against paxlog\'s published types with lib ES2022 alone and skipLibCheck false', { timeout: 120_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paxlog-consumer-'));
  try {
    fs.mkdirSync(path.join(dir, 'node_modules', '@types'), { recursive: true });
    fs.symlinkSync(root, path.join(dir, 'node_modules', 'paxlog'));
    fs.symlinkSync(path.join(root, 'node_modules', '@types', 'node'), path.join(dir, 'node_modules', '@types', 'node'));
    fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: {
      target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, lib: ['ES2022'], types: ['node'],
      skipLibCheck: false, noEmit: true,
    }, include: ['app.ts'] }));
    fs.writeFileSync(path.join(dir, 'app.ts'), `
      import { createNode, FatalError, PaxlogClient, RequestError, startKvServer, type StateMachine } from 'paxlog';
      class Counter implements StateMachine<number> {
        n = 0;
        apply(): number { return ++this.n; }
        snapshot(): Uint8Array { return new Uint8Array(0); }
        restore(): void {}
      }
      export async function main(): Promise<void> {
        const node = await createNode({ id: 1, peers: '1=127.0.0.1:7001', dataDir: 'd', stateMachine: new Counter(), listenHost: '0.0.0.0' });
        node.on('fatal', (e: FatalError) => console.log(e.message, e.details));
        node.on('applied', (a) => console.log(a.slot, a.result + 1));
        await node.whenLeader();
        const slot: number = await node.propose(new Uint8Array(1)).catch((e: RequestError) => (e.surelyNotProposed ? -1 : -2));
        console.log(slot);
        const server = await startKvServer({ id: 1, peers: '1=127.0.0.1:7002', dataDir: 'e' });
        const client = await PaxlogClient.connect('ws://127.0.0.1:' + server.httpPort + '/client');
        const { status } = await client.get('k', 'lease');
        console.log(status);
        client.close();
        await server.stop();
        await node.stop();
      }
    `);
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    let out = '';
    try {
      execFileSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', cwd: dir });
    } catch (e) {
      out = `${(e as { stdout?: string }).stdout ?? ''}${(e as { stderr?: string }).stderr ?? ''}`;
    }
    assert.equal(out, '', 'the application did not compile');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
