import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Agent, request } from 'undici';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activityLogFile } from '../src/adapters/backend.js';
import { DEFAULTS } from '../src/config.js';
import { PgActivityLog } from '../src/adapters/postgres/activity-log.js';
import { SqliteActivityLog } from '../src/adapters/sqlite/activity-log.js';
import Fastify from 'fastify';
import { activityRoutes } from '../src/api/admin-activity.js';
import { activityHash, chainEntries, GENESIS_HASH, keptUrl, loggedUrl, maskedBody, maskedUrl, MAX_URL_CHARS, type ActivityEntry, type ChainedActivity } from '../src/domain/activity.js';
import { ActivityRecorder, COUNTED_SUMMARY_MS, verifyActivityLog } from '../src/pipeline/activity-recorder.js';
import { FakeClock } from './helpers/clocks.js';
import { systemClock } from '../src/adapters/clock.js';
import type { ActivityLogStore } from '../src/ports/activity-log.js';
import { activityLogContract } from './contract/activity-log.contract.js';
import { adminApi } from './helpers/admin.js';
import { quietLogger, startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';
import { buildIF021 } from '../src/sim/messages.js';
import { cliRuns } from './helpers/cli-budget.js';

activityLogContract('sqlite', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-activity-')), 'activity.db');
  const store = new SqliteActivityLog(file);
  const raw = new Database(file);
  // An attacker who can also change the schema lifts a guard first.
  const unguarded = (trigger: string, sql: string) => {
    raw.exec(`DROP TRIGGER IF EXISTS ${trigger}`);
    return raw.prepare<unknown[]>(sql);
  };
  return {
    store,
    changeBody: async (chain, seq, body) => void unguarded('activity_log_no_update', 'UPDATE activity_log SET response_body = ? WHERE chain = ? AND seq = ?').run(body, chain, seq),
    deleteRecord: async (chain, seq) => void unguarded('activity_log_no_delete', 'DELETE FROM activity_log WHERE chain = ? AND seq = ?').run(chain, seq),
    purges: {
      'DELETE of one record': async () => raw.prepare("DELETE FROM activity_log WHERE chain = 'node-a' AND seq = 2").run(),
      // Without a trigger SQLite empties a table whole here, without visiting its rows (its truncate optimisation).
      'DELETE of all': async () => raw.exec('DELETE FROM activity_log'),
      'DELETE of a chain (its recorded head)': async () => raw.exec("DELETE FROM activity_chains WHERE chain = 'node-a'"),
    },
    close: async () => {
      raw.close();
      await store.close();
    },
  };
});

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase('opendip_activity');
});
afterAll(async () => {
  await database?.drop();
});

activityLogContract('postgres', async () => {
  const url = await database.freshSchema();
  const store = await PgActivityLog.open(url);
  const raw = new pg.Client({ connectionString: url });
  await raw.connect();
  // The DIP's role owns the table, so it may disable a guard: the chain, not the trigger, shows what it did then.
  const unguarded = async (trigger: string, sql: string, values: unknown[]) => {
    await raw.query(`ALTER TABLE activity_log DISABLE TRIGGER ${trigger}`);
    await raw.query(sql, values);
  };
  return {
    store,
    changeBody: (chain, seq, body) => unguarded('activity_log_no_update', 'UPDATE activity_log SET response_body = $1 WHERE chain = $2 AND seq = $3', [body, chain, seq]),
    deleteRecord: (chain, seq) => unguarded('activity_log_no_delete', 'DELETE FROM activity_log WHERE chain = $1 AND seq = $2', [chain, seq]),
    purges: {
      'DELETE of one record': () => raw.query("DELETE FROM activity_log WHERE chain = 'node-a' AND seq = 2"),
      'DELETE of all': () => raw.query('DELETE FROM activity_log'),
      // Statement-level: a TRUNCATE fires no row trigger.
      TRUNCATE: () => raw.query('TRUNCATE activity_log'),
      'DELETE of a chain (its recorded head)': () => raw.query("DELETE FROM activity_chains WHERE chain = 'node-a'"),
      'TRUNCATE of the chains': () => raw.query('TRUNCATE activity_chains'),
    },
    close: async () => {
      await raw.end();
      await store.close();
    },
  };
});

describe('an activity log made before its delete guards', () => {
  const guarded = /the activity log is append-only: its records cannot be deleted/;
  /** Opens a chain of one record (a guard on rows is tried only on a row). */
  const oneRecord = async (store: ActivityLogStore) => {
    await store.openChain('node-a', 1);
    const entry: ActivityEntry = { requestId: 'r1', at: 1, listener: 'participant', caller: 'A', remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: null };
    await store.append(chainEntries('node-a', { seq: 0, hash: GENESIS_HASH }, [entry]).records);
  };

  it('SQLite: gets them when next opened', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-activity-')), 'activity.db');
    const before = new SqliteActivityLog(file);
    await oneRecord(before);
    await before.close();
    const raw = new Database(file);
    raw.exec('DROP TRIGGER IF EXISTS activity_log_no_delete; DROP TRIGGER IF EXISTS activity_chains_no_delete');
    const store = new SqliteActivityLog(file);
    try {
      expect(() => raw.exec('DELETE FROM activity_log')).toThrow(guarded);
      expect(() => raw.exec('DELETE FROM activity_chains')).toThrow(guarded);
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('PostgreSQL: gets them from the changed schema when next opened', async () => {
    const url = await database.freshSchema();
    const before = await PgActivityLog.open(url);
    await oneRecord(before);
    await before.close();
    const raw = new pg.Client({ connectionString: url });
    await raw.connect();
    try {
      // As a database of the version before was left: no guards but the UPDATE one, and that version's digest.
      for (const t of ['activity_log_no_delete ON activity_log', 'activity_log_no_truncate ON activity_log', 'activity_chains_no_delete ON activity_chains', 'activity_chains_no_truncate ON activity_chains']) await raw.query(`DROP TRIGGER IF EXISTS ${t}`);
      await raw.query("UPDATE dip_schema_digests SET digest = 'the version before' WHERE schema_name = current_schema()");
      const store = await PgActivityLog.open(url);
      await expect(raw.query('DELETE FROM activity_log')).rejects.toThrow(guarded);
      await expect(raw.query('TRUNCATE activity_log')).rejects.toThrow(guarded);
      await expect(raw.query('TRUNCATE activity_chains')).rejects.toThrow(guarded);
      await store.close();
    } finally {
      await raw.end();
    }
  });
});

describe('masking personal data in answers', () => {
  it('masks MPANs anywhere, and names and addresses by key, and keeps the rest', () => {
    const body = JSON.stringify({ transactionID: 'T1', CustomBlock: { B900: 'x' }, data: { MPANCore: '1200000000009', customerName: 'Ada', supplyAddress: { line1: '1 Road' }, note: 'see 1200000000009', ts: '20261201120000123' } });
    const masked = JSON.parse(maskedBody(body, 10_000)!) as unknown;
    expect(masked).toEqual({ transactionID: 'T1', data: { MPANCore: '[masked]', customerName: '[masked]', supplyAddress: { line1: '[masked]' }, note: 'see [masked]', ts: '20261201120000123' }, CustomBlock: { B900: '[masked]' } });
    expect(maskedBody('x'.repeat(50), 10)).toBe('[50 bytes, not kept]');
    // In a request's path and query too: MPANs anywhere, a parameter with a personal name whole.
    expect(maskedUrl('/observability/reports/mpan/1200000000009?from=20261201120000123')).toBe('/observability/reports/mpan/[masked]?from=20261201120000123');
    expect(maskedUrl('/dip-channel/REP-003/publications/p1/content?where=MPAN:1200000000009&columns=rate&postcode=SW1A%201AA')).toBe(
      '/dip-channel/REP-003/publications/p1/content?where=MPAN:[masked]&columns=rate&postcode=[masked]',
    );
    // Credentials, by key, whatever their case.
    expect(JSON.parse(maskedBody(JSON.stringify({ token: 'dipsess_x', password: 'p', totpSecret: 's', totpUri: 'otpauth://totp/a', apiKey: 'dip_k', operator: { role: 'admin' } }), 10_000)!)).toEqual({
      token: '[masked]', password: '[masked]', totpSecret: '[masked]', totpUri: '[masked]', apiKey: '[masked]', operator: { role: 'admin' },
    });
  });

  // secrev3 M2: `email` was masked but a webhook's URL kept whole, its ?code= key with it.
  it('keeps URLs under URL keys in their shown form (user, password and query values gone), nested or not', () => {
    const answer = { id: 's1', webhookUrl: 'https://u:pw@hooks.example.com/a?code=s3cret&x=1', nested: { callbackURL: 'https://h.example/b?key=k3y' }, note: 'a url' };
    const kept = maskedBody(JSON.stringify(answer), 10_000)!;
    expect(kept).not.toMatch(/s3cret|k3y|pw/);
    expect(JSON.parse(kept)).toEqual({ id: 's1', webhookUrl: 'https://hooks.example.com/a?code=…&x=…', nested: { callbackURL: 'https://h.example/b?key=…' }, note: 'a url' });
  });

  it("keeps the name of a thing (a channel's, a schema's, an operator account's `name`) and masks people's names and contacts by their keys", () => {
    const channel = { channel: 'IF-021', name: 'Consents notification', publication: { name: 'IF-021', fileName: 'if-021.json' } };
    expect(JSON.parse(maskedBody(JSON.stringify(channel), 10_000)!)).toEqual(channel);
    const people = { username: 'pat', displayName: 'Pat Smith', contactName: 'Jo', firstName: 'A', lastName: 'B', fullName: 'A B', surname: 'B', contact: { name: 'Jo', role: 'ops' }, customer: { name: 'Ada' } };
    expect(JSON.parse(maskedBody(JSON.stringify(people), 10_000)!)).toEqual({
      username: '[masked]', displayName: '[masked]', contactName: '[masked]', firstName: '[masked]', lastName: '[masked]', fullName: '[masked]', surname: '[masked]', contact: { name: '[masked]', role: '[masked]' }, customer: { name: '[masked]' },
    });
    expect(maskedUrl('/admin/channels?name=IF-021&displayName=Pat')).toBe('/admin/channels?name=IF-021&displayName=[masked]');
  });

  it('masks what an escape hides from the text (a name or an MPAN written with \\u), and keeps an answer with nothing personal as it parses', () => {
    // The answer with nothing to mask is stored as its parse serialises it, as before (whitespace gone).
    expect(maskedBody('{ "transactionID": "T-1", "message": "MSG0000 - Success", "n": 1.50 }', 10_000)).toBe('{"transactionID":"T-1","message":"MSG0000 - Success","n":1.5}');
    // Decoded, these are a personal key and an MPAN; the text as sent shows neither.
    expect(JSON.parse(maskedBody('{"displayN\\u0061me":"Ada","note":"\\u0031200000000009"}', 10_000)!)).toEqual({ displayName: '[masked]', note: '[masked]' });
  });
});

// Security review (LOW): the participant listener logged a failed request's URL whole, and a report's or a
// publication's `?where=MPAN:…` filter carries personal data; the portal logged the path alone. Every
// listener's error and cut-off lines now log one form, loggedUrl.
describe('a request URL in a log line', () => {
  it('keeps the path (MPANs masked) and the query names, every query value hidden, cut as the activity log cuts', () => {
    expect(loggedUrl('/dip-channel/REP-003/publications/p1/content?where=MPAN:1200000000009&columns=rate&flag')).toBe('/dip-channel/REP-003/publications/p1/content?where=…&columns=…&…');
    expect(loggedUrl('/observability/reports/mpan/1200000000009?from=2026-12-01&where=name:Ada%20Smith')).toBe('/observability/reports/mpan/[masked]?from=…&where=…');
    expect(loggedUrl('/dip-channel/IF-021')).toBe('/dip-channel/IF-021');
    expect(loggedUrl(`/x?q=${'a'.repeat(15_000)}`)).toBe('/x?q=…');
    expect(loggedUrl(`/${'p'.repeat(3000)}`).endsWith('…[cut: 3001 characters]')).toBe(true);
  });
});

describe('what one request can write to the activity log', () => {
  it('keeps at most MAX_URL_CHARS of a URL, saying how long it was, and masks before it cuts (no MPAN half kept)', () => {
    // The review's flood: GET /x?q=<15,000 a> was kept whole, 15,011 characters a request.
    const long = `/x?q=${'a'.repeat(15_000)}`;
    const kept = keptUrl(long);
    expect(kept.length).toBeLessThanOrEqual(MAX_URL_CHARS + 40);
    expect(kept.startsWith('/x?q=aaaa')).toBe(true);
    expect(kept.endsWith('…[cut: 15005 characters]')).toBe(true);
    // An MPAN across the cut is masked whole first, so no 12 of its 13 digits survive the cut.
    const mpanAtCut = `/x?q=${'a'.repeat(MAX_URL_CHARS - 10)}1200000000009&more=${'b'.repeat(100)}`;
    expect(keptUrl(mpanAtCut)).not.toMatch(/\d{5}/);
    // A URL within the bound is only masked.
    expect(keptUrl('/observability/reports/mpan/1200000000009')).toBe('/observability/reports/mpan/[masked]');
  });
});

/** A recorder on a fresh SQLite activity log, seen through `faults` (methods replacing the real store's). */
async function faultyRecorder(faults: (real: SqliteActivityLog) => Partial<ActivityLogStore>) {
  const real = new SqliteActivityLog(join(mkdtempSync(join(tmpdir(), 'opendip-activity-')), 'activity.db'));
  const store: ActivityLogStore = Object.assign(Object.create(real) as ActivityLogStore, faults(real));
  const settings = { label: 'test', flushIntervalMs: 3_600_000, maxBatch: 10, maxBodyBytes: 1000, maxPending: 1000 };
  const recorder = new ActivityRecorder(store, settings, systemClock, quietLogger);
  await recorder.start();
  const record = (i: number) => recorder.record({ requestId: `r${i}`, at: i, listener: 'participant', caller: 'A', remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, rawBody: null });
  return { real, recorder, record };
}

/**
 * A batch whose COMMIT went through with its answer lost, on each backend's real store: the write
 * commits and then fails, and the look at the chain's head that would have told fails too (the store
 * still unreachable). Before, the next flush rebuilt the batch from a backlog grown meanwhile: its first
 * records were duplicates of those that had committed (PostgreSQL: `duplicate key … activity_log_pkey`
 * about ten times a second per node), its head was never the stored one, and the log stayed stuck.
 */
const inDoubtStores: Array<[string, () => Promise<ActivityLogStore>]> = [
  ['sqlite', async () => new SqliteActivityLog(join(mkdtempSync(join(tmpdir(), 'opendip-activity-')), 'activity.db'))],
  ['postgres', async () => PgActivityLog.open(await database.freshSchema())],
];
describe.each(inDoubtStores)('the activity recorder on %s, after a batch committed with its answer lost', (_name, openStore) => {
  it('tries the same batch again, moves on once the store says it is there, and writes what came meanwhile', async () => {
    const real = await openStore();
    let cut = true;
    let blind = false;
    const store: ActivityLogStore = Object.assign(Object.create(real) as ActivityLogStore, {
      append: async (records: readonly ChainedActivity[]) => {
        await real.append(records);
        if (cut) {
          cut = false;
          blind = true;
          throw new Error('PostgreSQL: the answer to COMMIT was lost (Query read timeout); whether the transaction committed is not known');
        }
      },
      chains: async () => {
        if (blind) throw new Error('connect ECONNREFUSED');
        return real.chains();
      },
    });
    const settings = { label: 'test', flushIntervalMs: 3_600_000, maxBatch: 10, maxBodyBytes: 1000, maxPending: 1000 };
    const recorder = new ActivityRecorder(store, settings, systemClock, quietLogger);
    await recorder.start();
    const record = (i: number) => recorder.record({ requestId: `r${i}`, at: i, listener: 'participant', caller: 'A', remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, rawBody: null });
    record(1);
    record(2);
    await recorder.flush();
    expect(recorder.status()).toMatchObject({ waiting: 2, failing: { reason: expect.stringContaining('COMMIT was lost') } });
    // Requests served meanwhile: the backlog grows past the batch in doubt.
    record(3);
    record(4);
    blind = false;
    await recorder.flush();
    expect(recorder.status()).toMatchObject({ waiting: 0, failing: null });
    await recorder.stop();
    expect((await real.chainRecords(recorder.chain, 0, 10)).map((r) => r.requestId)).toEqual(['r1', 'r2', 'r3', 'r4']);
    expect(await verifyActivityLog(real)).toMatchObject({ ok: true, records: 4 });
    await real.close();
  });
});

describe('the activity recorder', () => {
  it('moves on when a write committed but its answer was lost (it was retried as a duplicate for ever)', async () => {
    let cut = true;
    // Commits, then loses the answer once: what a connection cut after COMMIT looks like to the writer.
    const { real, recorder, record } = await faultyRecorder((real) => ({
      append: async (records: readonly ChainedActivity[]) => {
        await real.append(records);
        if (cut) {
          cut = false;
          throw new Error('Connection terminated unexpectedly');
        }
      },
    }));
    record(1);
    record(2);
    await recorder.flush();
    record(3);
    await recorder.flush();
    await recorder.stop();
    expect((await real.chainRecords(recorder.chain, 0, 10)).map((r) => r.requestId)).toEqual(['r1', 'r2', 'r3']);
    expect(await verifyActivityLog(real)).toMatchObject({ ok: true, records: 3 });
    await real.close();
  });

  it('starts when the store cannot open its chain (a full disk at start), and writes what waited once it can', async () => {
    // A kill -9 on a full disk, then `dip serve` again: the chain's first row was refused with SQLITE_FULL,
    // and start() threw, so the DIP could not start (no request answered) until space returned.
    let full = true;
    let lostAnswer = true;
    const { real, recorder, record } = await faultyRecorder((real) => ({
      openChain: async (chain: string, at: number) => {
        if (full) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
        await real.openChain(chain, at);
        // Written, but its answer lost: opening it again would be refused as a duplicate for ever.
        if (lostAnswer) {
          lostAnswer = false;
          throw new Error('disk I/O error');
        }
      },
    }));
    record(1);
    await recorder.flush();
    expect(await real.chains()).toEqual([]);
    full = false;
    record(2);
    await recorder.flush();
    record(3);
    await recorder.stop();
    expect((await real.chainRecords(recorder.chain, 0, 10)).map((r) => r.requestId)).toEqual(['r1', 'r2', 'r3']);
    expect(await verifyActivityLog(real)).toMatchObject({ ok: true, chains: 1, records: 3 });
    await real.close();
  });
});

describe('requests refused by a per-address request rate', () => {
  it('are counted, not kept one by one: one record a minute says how many, when, on which listener and from which addresses', async () => {
    const real = new SqliteActivityLog(join(mkdtempSync(join(tmpdir(), 'opendip-activity-')), 'activity.db'));
    const clock = new FakeClock();
    const recorder = new ActivityRecorder(real, { label: 'test', flushIntervalMs: 200, maxBatch: 100, maxBodyBytes: 1000, maxPending: 1000 }, clock, quietLogger);
    await recorder.start();
    const at = clock.now();
    for (let i = 0; i < 5_000; i++) recorder.counted({ requestId: `t${i}`, at: at + i, listener: 'portal', caller: null, remote: i % 5 === 0 ? '192.0.2.9' : '192.0.2.7', method: 'GET', url: `/x?q=${'a'.repeat(15_000)}`, status: 429, durationMs: 0, rawBody: null });
    // A served request in between is kept in full, as every served request is.
    recorder.record({ requestId: 'served', at: at + 1, listener: 'portal', caller: null, remote: '192.0.2.7', method: 'GET', url: '/portal/sign-in', status: 200, durationMs: 1, rawBody: null });
    await clock.advance(1_000);
    expect((await real.chainRecords(recorder.chain, 0, 100)).map((r) => r.requestId)).toEqual(['served']);
    await clock.advance(COUNTED_SUMMARY_MS);
    const rows = await real.chainRecords(recorder.chain, 0, 100);
    expect(rows.map((r) => [r.requestId === 'served' ? 'served' : r.method, r.listener, r.status])).toEqual([
      ['served', 'portal', 200],
      ['RATE-LIMITED', 'portal', 429],
    ]);
    expect(JSON.parse(rows[1]!.responseBody!)).toMatchObject({ counted: 5_000, from: at, to: at + 4_999, sources: { '192.0.2.7': 4_000, '192.0.2.9': 1_000 } });
    expect(rows[1]!.url).toBe('');
    expect(await verifyActivityLog(real)).toMatchObject({ ok: true, records: 2 });
    await recorder.stop();
    await real.close();
  });
});

describe('the hash of a record', () => {
  it('covers whom a DIP Connection Provider acted for, and is what it was for a record without it (written before it was kept)', () => {
    const e: ActivityEntry = { requestId: 'r1', at: 1, listener: 'participant', caller: 'CP', remote: null, method: 'GET', url: '/x', status: 200, durationMs: 1, responseBody: null };
    const before = createHash('sha256').update(JSON.stringify(['c', 1, GENESIS_HASH, e.requestId, e.at, e.listener, e.caller, e.remote, e.method, e.url, e.status, e.durationMs, e.responseBody])).digest('hex');
    expect(activityHash('c', 1, GENESIS_HASH, e)).toBe(before);
    expect(activityHash('c', 1, GENESIS_HASH, { ...e, actingFor: null })).toBe(before);
    expect(activityHash('c', 1, GENESIS_HASH, { ...e, actingFor: 'SUP' })).not.toBe(before);
  });
});

describe('reading the activity log (GET /admin/activity)', () => {
  it('looks a request up by its ID over the whole log unless a period is given, and passes minStatus on', async () => {
    const asked: unknown[][] = [];
    const app = Fastify();
    const now = Date.UTC(2026, 0, 1, 0, 30);
    await app.register(activityRoutes, { store: { recent: async (...args: unknown[]) => (asked.push(args), []) }, now: () => now });
    expect((await app.inject({ method: 'GET', url: '/admin/activity?requestId=7d0f0c9e-0000-4000-8000-000000000001' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/admin/activity?minStatus=500&caller=1000000001' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/admin/activity?minStatus=99' })).statusCode).toBe(400);
    expect(asked).toEqual([
      [0, now, 200, { requestId: '7d0f0c9e-0000-4000-8000-000000000001' }],
      [now - 3_600_000, now, 200, { caller: '1000000001', minStatus: 500 }],
    ]);
    await app.close();
  });


  it('masks a record again as it answers: one stored before credentials were masked gives none away', async () => {
    const stored: ChainedActivity = {
      requestId: 'r1', at: Date.UTC(2026, 0, 1), listener: 'operator', caller: 'operator:alice', remote: '127.0.0.1', method: 'POST', url: '/admin/session', status: 201, durationMs: 3,
      responseBody: JSON.stringify({ token: 'dipsess_old', operator: { name: 'alice', role: 'admin' } }), chain: 'c', seq: 1, prevHash: GENESIS_HASH, hash: 'h',
    };
    const app = Fastify();
    await app.register(activityRoutes, { store: { recent: async () => [stored] }, now: () => Date.UTC(2026, 0, 1, 0, 30) });
    const answer = (await app.inject({ method: 'GET', url: '/admin/activity' })).json<Array<{ responseBody: string }>>();
    // The operator account's name stays (the record's caller names it anyway); the session token does not.
    expect(JSON.parse(answer[0]!.responseBody)).toEqual({ token: '[masked]', operator: { name: 'alice', role: 'admin' } });
    await app.close();
  });
});

describe('the API activity log of a running DIP', () => {
  let t: TestDip;
  beforeAll(async () => {
    t = await startTestDip({ observability: { ...DEFAULTS.observability, activityLog: { enabled: true, maxWaiting: 200_000, flushIntervalMs: 20, maxBodyBytes: 16_384 } } });
  });
  afterAll(async () => {
    await t?.close();
  });

  const run = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'audit', ...args], { env: { ...process.env, DIP_DATA_DIR: t.config.dataDir } }, (err, stdout, stderr) =>
        resolve({ code: err ? 1 : 0, stdout, stderr }),
      );
    });

  it('records every request to both listeners, accepted or refused, with the ID answered in x-request-id; a tampered log is named by dip audit verify', cliRuns(3), async () => {
    const sds = await t.participant('2000000001', ['SDS']);
    await t.participant('1000000001', ['SUP']);
    const msg = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], mpan: '1200000000009', uniqueSuffix: 'act1' });
    const accepted = await sds.client.submit('IF-021', [msg]);
    expect(accepted.status).toBe(201);
    const refused = await sds.client.submit('IF-021', [{ ...msg, CommonBlock: undefined }]);
    expect(refused.status).toBe(400);
    const admin = await fetch(`http://127.0.0.1:${t.dip.adminPort}/admin/queues`, { headers: { authorization: 'Bearer wrong' } });
    expect(admin.status).toBe(401);
    // Credentials answered to one caller are not kept for the log's readers: a new account's token and
    // password, a participant's new API key.
    const bootstrap = adminApi(t);
    const robot = await bootstrap('POST', '/admin/operators', { name: 'robot', role: 'viewer', automation: true });
    const person = await bootstrap('POST', '/admin/operators', { name: 'pat', role: 'operator' });
    const newKey = await sds.client.call<{ apiKey: string }>('POST', `/participants/${sds.dipId}/api-key`, '{}');
    // An MPAN in a path is personal data too: an operator's lookup of one.
    expect((await bootstrap('GET', '/admin/mpan/1200000000009')).status).toBe(200);
    expect([robot.status, person.status, newKey.status]).toEqual([201, 201, 200]);
    // The person's first sign-in is answered with the TOTP secret to set up and the enrolment token.
    const enrolment = await adminApi(t, 'none')('POST', '/admin/session', { name: 'pat', password: person.body.password });
    expect(enrolment.status).toBe(403);
    const offer = enrolment.body.totpEnrolment as { token: string; secret: string };
    const secrets = [robot.body.token as string, person.body.password as string, offer.token, offer.secret, newKey.body.apiKey];
    const credentialsId = newKey.headers['x-request-id'];
    // Nor message contents an operator read: the evidence of a transaction (its whole signed request).
    const evidence = await bootstrap('GET', `/admin/evidence/${accepted.body.messageArray[0]!.transactionID}`);
    expect(evidence.status).toBe(200);
    const adminId = admin.headers.get('x-request-id');
    expect(adminId).toMatch(/^[0-9a-f-]{36}$/);
    // A handshake without a client certificate: refused by TLS before any HTTP.
    await new Promise<void>((resolve) => {
      const s = connect({ port: t.dip.port, host: '127.0.0.1', ca: t.dip.pki.ca.certPem, servername: 'localhost' });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.on('secureConnect', () => s.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n'));
    });

    const store = new SqliteActivityLog(activityLogFile(t.config));
    try {
      const all = async () => (await store.range({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, limit: 1000 }));
      await waitFor(async () => (await all()).some((r) => r.method === 'TLS') && (await all()).some((r) => r.requestId === adminId || r.requestId === credentialsId), 10_000, 'activity records');
      await waitFor(async () => (await all()).some((r) => r.requestId === credentialsId) && (await all()).some((r) => r.url.startsWith('/admin/evidence/')), 10_000, 'the API key and evidence records');
      const records = await all();
      for (const secret of [...secrets, '1200000000009']) expect(JSON.stringify(records)).not.toContain(secret);
      expect(records.map((r) => r.url)).toContain('/admin/mpan/[masked]');
      // The bootstrap token's calls name the caller as the journal names the actor: an auditor matches
      // the two records by that one spelling (it was `operator:bootstrap` here, `bootstrap` there).
      const journal = (await bootstrap('GET', '/admin/journal?limit=200')).body as unknown as Array<{ actor: string; action: string }>;
      const madeBy = journal.filter((e) => e.action === 'operator.create').map((e) => e.actor);
      expect(madeBy).toEqual(['bootstrap', 'bootstrap']);
      expect(records.filter((r) => r.method === 'POST' && r.url === '/admin/operators').map((r) => r.caller)).toEqual(madeBy);
      expect(records.find((r) => r.requestId === credentialsId)!.responseBody).toContain('"apiKey":"[masked]"');
      expect(records.find((r) => r.url.startsWith('/admin/evidence/'))!.responseBody).toBe('[answer not kept]');
      const posts = records.filter((r) => r.method === 'POST' && r.url === '/dip-channel/IF-021');
      expect(posts.map((r) => [r.listener, r.caller, r.status])).toEqual([['participant', '2000000001', 201], ['participant', '2000000001', 400]]);
      expect(posts[0]!.responseBody).toContain('"transactionID"');
      expect(records.find((r) => r.requestId === adminId)).toMatchObject({ listener: 'operator', caller: null, status: 401, url: '/admin/queues' });
      expect(records.find((r) => r.method === 'TLS')).toMatchObject({ listener: 'participant', status: null });
      for (const r of records) expect(r.responseBody ?? '').not.toContain('1200000000009');
      expect(records.every((r) => r.durationMs >= 0)).toBe(true);

      const whole = await run('verify');
      expect(whole.code, whole.stderr).toBe(0);
      expect(JSON.parse(whole.stdout)).toMatchObject({ ok: true, firstBad: null });

      // Someone rewrites the 201's answer in the database.
      const raw = new Database(activityLogFile(t.config));
      raw.exec('DROP TRIGGER activity_log_no_update');
      raw.prepare("UPDATE activity_log SET status = 200 WHERE request_id = ?").run(posts[0]!.requestId);
      raw.close();
      const tampered = await run('verify');
      expect(tampered.code).toBe(1);
      expect(tampered.stderr).toContain(`chain ${posts[0]!.chain}, record ${posts[0]!.seq}: its contents do not match its hash`);
      expect((await verifyActivityLog(store)).firstBad).toMatchObject({ chain: posts[0]!.chain, seq: posts[0]!.seq });

      const exported = await run('export', '--from', new Date(0).toISOString(), '--to', new Date(Date.now() + 60_000).toISOString());
      expect(exported.code, exported.stderr).toBe(0);
      const lines = exported.stdout.trim().split('\n').map((l) => JSON.parse(l) as { requestId: string });
      expect(lines.map((l) => l.requestId)).toEqual(expect.arrayContaining([posts[0]!.requestId, adminId]));

      // A participant quotes the x-request-id it was answered: found in one call, over the whole log.
      const found = await bootstrap('GET', `/admin/activity?requestId=${posts[1]!.requestId}`);
      expect([found.status, (found.body as unknown as Array<{ requestId: string; status: number }>).map((r) => [r.requestId, r.status])]).toEqual([200, [[posts[1]!.requestId, 400]]]);
      const failed = (await bootstrap('GET', '/admin/activity?minStatus=400&limit=1000')).body as unknown as Array<{ status: number; requestId: string }>;
      expect(failed.map((r) => r.requestId)).toEqual(expect.arrayContaining([posts[1]!.requestId, adminId]));
      expect(failed.every((r) => r.status >= 400)).toBe(true);
      const one = await run('export', '--request-id', adminId!);
      expect(one.code, one.stderr).toBe(0);
      expect(one.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { requestId: string }).requestId)).toEqual([adminId]);
      const refusedOnly = await run('export', '--from', new Date(0).toISOString(), '--min-status', '400');
      expect(refusedOnly.code, refusedOnly.stderr).toBe(0);
      expect(refusedOnly.stdout.trim().split('\n').every((l) => (JSON.parse(l) as { status: number }).status >= 400)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("records the portals' requests too, each from the person its cookie or sign-in names, keeping no page", async () => {
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    try {
      const page = await request(`${t.dip.portalUrl}/portal/sign-in`, { dispatcher: agent });
      await page.body.dump();
      const tried = await request(`${t.dip.portalUrl}/portal/sign-in`, {
        method: 'POST',
        dispatcher: agent,
        // The portal's own form, as a browser sends it (a sign-in with no Origin and no Sec-Fetch-Site is refused).
        headers: { 'content-type': 'application/x-www-form-urlencoded', origin: t.dip.portalUrl },
        body: 'username=Someone.Else&password=wrong-password&code=123456',
      });
      await tried.body.dump();
      expect([page.statusCode, tried.statusCode]).toEqual([200, 401]);
    } finally {
      await agent.close();
    }
    const store = new SqliteActivityLog(activityLogFile(t.config));
    try {
      const portal = async () => (await store.range({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, limit: 1000 })).filter((r) => r.listener === 'portal');
      await waitFor(async () => (await portal()).length >= 2, 10_000, 'the portal records');
      expect((await portal()).map((r) => [r.method, r.url, r.caller, r.status, r.responseBody])).toEqual([
        ['GET', '/portal/sign-in', null, 200, '[answer not kept]'],
        ['POST', '/portal/sign-in', 'user:someone.else', 401, '[answer not kept]'],
      ]);
    } finally {
      await store.close();
    }
  });
});

describe("the portal listener's request rate per address", () => {
  let t: TestDip;
  beforeAll(async () => {
    t = await startTestDip({
      portal: { ...DEFAULTS.portal, rateLimit: { requestsPerSecond: 0.01, burst: 5 } },
      observability: { ...DEFAULTS.observability, activityLog: { enabled: true, maxWaiting: 200_000, flushIntervalMs: 20, maxBodyBytes: 16_384 } },
    });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers a flood 429 with Retry-After and a page, keeps each served request with its URL cut, and counts the refused ones', async () => {
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    const answers: { status: number; retryAfter: unknown; type: unknown; body: string }[] = [];
    try {
      // The review's request: an unknown page with a 15,000-character query, over and over.
      for (let i = 0; i < 40; i++) {
        const res = await request(`${t.dip.portalUrl}/x?q=${'a'.repeat(15_000)}`, { dispatcher: agent });
        answers.push({ status: res.statusCode, retryAfter: res.headers['retry-after'], type: res.headers['content-type'], body: await res.body.text() });
      }
    } finally {
      await agent.close();
    }
    expect(answers.map((a) => a.status)).toEqual([...Array<number>(5).fill(404), ...Array<number>(35).fill(429)]);
    const refused = answers[5]!;
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(refused.type).toMatch(/^text\/html/);
    expect(refused.body).toContain('too many requests');
    const store = new SqliteActivityLog(activityLogFile(t.config));
    try {
      const portal = async () => (await store.range({ fromMs: 0, toMs: Number.MAX_SAFE_INTEGER, limit: 1000 })).filter((r) => r.listener === 'portal');
      await waitFor(async () => (await portal()).length >= 5, 10_000, 'the portal records');
      const kept = await portal();
      // The five served, each URL cut with its length said; none of the 35 refused one by one.
      expect(kept.map((r) => [r.status, r.url.length <= MAX_URL_CHARS + 40, r.url.endsWith('…[cut: 15005 characters]')])).toEqual(Array(5).fill([404, true, true]));
    } finally {
      await store.close();
    }
  });
});
