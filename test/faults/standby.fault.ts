/**
 * Failover to a real streaming standby (docs/cluster.md, "Failover under load"): a private PostgreSQL
 * primary (initdb on a free port) whose COMMITs wait for a synchronous standby made by
 * `pg_basebackup -R` (`synchronous_standby_names` naming the standby's `application_name`), one DIP node
 * (with one NATS server) reaching the database through a TCP path the test points where the service
 * address would point, senders submitting over mTLS, recipients on webhooks.
 *   1. The path is pointed at the standby, not promoted: the node's writable check finds a server in
 *      recovery and /admin/health says so (pg_is_in_recovery); pointed back at the primary, it recovers.
 *   2. Mid-load the primary's postmaster is killed (SIGKILL), the standby promoted (`pg_ctl promote`) and
 *      the path pointed at it (its old connections cut): every message answered 201 before, during or after
 *      (or whose 201 was lost: the resend is answered MSG1006 with its transaction IDs) is on the promoted
 *      server and reaches each recipient at one position under one transaction ID; 201s and deliveries
 *      resume without an operator, after times printed (measured, not asserted).
 *
 * FAULTS_STANDBY_ASYNC=1 makes the replication asynchronous and stops the standby's WAL receiver before
 * the kill (a standby behind its primary): the check that every 201'd message is on the promoted server
 * then fails, as it must when acknowledged commits are lost (docs/cluster.md: RPO 0 needs a synchronous
 * standby).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminTokenFile } from '../../src/api/admin.js';
import { freePorts } from '../../src/cli/cluster/processes.js';
import { startTopology, type Topology } from '../../src/cli/cluster/topology.js';
import { pausableProxy, type PausableProxy } from '../helpers/pausable-proxy.js';
import { killPostmaster, promote, startPrimaryAndStandby, stopQuietly, waitForReplication, type PrimaryAndStandby } from '../helpers/postgres-standby.js';
import { load, log, market, until, verify, type Dip, type Json } from './load.js';

const DATABASE = 'opendip_standby';
const ASYNC = process.env.FAULTS_STANDBY_ASYNC === '1';

describe('failover to a streaming standby: PostgreSQL primary + synchronous standby, one DIP node', () => {
  const dir = mkdtempSync(join(tmpdir(), 'opendip-standby-'));
  let servers: PrimaryAndStandby | undefined;
  let path: PausableProxy | undefined;
  let topology: Topology | undefined;
  const closers: Array<() => Promise<void>> = [];
  const table: string[] = [];
  const startedAt = Date.now();

  const urlOf = (port: number) => new URL(`postgres://postgres@127.0.0.1:${port}/${DATABASE}`);
  const dip = (): Dip => ({ url: topology!.url, dataDir: topology!.dataDir, postgresUrl: path!.url, closers });
  const health = async (): Promise<{ status: number; body: Json }> => {
    const node = topology!.dipNodes[0]!;
    const token = readFileSync(adminTokenFile(topology!.dataDir), 'utf8').trim();
    const res = await fetch(`http://127.0.0.1:${node.adminPort}/admin/health`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(5_000) });
    return { status: res.status, body: (await res.json()) as Json };
  };

  beforeAll(async () => {
    // PostgreSQL runs as its own account (never root): it must be able to reach its directories.
    chmodSync(dir, 0o755);
    const [primaryPort, standbyPort] = await freePorts(2);
    servers = startPrimaryAndStandby({ dir, primaryPort: primaryPort!, standbyPort: standbyPort!, synchronous: !ASYNC });
    await waitForReplication(servers.primary, servers.standbyName, ASYNC ? 'async' : 'sync');
    path = await pausableProxy(urlOf(primaryPort!));
    topology = await startTopology({
      dir,
      host: '127.0.0.1',
      port: 0,
      postgresUrl: path.url,
      natsNodes: 1,
      natsBinary: process.env.NATS_SERVER ?? 'nats-server',
      dipNodes: 1,
      dipConfig: { environment: 'DEV', warmCatalogue: false, sweepIntervalSeconds: 5, delivery: { retryBaseMs: 100, retryCapMs: 2_000 } },
      log,
    });
    log(`standby: up after ${Date.now() - startedAt} ms: primary :${primaryPort}, standby :${standbyPort} (${ASYNC ? 'asynchronous' : 'synchronous'}), DIP ${topology.url}`);
  }, 300_000);

  afterAll(async () => {
    // Everything started is stopped, and the directory removed, whatever failed.
    for (const c of closers.reverse()) await c().catch(() => {});
    await topology?.stop().catch(() => {});
    await path?.close().catch(() => {});
    stopQuietly(servers?.primary);
    stopQuietly(servers?.standby);
    if (process.env.FAULTS_KEEP_DIR === '1') log(`standby: kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
    if (table.length > 0) log(`\n${['| fault | submitted | 201 | resubmitted | 201 lost (MSG1006) | 201s resume after | delivery resumes after | lost | delivered twice |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|', ...table].join('\n')}`);
    log(`standby: the file took ${((Date.now() - startedAt) / 1000).toFixed(1)} s`);
  }, 120_000);

  it('the path pointed at the standby, not promoted: unavailable, pg_is_in_recovery; pointed back at the primary: ok', async () => {
    // Nothing writes through the store while the node is idle (no participants yet; a sweep only reads),
    // so what finds the standby is the writable check, whose reason names pg_is_in_recovery().
    await until(async () => (await health()).status === 200, 30_000, 'a healthy node');
    const pointedAt = Date.now();
    path!.pointAt(urlOf(servers!.standby.port));
    try {
      let last: { status: number; body: Json } | undefined;
      // Each storage state seen is logged: a wait that times out says what health said instead.
      let seen = '';
      await until(
        async () => {
          last = await health();
          const storage = JSON.stringify(last.body.storage);
          if (storage !== seen) log(`standby: +${Date.now() - pointedAt} ms: ${last.status} ${(seen = storage)}`);
          return last.status === 503 && /pg_is_in_recovery/.test(storage);
        },
        30_000,
        'health naming pg_is_in_recovery',
      );
      log(`standby: unavailable after ${Date.now() - pointedAt} ms: ${JSON.stringify(last!.body.storage)}`);
      expect(last!.body.storage).toMatchObject({ state: 'unavailable', code: '25006' });
    } finally {
      // Pointed back whatever failed: the next case starts on the primary, not on a standby it cannot write.
      path!.pointAt(urlOf(servers!.primary.port));
    }
    const backAt = Date.now();
    await until(async () => (await health()).status === 200, 30_000, 'healthy again on the primary');
    log(`standby: healthy again ${Date.now() - backAt} ms after the path was pointed back at the primary`);
  }, 120_000);

  it('kill -9 of the primary mid-load, the standby promoted and the path pointed at it: nothing answered 201 is lost', async () => {
    const { primary, standby } = servers!;
    const { senders, recipients } = await market(dip(), 'E');
    const l = load('E', senders, recipients);
    await until(() => l.accepted.length >= 40, 60_000, 'load before the fault');
    if (ASYNC) {
      // A standby behind its primary: its WAL receiver stopped (no primary_conninfo), so what the primary
      // commits from now on, without waiting for it, is on the primary only.
      const c = new pg.Client({ connectionString: urlOf(standby.port).toString() });
      await c.connect();
      await c.query("ALTER SYSTEM SET primary_conninfo = ''");
      await c.query('SELECT pg_reload_conf()');
      await c.end();
      const mark = l.accepted.length;
      await until(() => l.accepted.length >= mark + 40, 60_000, 'load while the standby is behind');
    }
    // The kill comes while a COMMIT waits for the standby's confirmation, when one does within 5 s: flushed
    // on the primary, maybe on the standby, unanswered (the sender gets a 503 and resends).
    const watch = new pg.Client({ connectionString: primary.url });
    watch.on('error', () => {}); // the kill ends its session too
    await watch.connect();
    let when = 'with no COMMIT seen waiting for the standby in 5 s';
    for (const from = Date.now(); Date.now() - from < 5_000; ) {
      const { rows } = await watch.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event = 'SyncRep'");
      if (rows[0]!.n > 0) {
        when = `while ${rows[0]!.n} COMMIT(s) waited for the standby`;
        break;
      }
    }
    const faultAt = Date.now();
    const before = l.accepted.length;
    await watch.end();
    const killed = await killPostmaster(primary);
    promote(standby);
    path!.pointAt(urlOf(standby.port));
    const pointedAt = Date.now();
    log(`standby: primary's postmaster ${killed.pid} killed ${when}, after ${before} accepted (${killed.orphans} backends left to kill), standby promoted and the path pointed at it after ${pointedAt - faultAt} ms`);

    await until(() => l.acceptedAt.some((t) => t > pointedAt), 120_000, '201s after the failover');
    const ingestResumeMs = l.acceptedAt.find((t) => t > pointedAt)! - faultAt;
    await until(() => recipients.every((r) => r.calls.some((c) => c.at > pointedAt)), 120_000, 'deliveries after the failover');
    const deliveryResumeMs = Math.max(...recipients.map((r) => r.calls.find((c) => c.at > pointedAt)!.at)) - faultAt;
    const mark = l.accepted.length;
    await until(() => l.accepted.length >= mark + 40, 120_000, 'load after the failover');
    await l.stop();
    const { submitted, retried, lost: resent } = l.stats();

    // Every 201'd message is on the promoted server (read there directly, not through the path).
    const promoted = new pg.Client({ connectionString: urlOf(standby.port).toString() });
    await promoted.connect();
    closers.push(() => promoted.end());
    const { rows } = await promoted.query<{ transaction_id: string }>('SELECT DISTINCT transaction_id FROM messages WHERE transaction_id = ANY($1)', [l.accepted.map((a) => a.transactionId)]);
    const stored = new Set(rows.map((r) => r.transaction_id));
    const missing = l.accepted.filter((a) => !stored.has(a.transactionId));
    table.push(
      `| kill -9 of the primary, standby promoted${ASYNC ? ' (asynchronous, standby behind)' : ''} | ${submitted} | ${l.accepted.length} | ${retried} | ${resent} | ${(ingestResumeMs / 1000).toFixed(1)} s | ${(deliveryResumeMs / 1000).toFixed(1)} s | ${missing.length} | … |`,
    );
    expect(missing.map((a) => `${a.sender} ${a.ref} ${a.transactionId}`), "answered 201 and not on the promoted server").toEqual([]);

    // Each reaches each of its recipients, at one position, under one transaction ID.
    const redelivered = await verify(l.accepted, recipients);
    for (const r of recipients) {
      const positions = new Map<string, Set<number>>();
      for (const c of r.calls) c.messages.forEach((m, i) => {
        const tx = (m as Json).payload.CommonBlock.D0.transactionID as string;
        if (!positions.has(tx)) positions.set(tx, new Set());
        positions.get(tx)!.add(c.firstSeq! + i);
      });
      expect([...positions].filter(([, p]) => p.size > 1).map(([tx, p]) => `${tx} at ${[...p].join(', ')}`), `${r.dipId}: a message at two positions`).toEqual([]);
    }
    table[table.length - 1] = table.at(-1)!.replace('| … |', `| ${redelivered} |`);
    log(`standby: ${l.accepted.length} accepted, all on the promoted server and delivered; 201s resumed ${ingestResumeMs} ms after the kill, delivery ${deliveryResumeMs} ms`);
  }, 400_000);
});
