/**
 * The production build as an operator runs it: `npm run build`, then `npm run start:prod` (plain node
 * on dist/, no tsx), then the README's "Try it: two participants, one message" walk-through: the
 * commands of its sh block as written there, each in a shell of its own, the listener in the background.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
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

/** A command in a terminal of its own (a process group, so that stopping it stops what it started). */
function start([command, ...args]: string[], cwd: string, env: NodeJS.ProcessEnv): Running {
  const child = spawn(command!, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { child, out: () => out, err: () => err };
}

/** The commands of the README's "Try it: two participants, one message" block, comments and blank lines left out. */
function readmeWalkthrough(): string[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const block = /### Try it: two participants, one message[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README.md has no "Try it: two participants, one message" sh block');
  return block[1]!.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
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
    for (const r of running) if (r.child.pid && r.child.exitCode === null) process.kill(-r.child.pid, 'SIGKILL');
    rmSync(work, { recursive: true, force: true });
  });

  it("the README's walk-through, its own commands, against `npm run start:prod`", async () => {
    expect(pkg.scripts['start:prod']).toBe('exec node dist/cli/main.js serve');
    // The commands run "from this folder": a folder of the project's own (package.json, sources and
    // node_modules linked), so ./sds, ./sup, if021.json and ./data land there and not in the checkout.
    for (const entry of ['package.json', 'node_modules', 'src', 'bin', 'dist', 'tsconfig.json']) symlinkSync(join(root, entry), join(work, entry));
    // The README's defaults, changed only where a shared machine needs it: ports the OS picks (the DIP
    // prints its port; the CLI follows DIP_PORT) and the listener's port in place of 9000.
    const serverEnv = { ...process.env, DIP_PORT: '0', DIP_HOST: '127.0.0.1', DIP_ADMIN_PORT: '0', DIP_LOG_LEVEL: 'warn' };
    const server = start(['npm', 'run', 'start:prod'], work, serverEnv);
    running.push(server);
    await waitFor(() => /listening on https:\/\/localhost:\d+/.test(server.err()) || server.child.exitCode !== null, 30_000, 'the DIP to start');
    expect(server.child.exitCode, server.err()).toBeNull();
    const port = /listening on https:\/\/localhost:(\d+)/.exec(server.err())![1]!;
    env = { ...serverEnv, DIP_PORT: port };
    const listenPort = String(await freePort());

    const commands = readmeWalkthrough().map((c) => c.replaceAll('9000', listenPort));
    expect(commands.length).toBeGreaterThanOrEqual(8);
    let listener: Running | undefined;
    let sent = '';
    for (const command of commands) {
      if (/ listen /.test(command)) {
        // Its own terminal: it runs on while the next commands are typed.
        listener = start(['bash', '-c', `exec ${command}`], work, env);
        running.push(listener);
        await waitFor(() => listener!.err().includes('listening on') || listener!.out().includes('listening on') || listener!.child.exitCode !== null, 60_000, 'dip listen');
        expect(listener.child.exitCode, listener.err()).toBeNull();
        continue;
      }
      const r = spawnSync('bash', ['-c', command], { cwd: work, env, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, `${command}\n${r.stdout}\n${r.stderr}`).toBe(0);
      if (/ send /.test(command)) sent = r.stdout;
    }

    // `send` prints the 201 StandardResponse with the new transaction ID; the listener prints the
    // delivered message with D0 filled in and "signature": "verified".
    expect(sent).toMatch(/MSG0000 - Success/);
    const transactionId = /"transactionID":\s*"([^"]+)"/.exec(sent)?.[1];
    expect(transactionId, sent).toMatch(/^T-IF-021-2000000001-SDS-/);
    await waitFor(() => listener!.out().includes(transactionId!), 20_000, 'the delivery to the listener');
    const printed = listener!.out().slice(listener!.out().indexOf('{'));
    const delivered = JSON.parse(printed.trim().split(/\n(?=\{)/)[0]!) as {
      signature: unknown;
      message: { payload: { CommonBlock: { D0: Record<string, unknown> } } };
    };
    expect(delivered.signature).toBe('verified');
    expect(delivered.message.payload.CommonBlock.D0).toMatchObject({ transactionID: transactionId, publicationID: 'PUB-021', replayIndicator: false });
    expect(server.child.exitCode).toBeNull();
  }, 300_000);

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
