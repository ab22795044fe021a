import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

/** PostgreSQL's server programs (Debian keeps them out of PATH). */
export function postgresBin(program: string): string {
  for (const dir of ['/usr/lib/postgresql/17/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/15/bin']) {
    if (existsSync(join(dir, program))) return join(dir, program);
  }
  return program;
}

/** PostgreSQL refuses to run as root: as root, its programs run as the `postgres` account. */
export function runPostgresProgram(program: string, args: string[]): void {
  const bin = postgresBin(program);
  if (process.getuid?.() === 0) execFileSync('runuser', ['-u', 'postgres', '--', bin, ...args], { stdio: 'pipe' });
  else execFileSync(bin, args, { stdio: 'pipe' });
}

export async function postgresReachable(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

/** Creates the URL's database when it does not exist (connecting to the server's `postgres` database). */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1)) || 'postgres';
  const admin = new URL(url);
  admin.pathname = '/postgres';
  admin.search = '';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  try {
    const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount) return false;
    await c.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
    return true;
  } finally {
    await c.end();
  }
}

/**
 * A PostgreSQL instance of its own in `dir` (initdb on first use, trust authentication on its own
 * loopback port): for `dip cluster` where no server runs, and for failover tests that restart it
 * (the machine's shared service is never restarted).
 */
export class PrivatePostgres {
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** The data directory. */
  get data(): string {
    return join(this.dir, 'data');
  }

  init(): void {
    const data = join(this.dir, 'data');
    if (existsSync(join(data, 'PG_VERSION'))) return;
    mkdirSync(this.dir, { recursive: true });
    if (process.getuid?.() === 0) {
      const { uid, gid } = postgresAccount();
      chownSync(this.dir, uid, gid);
    }
    runPostgresProgram('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
  }

  start(): void {
    const data = join(this.dir, 'data');
    runPostgresProgram('pg_ctl', ['-D', data, '-l', join(this.dir, 'postgres.log'), '-w', '-t', '60', '-o', `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1`, 'start']);
  }

  /** `fast`: a clean shutdown; `immediate`: as a crash (recovery runs at the next start). */
  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    runPostgresProgram('pg_ctl', ['-D', join(this.dir, 'data'), '-m', mode, '-w', 'stop']);
  }
}

export function postgresAccount(): { uid: number; gid: number } {
  const [uid, gid] = execFileSync('id', ['-u', 'postgres']).toString().trim().split('\n').concat(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid: Number(uid), gid: Number(gid) };
}
