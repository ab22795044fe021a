import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import { SqliteOnboardingApplications } from '../src/adapters/sqlite/onboarding.js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

describe('the data folder and its databases are private to the DIP (security review: they were 755 and 644)', () => {
  let t: TestDip | undefined;
  afterAll(async () => {
    await t?.close();
  });

  it('makes the data folder 0700 and every database file, with its WAL and shared memory, 0600, whatever the umask', async () => {
    // A folder the DIP makes itself (not mkdtemp's, already 0700), under the usual umask.
    const dataDir = join(mkdtempSync(join(tmpdir(), 'opendip-perms-')), 'data');
    const umask = process.umask(0o022);
    try {
      t = await startTestDip({ dataDir, onboarding: { ...DEFAULTS.onboarding, enabled: true } });
    } finally {
      process.umask(umask);
    }
    expect(mode(dataDir)).toBe('700');
    const databases = readdirSync(dataDir).filter((f) => /\.db(?:-wal|-shm)?$/.test(f));
    // The store, the activity log and the onboarding applications, each with its WAL and shared memory.
    for (const f of ['dip.db', 'dip.db-wal', 'dip.db-shm', 'activity.db', 'activity.db-wal', 'activity.db-shm', 'onboarding.db']) expect(databases).toContain(f);
    expect(Object.fromEntries(databases.map((f) => [f, mode(join(dataDir, f))]))).toEqual(Object.fromEntries(databases.map((f) => [f, '600'])));
  });

  it('makes the folder a store opens first 0700, and tightens database files an earlier release made 0644', async () => {
    const umask = process.umask(0o022);
    try {
      // Whichever store opens first makes the folder (`dip serve` opened dip.db first: the folder was 755).
      const fresh = join(mkdtempSync(join(tmpdir(), 'opendip-perms-')), 'data');
      const onboarding = new SqliteOnboardingApplications(join(fresh, 'onboarding.db'));
      expect([mode(fresh), mode(join(fresh, 'onboarding.db'))]).toEqual(['700', '600']);
      await onboarding.close();
      // A log made before, readable by everyone, is made private when next opened.
      const old = mkdtempSync(join(tmpdir(), 'opendip-perms-'));
      writeFileSync(join(old, 'activity.db'), '');
      chmodSync(join(old, 'activity.db'), 0o644);
      const log = new SqliteActivityLog(join(old, 'activity.db'));
      expect([mode(join(old, 'activity.db')), mode(join(old, 'activity.db-wal'))]).toEqual(['600', '600']);
      await log.close();
    } finally {
      process.umask(umask);
    }
  });

  // An fsGroup volume, or the CLI run as another user than the server's: a database file the DIP's user
  // may write but does not own cannot be chmod-ed (EPERM), and that stopped the start. It is warned about.
  it.skipIf(process.getuid?.() !== 0)('warns, and goes on, when a database file belongs to another user', () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-perms-'));
    chmodSync(dir, 0o777);
    const file = join(dir, 'dip.db');
    writeFileSync(file, '');
    chmodSync(file, 0o666); // root's, writable by the user below (as an fsGroup's group-writable file)
    const module = resolve('src/adapters/sqlite/private-file.ts');
    const script = `import(${JSON.stringify(module)}).then((m) => { m.openPrivateDatabase(${JSON.stringify(file)}).close(); console.log('readied'); })`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8', timeout: 30_000 });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('readied');
    expect(run.stderr).toContain(`${file} is not the DIP's user's: its mode (666) could not be made 600`);
    expect(mode(file)).toBe('666');
  });
});
