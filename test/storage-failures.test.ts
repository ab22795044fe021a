import { Signer } from '../src/security/signature.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend, type SqliteBackend } from '../src/adapters/sqlite/index.js';
import type { BackendHealth } from '../src/ports/backend.js';
import { COMMIT_IN_DOUBT, StoreError } from '../src/ports/errors.js';
import { buildIF021 } from '../src/sim/messages.js';
import { batch, message } from './contract/fixtures.js';
import { FakeClock, ShiftableClock } from './helpers/clocks.js';
import { adminApi } from './helpers/admin.js';
import { queueSettled, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/** A delivered message's sender reference (each item's is unique). */
const ref = (m: unknown): string => (m as { payload: { CommonBlock: { S1: { senderUniqueReference: string } } } }).payload.CommonBlock.S1.senderUniqueReference;

describe('storage failures are classified, reported and recovered from', () => {
  it('a failed disk sync is fatal: every write refused after it, health says so', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-fatal-')), 'dip.db');
    let failNext = false;
    const backend = openSqliteBackend(file, { clock: systemClock, durability: (done) => setImmediate(() => done(failNext ? Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }) : null)) });
    const seen: BackendHealth[] = [];
    backend.onHealthChange((h) => seen.push(h));
    expect(await backend.log.append(batch([message(['SUP0000001'])]))).toEqual({ ok: true });
    failNext = true;
    const failed = await backend.log.append(batch([message(['SUP0000001'])])).catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(StoreError);
    expect((failed as StoreError).kind).toBe('fatal');
    expect(backend.health()).toMatchObject({ state: 'fatal', reason: expect.stringMatching(/EIO/) });
    failNext = false;
    await expect(backend.log.settle({ recipientDipId: 'SUP0000001', channel: 'IF-021' }, { upTo: 1 })).rejects.toMatchObject({ kind: 'fatal' });
    expect(seen.map((h) => h.state)).toEqual(['fatal']);
    // Nothing whose sync failed is handed out: the second message is not readable.
    expect((await backend.log.readQueue({ recipientDipId: 'SUP0000001', channel: 'IF-021' }, 0, 10, 1 << 20)).length).toBe(1);
    await backend.close();
  });

  it('a disk with room for a few pages but no batch stays unavailable: the probe is the size of a large batch', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-nearly-full-')), 'dip.db');
    const clock = new FakeClock();
    // Syncs reported at once, so a probe that goes through turns health to ok within the clock's advance.
    let syncs = 0;
    const backend = openSqliteBackend(file, { clock, durability: (done) => void (syncs += 1, setImmediate(() => done(null))) });
    expect(await backend.log.append(batch([message(['SUP0000001'])]))).toEqual({ ok: true });
    const Database = (await import('better-sqlite3')).default;
    const look = new Database(file, { readonly: true });
    const bytes = (look.pragma('page_count', { simple: true }) as number) * (look.pragma('page_size', { simple: true }) as number);
    look.close();
    backend.setSizeLimit(bytes + 32 * 1024); // eight more pages: a small write fits, no real batch does
    const big = batch(Array.from({ length: 500 }, () => message(['SUP0000001'])));
    await expect(backend.log.append(big)).rejects.toMatchObject({ kind: 'unavailable', code: 'SQLITE_FULL' });
    expect(backend.health().state).toBe('unavailable');
    // A small write still fits in the last pages and is taken, but it proves no batch would be: the store
    // stays unavailable (it turned ok here, so /ready answered 200 and the storage alarm was never raised
    // while every real batch was refused, as soon as a delivery recorded its small acknowledgement).
    expect(await backend.log.append(batch([message(['SUP0000001'])]))).toEqual({ ok: true });
    expect(backend.health().state).toBe('unavailable');
    const before = syncs;
    await clock.advance(2_000); // a probe
    expect([backend.health().state, syncs - before]).toEqual(['unavailable', 0]);
    backend.setSizeLimit(null);
    await clock.advance(2_000);
    await waitFor(() => backend.health().state === 'ok', 5000, 'the probe to succeed once there is room');
    expect(await backend.log.append(big)).toEqual({ ok: true });
    await backend.close();
  });

  it('a missing message is a permanent error naming the damage, not a retry loop', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-damaged-')), 'dip.db');
    const backend: SqliteBackend = openSqliteBackend(file, { clock: systemClock });
    await backend.log.append(batch([message(['SUP0000001'])]));
    await backend.close();
    const Database = (await import('better-sqlite3')).default;
    const raw = new Database(file);
    raw.prepare('DELETE FROM messages').run();
    raw.close();
    const reopened = openSqliteBackend(file, { clock: systemClock });
    const err = await reopened.log.readQueue({ recipientDipId: 'SUP0000001', channel: 'IF-021' }, 0, 10, 1 << 20).catch((e: unknown) => e);
    expect(err).toMatchObject({ kind: 'permanent', code: 'MISSING_ROW', message: expect.stringMatching(/damaged database: queue SUP0000001\/IF-021 position 1 refers to message \d+, which is missing/) });
    await reopened.close();
  });

  describe('a full disk (the database at its size cap)', () => {
    let t: TestDip;
    let sds: TestParticipant;
    let sup: TestParticipant;
    const clock = new ShiftableClock();
    let n = 0;
    const items = (count: number, to = sup.dipId) =>
      Array.from({ length: count }, () => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [to], uniqueSuffix: `full${n++}` }));

    beforeAll(async () => {
      t = await startTestDip({}, undefined, { clock });
      sds = await t.participant('2000000001', ['SDS']);
      sup = await t.participant('1000000001', ['SUP']);
    });
    afterAll(async () => t?.close());

    it('answers 503 with Retry-After naming the cause, reports not ready, accepts nothing, and resumes by itself when space returns', async () => {
      const backend = t.dip.backend as SqliteBackend;
      expect((await sds.client.submit('IF-021', items(1))).status).toBe(201);
      backend.setSizeLimit(1); // capped at its current size: the next page it needs is refused
      const refused = await sds.client.submit('IF-021', items(200));
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('5');
      expect(refused.body.messageArray[0]!.help).toMatch(/cannot store messages right now \(SQLITE_FULL\); nothing of this batch was accepted/);
      const health = await sds.client.call('GET', '/health', '');
      expect(health.status).toBe(503);
      expect(health.body).toMatchObject({ status: 'unavailable' });
      // Not ready either: a load balancer sends this node nothing while its store refuses writes.
      const ready = await sds.client.call('GET', '/ready', '');
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ status: 'unavailable', reason: expect.stringMatching(/SQLITE_FULL|full/i) });
      // Nothing of the refused batch is stored: the sender may send exactly the same again later.
      const again = items(0);
      expect(again).toEqual([]);
      backend.setSizeLimit(null);
      clock.jump(2_000); // the store probes every 2 s while it cannot write
      await waitFor(() => backend.health().state === 'ok', 5000, 'the store to take writes again');
      expect((await sds.client.call('GET', '/ready', '')).status).toBe(200);
      const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
      const before = (await backend.log.queueState(queue)).headSeq;
      expect(before).toBe(1);
      expect((await sds.client.submit('IF-021', items(200))).status).toBe(201);
      expect((await backend.log.queueState(queue)).headSeq).toBe(201);
    });

    it('answers any other signed call the store fails with 503 and Retry-After, and frees its signature for the same request sent again', async () => {
      const log = t.dip.backend.log;
      const acknowledge = log.acknowledge.bind(log);
      // The store refuses the acknowledgement's write once, as a database restarting would.
      log.acknowledge = async () => {
        log.acknowledge = acknowledge;
        throw new StoreError('unavailable', 'the database system is shutting down', '57P03');
      };
      // Pulled first: an acknowledgement may not pass what a pull handed out.
      expect((await sup.client.pull('IF-021', sup.dipId, 1)).lastSeq).toBe(1);
      const body = JSON.stringify({ sequence: 1 });
      const signed = await new Signer(sup.credentials.keyPem, sup.credentials.certPem).sign('POST', `${t.dip.url}/dip-channel/IF-021/ack/${sup.dipId}`, body);
      const ack = () => sup.client.call('POST', `/dip-channel/IF-021/ack/${sup.dipId}`, body, { ...signed });
      const refused = await ack();
      expect([refused.status, refused.headers['retry-after'], refused.body.messageArray[0]!.help]).toEqual([503, '5', expect.stringContaining('(57P03): send the request again unchanged')]);
      // "Unchanged": the same signature is taken now, once.
      expect((await ack()).status).toBe(200);
      expect((await ack()).status).toBe(401);
    });

    /**
     * A fault campaign's disk full with a recipient's messages waiting: what was answered 201 before is
     * delivered once, what came during is refused 503 and stored nowhere, and the operator is told by the
     * storage alarm for as long as it lasts.
     */
    it('refuses during the fault, raises and resolves the storage alarm, and delivers every message accepted before, once', async () => {
      const backend = t.dip.backend as SqliteBackend;
      const admin = adminApi(t);
      // A recipient of its own: the tests before left messages in SUP's queue.
      const sup = await t.participant('1000000002', ['SUP']);
      let up = false;
      const taken: string[] = []; // messages in calls answered 200
      let refusedCalls = 0;
      const r = await t.receiver((call) => {
        if (up) taken.push(...call.messages.map(ref));
        else refusedCalls += 1;
        return up ? 200 : 503;
      });
      await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url, maxMessageCount: 100 });
      const before = items(20, sup.dipId);
      expect((await sds.client.submit('IF-021', before)).status).toBe(201);
      await waitFor(() => refusedCalls > 0, 10_000, 'a first (refused) call');

      backend.setSizeLimit(1);
      up = true;
      const during = items(500, sup.dipId); // more than the free pages the tests before left hold
      const refused = await sds.client.submit('IF-021', during);
      expect([refused.status, refused.headers['retry-after']]).toEqual([503, '5']);
      // The messages accepted before go on being delivered meanwhile: their acknowledgement is a small
      // write, which still fits (the worker goes idle) or is refused (the worker pauses until space returns).
      const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
      const worker = () => t.dip.delivery.status().find((w) => w.queue.recipientDipId === sup.dipId)?.state;
      await waitFor(() => taken.length === 20 && (worker() === 'idle' || worker() === 'paused'), 10_000, 'the messages accepted before to be taken');
      // Neither turns the node ready while no batch can be stored.
      expect((await sds.client.call('GET', '/ready', '')).status).toBe(503);
      // The storage alarm needs the store refusing on two evaluations STORAGE_LASTING_MS apart: time moves on
      // at each look (an evaluation each), rather than once, which left it to an evaluation the tests before
      // happened to trigger.
      await waitFor(async () => {
        clock.jump(10_000);
        return ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string }>).some((a) => a.rule === 'storage');
      }, 10_000, 'the storage alarm');
      const alarm = ((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string; summary: string }>).find((a) => a.rule === 'storage');
      expect(alarm!.summary).toMatch(/disk is full/);
      // The operator's view of the node says so too.
      const health = await admin('GET', '/admin/health');
      expect([health.status, health.body.storage]).toEqual([503, { state: 'unavailable', reason: 'database or disk is full', code: 'SQLITE_FULL' }]);

      backend.setSizeLimit(null);
      clock.jump(2_000); // the store's probe
      await waitFor(() => backend.health().state === 'ok', 10_000, 'the store to take writes again');
      const after = items(5, sup.dipId);
      expect((await sds.client.submit('IF-021', after)).status).toBe(201);
      await waitFor(() => queueSettled(t.dip, queue), 15_000, 'the queue to drain');
      // Every message answered 201 taken once, in order; nothing of the refused batch.
      expect(taken).toEqual([...before, ...after].map(ref));
      clock.jump(10_000);
      await waitFor(async () => !((await admin('GET', '/admin/alarms')).body.alarms as Array<{ rule: string }>).some((a) => a.rule === 'storage'), 10_000, 'the storage alarm resolved');
    });

    /** The archive's next `attempts` read fails with `err`, as a store failing once would. */
    const failAttemptsOnce = (err: StoreError) => {
      const archive = t.dip.backend.archive;
      const attempts = archive.attempts.bind(archive);
      archive.attempts = async () => {
        archive.attempts = attempts;
        throw err;
      };
    };

    it('answers a batch whose COMMIT went unanswered, and could not be checked, 503 saying it may have been accepted, not "nothing accepted"', async () => {
      // What the PostgreSQL store raises when the answer to COMMIT was lost and the server stayed out of
      // reach (src/adapters/postgres/in-doubt.ts): the batch may be stored.
      const log = t.dip.backend.log;
      const append = log.append.bind(log);
      log.append = async () => {
        log.append = append;
        throw new StoreError('unavailable', 'PostgreSQL: the answer to COMMIT was lost', COMMIT_IN_DOUBT);
      };
      const refused = await sds.client.submit('IF-021', items(1));
      expect([refused.status, refused.headers['retry-after']]).toEqual([503, '5']);
      const help = refused.body.messageArray[0]!.help!;
      expect(help).toMatch(/cannot tell yet whether the batch was accepted: send it again unchanged .*refused as a duplicate \(MSG1006\)/);
      expect(help).not.toMatch(/nothing of this batch was accepted/);
    });

    it('answers an operator call the store fails with 503 and Retry-After, not an internal error', async () => {
      failAttemptsOnce(new StoreError('unavailable', 'PostgreSQL: Query read timeout', null));
      const refused = await adminApi(t)('GET', `/admin/attempts?recipient=${sup.dipId}&channel=IF-021`);
      expect([refused.status, refused.headers?.['retry-after'], refused.body.error]).toEqual([503, '5', expect.stringContaining('the store is unavailable from this node')]);
      expect((await adminApi(t)('GET', `/admin/attempts?recipient=${sup.dipId}&channel=IF-021`)).status).toBe(200);
    });

    it('answers an operator call whose COMMIT went unanswered 503 saying it may have been done, not "nothing was done"', async () => {
      // Every operator write is a transaction without a check of its own (PgDatabase.tx's isCommitted):
      // its COMMIT lost is COMMIT_IN_DOUBT, and "nothing was done" could be false (a change that is not
      // idempotent, sent again, would run twice).
      failAttemptsOnce(new StoreError('unavailable', 'PostgreSQL: the answer to COMMIT was lost', COMMIT_IN_DOUBT));
      const refused = await adminApi(t)('GET', `/admin/attempts?recipient=${sup.dipId}&channel=IF-021`);
      expect([refused.status, refused.headers?.['retry-after']]).toEqual([503, '5']);
      expect(refused.body.error).toMatch(/may have been done: look before doing it again/);
      expect(refused.body.error).not.toMatch(/nothing was done/);
    });
  });
});
