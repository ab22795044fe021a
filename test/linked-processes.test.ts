import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import type { Backend } from '../src/ports/backend.js';
import { Reports, type LinkedProcess } from '../src/pipeline/reports.js';
import { ReportThread } from '../src/topology/report-threads.js';
import { reportApp } from './helpers/report-app.js';
import { batch, message } from './contract/fixtures.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

/**
 * The processes report's flows linked by MPAN and a participant's own chains (spec 5.11.3), answered from
 * either store (the embedded one on the main thread and on the report thread alike), and cut to what the
 * viewer may see.
 */

const FROM = '2026-01-01T00:00:00Z';
const TO = '2026-01-02T00:00:00Z';
const NOW = Date.parse('2026-01-01T12:00:00Z');
const AT = Date.parse('2026-01-01T09:00:00Z');
const MIN = 60_000;
const MPAN = '1200000000001';

const SUP = 'SUP0000001';
const DS = 'SDS0000001';
const OTHER_DS = 'SDS0000002';
const REGS = 'REG0000001';

const rowsOf = (body: string) => (JSON.parse(body) as { rows: LinkedProcess[] }).rows;

/** The store a suite runs on, and the embedded store's file (its report thread), null for PostgreSQL. */
type Opened = { backend: Backend; file: string | null };

function linkedSuite(engine: string, open: () => Promise<Opened>): void {
  describe(engine, () => {
    let backend: Backend;
    let file: string | null;
    let thread: ReportThread | null;
    let here: FastifyInstance;
    let there: FastifyInstance;

    /** One message in a batch of its own (its channel and sender are the batch's). */
    const send = async (channel: string, eventCode: string, sender: string, recipients: string[], atMin: number, over: { correlationId?: string | null; mpan?: string | null } = {}) => {
      const m = message(recipients, { channel, eventCode, senderDipId: sender, senderRole: 'X', receivedAt: AT + atMin * MIN, correlationId: null, mpan: MPAN, ...over });
      await backend.log.append({ ...batch([m]), channel, senderDipId: sender });
      return m.transactionId;
    };

    let appointment: string[];
    beforeAll(async () => {
      ({ backend, file } = await open());
      // A de-acquisition of the MPAN: registration confirms the loss, de-appoints the data service, which sends a final reading.
      await send('IF-001', '[ChangeOfSupplier]', REGS, [SUP, DS], 0);
      await send('IF-037', '[DSDeApp]', REGS, [SUP, DS], 5);
      await send('IF-041', '[ReadingCOS]', DS, [SUP], 6);
      // An appointment workflow under one correlation ID: the supplier and its data service, then registration
      // asking another data service (a message the supplier neither sent nor received).
      appointment = [
        await send('IF-031', '[DSApp]', SUP, [DS], 10, { correlationId: 'CI-1', mpan: null }),
        await send('IF-032', '[DSAppAccepted]', DS, [SUP], 11, { correlationId: 'CI-1', mpan: null }),
        await send('IF-033', '[DSApp]', REGS, [OTHER_DS], 12, { correlationId: 'CI-1', mpan: null }),
      ];
      thread = file === null ? null : new ReportThread(file);
      const reports = (on: ReportThread | null) => new Reports(backend.traces, { history: async () => [] }, () => NOW, 'DIP0000001', null, { counts: backend.reportCounts, ...(on ? { thread: on } : {}) });
      here = await reportApp(reports(null), NOW);
      there = thread ? await reportApp(reports(thread), NOW) : here;
    }, 60_000);

    afterAll(async () => {
      for (const app of new Set([here, there])) await app?.close();
      await thread?.close();
      await backend?.close();
    });

    /** The answer on the main thread, checked to be the report thread's byte for byte (SQLite). */
    const get = async (query: string, viewer?: string) => {
      const url = `/r/processes?from=${FROM}&to=${TO}${query}`;
      const headers = viewer ? { 'x-viewer': viewer } : {};
      const [a, b] = await Promise.all([here.inject({ method: 'GET', url, headers }), there.inject({ method: 'GET', url, headers })]);
      expect(b.statusCode).toBe(a.statusCode);
      expect(b.body).toBe(a.body);
      return a;
    };

    describe('the processes report, linked by MPAN', () => {
      it('follows a de-acquisition by MPAN beside the correlation-ID processes', async () => {
        const res = await get('');
        expect(res.statusCode).toBe(200);
        const rows = rowsOf(res.body);
        const lost = rows.filter((r) => r.flow === 'de-acquisition');
        expect(lost).toHaveLength(1);
        expect(lost[0]).toMatchObject({ mpan: expect.any(String), process: 'De-acquisition', state: 'complete', current: 'IF-041' });
        expect(lost[0]!.stages.map((s) => s.channel)).toEqual(['IF-001', 'IF-037', 'IF-041']);
        expect(rows.filter((r) => r.flow === 'service-appointment').map((r) => 'correlationId' in r && r.correlationId)).toEqual(['CI-1']);
      });

      it('a participant sees a de-acquisition only through the messages it sent or received', async () => {
        const rows = rowsOf((await get('', SUP)).body).filter((r) => r.flow === 'de-acquisition');
        expect(rows.map((r) => r.stages.map((s) => s.channel))).toEqual([['IF-001', 'IF-037', 'IF-041']]);
        // The other data service received none of them: no process of the MPAN for it.
        expect(rowsOf((await get('', OTHER_DS)).body).filter((r) => r.flow === 'de-acquisition')).toEqual([]);
      });
    });

    describe("a participant's own chain (channels, linkBy)", () => {
      const chain = '&channels=IF-031,IF-032,IF-033&linkBy=correlationID&stuckAfterMinutes=600';

      it('is answered in the shape of a predefined process, named custom, with only its channels', async () => {
        const rows = rowsOf((await get(chain)).body);
        expect(rows).toHaveLength(1);
        expect(rows[0]).toMatchObject({ correlationId: 'CI-1', flow: null, process: 'custom', state: 'complete', current: 'IF-033' });
        expect(rows[0]!.stages.map((s) => s.transactionId)).toEqual(appointment);
      });

      it("shows a participant none of another's messages: only those it sent or received", async () => {
        const mine = rowsOf((await get(chain, SUP)).body);
        expect(mine.map((r) => r.stages.map((s) => s.transactionId))).toEqual([appointment.slice(0, 2)]);
        expect(mine[0]).toMatchObject({ state: 'in-progress', current: 'IF-032' });
        // Its copies only, as in every report.
        expect(mine[0]!.stages.flatMap((s) => s.deliveries.map((d) => d.recipient))).toEqual([DS, SUP]);
        // The other data service received IF-033 alone: no chain starts (IF-031) in what it may see.
        expect(rowsOf((await get(chain, OTHER_DS)).body)).toEqual([]);
      });

      it('links by MPAN or by transaction ID as asked', async () => {
        const byMpan = rowsOf((await get('&channels=IF-001,IF-037&linkBy=mpan')).body);
        expect(byMpan.map((r) => [Object.keys(r)[0], r.process, r.stages.map((s) => s.channel), r.state])).toEqual([['mpan', 'custom', ['IF-001', 'IF-037'], 'complete']]);
        const byTx = rowsOf((await get('&channels=IF-031,IF-032&linkBy=transactionID')).body);
        expect(byTx.map((r) => 'transactionId' in r && r.transactionId)).toEqual([appointment[0]]);
      });

      it.each([
        ['one channel', '&channels=IF-031&linkBy=mpan', 'querystring/channels'],
        ['eleven channels', `&channels=${Array.from({ length: 11 }, (_, i) => `IF-0${10 + i}`).join(',')}&linkBy=mpan`, 'querystring/channels'],
        ['no interface id', '&channels=IF-031,nope&linkBy=mpan', 'querystring/channels'],
        ['an unknown link', '&channels=IF-031,IF-032&linkBy=envelope', 'querystring/linkBy'],
        ['no link', '&channels=IF-031,IF-032', 'name linkBy'],
        ['a link without channels', '&linkBy=mpan', 'name channels'],
        ['a channel twice', '&channels=IF-031,IF-032,IF-031&linkBy=mpan', 'IF-031 twice'],
        ['a channel filter besides', '&channels=IF-031,IF-032&linkBy=mpan&channel=IF-031', 'not both'],
      ])('refuses %s, saying why', async (_what, query, why) => {
        const res = await here.inject({ method: 'GET', url: `/r/processes?from=${FROM}&to=${TO}${query}` });
        expect(res.statusCode).toBe(400);
        expect(res.body).toContain(why);
      });
    });
  });
}

linkedSuite('SQLite', async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'opendip-linked-')), 'dip.db');
  return { backend: openSqliteBackend(file, { clock: systemClock }), file };
});

let db: TestDatabase | undefined;
afterAll(async () => {
  await db?.drop();
});
linkedSuite('PostgreSQL', async () => {
  db ??= await createTestDatabase();
  return { backend: await openPostgresBackend({ url: await db.freshSchema(), clock: systemClock }), file: null };
});
