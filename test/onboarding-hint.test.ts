import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { onboardingHint } from '../src/cli/onboarding-hint.js';
import { loadConfig } from '../src/config.js';

/** The environment a new terminal gets from the hint's `export` line, run by a real shell (none: nothing but the defaults). */
function exported(hint: string): Record<string, string> {
  const line = hint.split('\n').find((l) => l.trim().startsWith('export '));
  if (!line) return {};
  const env = execFileSync('bash', ['-c', `${line.trim()}\nenv -0`], { env: {}, encoding: 'utf8' });
  return Object.fromEntries(
    env
      .split('\0')
      .filter((kv) => kv.startsWith('DIP_'))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
}

describe("dip serve's onboarding hint", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const scratch = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'hint-'));
    dirs.push(d);
    return d;
  };

  it('lets another terminal reach a DIP started on a scratch data folder and other ports', () => {
    // Without DIP_DATA_DIR, `participant add` in a new terminal registered into a fresh ./data that the
    // running DIP never read, and the participant's calls were then refused (seen by a newcomer).
    const dataDir = scratch();
    const serverEnv = { DIP_DATA_DIR: dataDir, DIP_PORT: '0', DIP_ADMIN_PORT: '0' };
    const config = loadConfig(serverEnv);
    const hint = onboardingHint(config, { port: 41443, adminPort: 41444, pkiDir: join(dataDir, 'pki'), pkiCreated: true }, serverEnv);
    expect(hint).toContain('participant add');
    // The bound ports, not the 0 asked for: a client cannot call port 0.
    const other = loadConfig(exported(hint));
    expect(other.dataDir).toBe(config.dataDir);
    expect(other.port).toBe(41443);
    expect(other.adminPort).toBe(41444);
  });

  it('exports a data folder whose path holds a space or a quote as one shell word', () => {
    const dataDir = join(scratch(), "my data's folder");
    mkdirSync(dataDir);
    const serverEnv = { DIP_DATA_DIR: dataDir };
    const config = loadConfig(serverEnv);
    const env = exported(onboardingHint(config, { port: 8443, adminPort: 8444, pkiDir: join(dataDir, 'pki'), pkiCreated: true }, serverEnv));
    expect(env.DIP_DATA_DIR).toBe(dataDir);
  });

  it('passes on a configuration file named by DIP_CONFIG', () => {
    const dir = scratch();
    const file = join(dir, 'dip.yaml');
    writeFileSync(file, `dataDir: ${join(dir, 'data')}\n`);
    const serverEnv = { DIP_CONFIG: file, DIP_DATA_DIR: join(dir, 'data') };
    const config = loadConfig(serverEnv);
    const env = exported(onboardingHint(config, { port: 8443, adminPort: 8444, pkiDir: join(dir, 'data', 'pki'), pkiCreated: false }, serverEnv));
    expect(env.DIP_CONFIG).toBe(file);
    expect(loadConfig(env).dataDir).toBe(config.dataDir);
  });

  it('adds nothing to export when every setting is the default', () => {
    const config = loadConfig({});
    const hint = onboardingHint(config, { port: 8443, adminPort: 8444, pkiDir: join(config.dataDir, 'pki'), pkiCreated: false }, {});
    expect(exported(hint)).toEqual({});
    expect(hint).toContain('npm run dip -- pki issue --dip-id 1000000001 --out ./sup');
  });
});
