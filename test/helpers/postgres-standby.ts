import { execFileSync } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { postgresAccount, PrivatePostgres, runPostgresProgram } from '../../src/cli/cluster/postgres.js';

/**
 * A private PostgreSQL primary with a real streaming standby, each initdb'd/base-backed-up in its own
 * directory on its own port (the machine's shared server is never touched): for the fault tests that
 * fail over. The primary waits for the standby's flush before it answers a COMMIT
 * (`synchronous_standby_names` naming it, the name the standby gives as `application_name` in the
 * `primary_conninfo` that `pg_basebackup -R` writes), unless `synchronous` is false.
 */
export interface PrimaryAndStandby {
  primary: PrivatePostgres;
  standby: PrivatePostgres;
  /** The name the standby connects under (pg_stat_replication.application_name). */
  standbyName: string;
}

export function startPrimaryAndStandby(o: { dir: string; primaryPort: number; standbyPort: number; synchronous?: boolean; standbyName?: string }): PrimaryAndStandby {
  const standbyName = o.standbyName ?? 'standby1';
  const primary = new PrivatePostgres(join(o.dir, 'primary'), o.primaryPort);
  primary.init();
  appendFileSync(
    join(primary.data, 'postgresql.conf'),
    [
      '',
      '# A primary with a streaming standby (test/helpers/postgres-standby.ts)',
      'wal_level = replica',
      'max_wal_senders = 4',
      `synchronous_standby_names = '${o.synchronous === false ? '' : standbyName}'`,
      'synchronous_commit = on',
      '',
    ].join('\n'),
  );
  // Replication connections from loopback, trusted as the rest of this private server is.
  appendFileSync(join(primary.data, 'pg_hba.conf'), '\nhost replication all 127.0.0.1/32 trust\n');
  primary.start();

  const standby = new PrivatePostgres(join(o.dir, 'standby'), o.standbyPort);
  mkdirSync(standby.dir, { recursive: true });
  if (process.getuid?.() === 0) {
    const { uid, gid } = postgresAccount();
    chownSync(standby.dir, uid, gid);
  }
  // -R: standby.signal and primary_conninfo (with this application_name) in postgresql.auto.conf.
  runPostgresProgram('pg_basebackup', ['-D', standby.data, '-d', `host=127.0.0.1 port=${o.primaryPort} user=postgres application_name=${standbyName}`, '-R', '-X', 'stream', '--no-sync', '-c', 'fast']);
  // Once promoted it has no standby of its own: it must not wait for one (a failover manager rewrites
  // synchronous_standby_names the same way). The later line wins.
  appendFileSync(join(standby.data, 'postgresql.conf'), "\nsynchronous_standby_names = ''\n");
  standby.start();
  return { primary, standby, standbyName };
}

/** Waits until the primary streams to the standby in the given state ('sync', 'async'). */
export async function waitForReplication(primary: PrivatePostgres, standbyName: string, state: 'sync' | 'async', timeoutMs = 30_000): Promise<void> {
  const c = new pg.Client({ connectionString: primary.url });
  await c.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { rows } = await c.query<{ sync_state: string }>(`SELECT sync_state FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'`, [standbyName]);
      if (rows[0]?.sync_state === state) return;
      if (Date.now() > deadline) throw new Error(`the standby ${standbyName} is not streaming (${state}) after ${timeoutMs} ms: ${JSON.stringify(rows)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await c.end();
  }
}

/** The postmaster's pid (the first line of postmaster.pid), or null when it is not running. */
export function postmasterPid(server: PrivatePostgres): number | null {
  const file = join(server.data, 'postmaster.pid');
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
  return Number.isInteger(pid) && alive(pid) ? pid : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)])
      .toString()
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}

/**
 * kill -9 of the postmaster, as a crash of the server's host would end it. Its backends notice the
 * postmaster's death and exit on their own (a session waiting for its synchronous standby among them,
 * without answering its COMMIT); any still there after `graceMs` are killed too, by pid, so that nothing
 * of the old primary outlives the test.
 */
export async function killPostmaster(server: PrivatePostgres, graceMs = 10_000): Promise<{ pid: number; orphans: number }> {
  const pid = postmasterPid(server);
  if (pid === null) throw new Error(`no postmaster running in ${server.data}`);
  const children = childrenOf(pid);
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + graceMs;
  while (children.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const orphans = children.filter(alive);
  for (const c of orphans) process.kill(c, 'SIGKILL');
  return { pid, orphans: orphans.length };
}

/** `pg_ctl promote`, waiting until the server takes writes. */
export function promote(server: PrivatePostgres): void {
  runPostgresProgram('pg_ctl', ['-D', server.data, '-w', '-t', '60', 'promote']);
}

/** Stops the server if it runs, and whatever of it a kill -9 left behind; never throws. */
export function stopQuietly(server: PrivatePostgres | undefined): void {
  if (!server) return;
  const pid = postmasterPid(server);
  if (pid === null) return;
  const children = childrenOf(pid);
  try {
    server.stop('immediate');
  } catch {
    process.kill(pid, 'SIGKILL');
  }
  for (const c of children.filter(alive)) process.kill(c, 'SIGKILL');
}
