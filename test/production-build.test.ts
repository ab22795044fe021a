/**
 * The production build as an operator runs it: `npm run build`, then `npm run start:prod` (plain node
 * on dist/, no tsx), then the README's "Try it: two participants, one message" walk-through with the
 * `dip` command (bin/dip.js, which runs dist/ when it is there), each step a separate CLI process.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './helpers/dip-harness.js';
import { freePort } from './helpers/dip-process.js';

const root = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string>; bin: Record<string, string>; files: string[] };

interface Running {
  child: ChildProcess;
  out: () => string;
  err: () => string;
}

function start(args: string[], cwd: string, env: NodeJS.ProcessEnv): Running {
  const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { child, out: () => out, err: () => err };
}

describe('production build: npm run build, npm run start:prod, the README walk-through', () => {
  const work = mkdtempSync(join(tmpdir(), 'opendip-prod-'));
  const running: Running[] = [];
  let env: NodeJS.ProcessEnv;

  beforeAll(() => {
    const build = spawnSync('npm', ['run', 'build'], { cwd: root, encoding: 'utf8' });
    expect(build.status, `${build.stdout}\n${build.stderr}`).toBe(0);
  }, 180_000);
  afterAll(() => {
    for (const r of running) r.child.kill('SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  /** `dip …` as a participant types it in its own terminal (`npm link` puts bin/dip.js on the PATH). */
  const dip = (...args: string[]): Promise<{ stdout: string; stderr: string }> =>
    new Promise((done, fail) => {
      execFile(process.execPath, [join(root, pkg.bin['dip']!), ...args], { cwd: work, env }, (error, stdout, stderr) => {
        if (error) fail(new Error(`dip ${args.join(' ')}: ${error.message}\n${stderr}`));
        else done({ stdout, stderr });
      });
    });

  it('serves from dist/ on plain node, and two participants exchange one message as the README shows', async () => {
    expect(pkg.scripts['start:prod']).toBe('node dist/cli/main.js serve');
    // DIP_PORT=0: the OS picks the port, which the DIP prints; the CLI is then pointed at it as DIP_PORT.
    const serverEnv = { ...process.env, DIP_DATA_DIR: join(work, 'data'), DIP_PORT: '0', DIP_HOST: '127.0.0.1', DIP_ADMIN_PORT: '0', DIP_LOG_LEVEL: 'warn' };
    const server = start([join(root, 'dist/cli/main.js'), 'serve'], work, serverEnv);
    running.push(server);
    await waitFor(() => /listening on https:\/\/localhost:\d+/.test(server.err()) || server.child.exitCode !== null, 30_000, 'the DIP to start');
    expect(server.child.exitCode, server.err()).toBeNull();
    const port = /listening on https:\/\/localhost:(\d+)/.exec(server.err())![1]!;
    env = { ...serverEnv, DIP_PORT: port };

    // A data service (sender) and a supplier (recipient): a key and certificate each, then registration.
    await dip('pki', 'issue', '--dip-id', '2000000001', '--out', './sds');
    await dip('participant', 'add', '--dip-id', '2000000001', '--role', 'SDS', '--cert', './sds/cert.pem', '--save', './sds');
    await dip('pki', 'issue', '--dip-id', '1000000001', '--out', './sup');
    const added = await dip('participant', 'add', '--dip-id', '1000000001', '--role', 'SUP', '--cert', './sup/cert.pem', '--save', './sup');
    expect(added.stdout + added.stderr).toMatch(/dip_[\w-]{32}/); // the API key, shown once

    // The supplier's webhook receiver (a third terminal).
    const listenPort = await freePort();
    const listener = start([join(root, pkg.bin['dip']!), 'listen', '--port', String(listenPort)], work, env);
    running.push(listener);
    await waitFor(() => listener.err().includes('listening on') || listener.child.exitCode !== null, 30_000, 'dip listen');
    expect(listener.child.exitCode, listener.err()).toBeNull();

    const hook = await dip('webhook', 'set', '--as', './sup', '--channel', 'IF-021', '--url', `http://127.0.0.1:${listenPort}/dip`);
    expect(hook.stdout).toMatch(/MSG0000 - Success/);

    const example = await dip('example', 'IF-021', '--sender', '2000000001', '--to', '1000000001');
    writeFileSync(join(work, 'if021.json'), example.stdout);
    const sent = await dip('send', '--as', './sds', '--channel', 'IF-021', 'if021.json');
    const transactionId = /"transactionID":\s*"([^"]+)"/.exec(sent.stdout)?.[1];
    // Exit 0 (the helper fails on any other) means the DIP answered 2xx; the body is the 201 StandardResponse.
    expect(sent.stdout, sent.stdout).toMatch(/MSG0000 - Success/);
    expect(transactionId, sent.stdout).toMatch(/^T-IF-021-2000000001-SDS-/);

    // The listener prints the delivered message with D0 filled and the DIP's signature verified.
    await waitFor(() => listener.out().includes(transactionId!), 20_000, 'the delivery to the listener');
    const delivered = JSON.parse(listener.out().trim().split(/\n(?=\{)/)[0]!) as {
      signature: unknown;
      message: { payload: { CommonBlock: { D0: Record<string, unknown> } } };
    };
    expect(delivered.signature).toBe('verified');
    expect(delivered.message.payload.CommonBlock.D0).toMatchObject({ transactionID: transactionId, publicationID: 'PUB-021', replayIndicator: false });
    expect(server.child.exitCode).toBeNull();
  }, 120_000);

  it('packs only the build, the dip command and the documents', () => {
    const pack = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
    expect(pack.status, pack.stderr).toBe(0);
    const files = (JSON.parse(pack.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('dist/catalogue/generated/catalogue-2.1.0.json');
    expect(files).toContain('bin/dip.js');
    expect(files).toContain('LICENSE'); // Apache-2.0, as package.json says
    expect(files.filter((f) => !/^(?:dist\/|bin\/dip\.js$|package\.json$|README\.md$|SECURITY\.md$|CHANGELOG\.md$|LICENSE$)/.test(f))).toEqual([]);
    expect(files.some((f) => f.endsWith('.ts'))).toBe(false);
  });
});

describe('bin/dip.js', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-bin-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs dist/ when present, and says so when src/ is newer', () => {
    mkdirSync(join(dir, 'bin'));
    cpSync(join(root, 'bin/dip.js'), join(dir, 'bin/dip.js'));
    mkdirSync(join(dir, 'dist/cli'), { recursive: true });
    writeFileSync(join(dir, 'dist/cli/main.js'), "process.stdout.write('compiled build\\n');\n");
    const run = () => spawnSync(process.execPath, [join(dir, 'bin/dip.js')], { encoding: 'utf8' });
    expect(run()).toMatchObject({ status: 0, stdout: 'compiled build\n', stderr: '' });

    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'src/app.ts'), 'export {};\n');
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'src/app.ts'), later, later);
    const stale = run();
    expect(stale.stdout).toBe('compiled build\n');
    expect(stale.stderr).toMatch(/dist\/ is older than src\//);
  });
});
