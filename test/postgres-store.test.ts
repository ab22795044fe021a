import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import pg from 'pg';
import { openPostgresBackend, type PostgresBackend } from '../src/adapters/postgres/index.js';
import { PgDatabase } from '../src/adapters/postgres/database.js';
import { PgPortalAccounts } from '../src/adapters/postgres/portal-accounts.js';
import { dayOf, partitionName } from '../src/adapters/postgres/partitions.js';
import { FileKeyEncryptionKey, Sealer } from '../src/security/at-rest.js';
import { tracesContract } from './contract/traces.contract.js';
import { archiveContract } from './contract/archive.contract.js';
import { backendContract } from './contract/backend.contract.js';
import { messageLogContract } from './contract/message-log.contract.js';
import { batch, mds, message, sup } from './contract/fixtures.js';
import { waitFor } from './helpers/dip-harness.js';
import { expectUpgradedInPlace, PRE_REALM_ROWS, preRealmDdl } from './helpers/pre-realm-accounts.js';
import { behindTheStore, createTestDatabase, queryOnce, type TestDatabase } from './helpers/postgres.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

backendContract('PostgreSQL', async () => {
  const url = await db.freshSchema();
  const open = () => openPostgresBackend({ url, clock: systemClock });
  return { backend: await open(), reopen: open, serverCommit: true, ...behindTheStore(url) };
});

const sealed = async () => {
  const url = await db.freshSchema();
  const kek = new FileKeyEncryptionKey(join(mkdtempSync(join(tmpdir(), 'opendip-pg-kek-')), 'kek.key'));
  const open = async () => {
    const backend = await openPostgresBackend({ url, clock: systemClock });
    backend.useSealer(await Sealer.open(kek, backend.dataKeys));
    return backend;
  };
  return { backend: await open(), reopen: open, serverCommit: true, loseMessage: behindTheStore(url).loseMessage };
};
messageLogContract('PostgreSQL, sealed at rest', sealed);
archiveContract('PostgreSQL, sealed at rest', sealed);
tracesContract('PostgreSQL, sealed at rest', sealed);

/** What only a shared server shows: several DIP nodes writing one store at once. */
describe('PostgreSQL: several nodes on one database', () => {
  const nodes: PostgresBackend[] = [];
  afterEach(async () => {
    for (const n of nodes.splice(0)) await n.close();
  });
  const openNodes = async (count: number) => {
    const url = await db.freshSchema();
    for (let i = 0; i < count; i++) nodes.push(await openPostgresBackend({ url, clock: systemClock }));
    return nodes;
  };

  it('a start of an enrolment that gives way to one completed on another node before it reads it back starts nothing, and does not fail', async () => {
    const url = await db.freshSchema();
    const other = await openPostgresBackend({ url, clock: systemClock });
    nodes.push(other);
    const d = await PgDatabase.open({ url, clock: systemClock });
    try {
      const bare = { username: 'lee', participantDipId: null, admin: true, displayName: 'lee', passwordHash: 'h', totpSecretSealed: null, lastTotpStep: 0, sessionEpoch: 0, disabled: false, createdAt: 1, createdBy: 'test' };
      await other.portalAccounts.createAccount(bare);
      const now = Date.now();
      await other.portalAccounts.startTotpEnrolment({ realm: 'operator', username: 'lee', tokenHash: 'first', secretSealed: 's', epoch: 0, startedAt: now, expiresAt: now + 600_000 });
      // The other node's completion commits exactly between this start's INSERT (which gave way to the
      // pending row) and its SELECT: the window two statements of READ COMMITTED leave open.
      const tx = d.tx.bind(d);
      d.tx = async <T,>(fn: (c: pg.PoolClient) => Promise<T>, days?: Iterable<number>): Promise<T> =>
        tx(async (c) => {
          const query = c.query.bind(c) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
          const between = async (text: string, values?: unknown[]): Promise<pg.QueryResult> => {
            const result = await query(text, values);
            if (text.startsWith('INSERT INTO portal_totp_enrolments')) expect(await other.portalAccounts.completeTotpEnrolment('first', now + 1, { secretSealed: 's', step: 1 })).toBeDefined();
            return result;
          };
          return fn(Object.assign(Object.create(c) as pg.PoolClient, { query: between }));
        }, days);
      expect(await new PgPortalAccounts(d).startTotpEnrolment({ realm: 'operator', username: 'lee', tokenHash: 'second', secretSealed: 't', epoch: 0, startedAt: now + 2, expiresAt: now + 600_002 })).toBeUndefined();
      expect(await other.portalAccounts.totpEnrolment('second')).toBeUndefined();
    } finally {
      await d.close();
    }
  });

  it('positions stay consecutive per queue when three nodes append at once', async () => {
    const [a, b, c] = await openNodes(3);
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => [a, b, c][i % 3]!.log.append(batch([message(['SUP0000001', 'MDS0000001']), message(['SUP0000001'])]))),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect((await a!.log.readQueue(sup, 0, 1000, 1 << 24)).map((e) => e.seq)).toEqual(Array.from({ length: 120 }, (_, i) => i + 1));
    expect((await b!.log.readQueue(mds, 0, 1000, 1 << 24)).map((e) => e.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  });

  it('a sender reference submitted to two nodes at once is accepted exactly once', async () => {
    const [a, b] = await openNodes(2);
    for (let round = 0; round < 20; round++) {
      const m = message(['SUP0000001']);
      const outcomes = await Promise.all([a!.log.append(batch([m])), b!.log.append(batch([{ ...m, transactionId: `${m.transactionId}-b` }]))]);
      expect(outcomes.filter((o) => o.ok).length, `round ${round}`).toBe(1);
    }
    expect((await a!.log.queueState(sup)).headSeq).toBe(20);
  });

  it("tells one node's registry watchers of another node's change (LISTEN/NOTIFY)", async () => {
    const [a, b] = await openNodes(2);
    let told = 0;
    const stop = b!.registry.watch(() => (told += 1));
    // The listener connects in the background: change until it hears (each change is a fresh notice).
    await waitFor(async () => {
      await a!.registry.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: `https://a/${told}`, maxMessageCount: 1, maxPayloadKb: 1, registeredBy: 'SUP0000001' });
      return told > 0;
    }, 10_000, 'a notice from the other node');
    stop();
  });

  it('drops whole days past retention, keeping a day a queue still waits on', async () => {
    const url = await db.freshSchema();
    const a = await openPostgresBackend({ url, clock: systemClock });
    nodes.push(a);
    const day = 86_400_000;
    const old = Date.now() - 40 * day;
    await a.log.append(batch([message(['SUP0000001'], { receivedAt: old })]));
    await a.log.append(batch([message(['MDS0000001'], { receivedAt: old - day })]));
    await a.log.settle(sup, { upTo: 1 });
    await a.archive.purgeDays(Date.now() - 28 * day);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const exists = async (day: number) => (await c.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [partitionName('messages', day)])).rows[0]!.t !== null;
      // Whole partitions, not rows: SUP's day is gone, MDS's (the day before) stays.
      expect(await exists(dayOf(old))).toBe(false);
      expect(await exists(dayOf(old - day))).toBe(true);
    } finally {
      await c.end();
    }
    // SUP's day went whole; MDS's is kept: its message is not delivered yet.
    expect(await a.archive.findArchived({ ...sup, limit: 10 })).toEqual([]);
    expect((await a.archive.findArchived({ ...mds, limit: 10 })).length).toBe(1);
    // Its sender reference went with its day; positions carry on.
    await a.log.append(batch([message(['SUP0000001'])]));
    expect(await a.log.queueState(sup)).toEqual({ ackedSeq: 1, headSeq: 2, pulledSeq: 0 });
  });
});

describe('PostgreSQL: portal accounts of a database made before the realms', () => {
  it('are upgraded in place at the open: each account in its realm, its pending enrolment kept, the realms then apart', async () => {
    const url = await db.freshSchema();
    await queryOnce(url, preRealmDdl('postgres'));
    for (const row of PRE_REALM_ROWS) await queryOnce(url, row.sql, row.values);
    const backend = await openPostgresBackend({ url, clock: systemClock });
    try {
      await expectUpgradedInPlace(backend);
    } finally {
      await backend.close();
    }
    const again = await openPostgresBackend({ url, clock: systemClock });
    try {
      expect((await again.portalAccounts.account('operator', 'sam.admin'))?.participantDipId).toBeNull();
    } finally {
      await again.close();
    }
  });
});
