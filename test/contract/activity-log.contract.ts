import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainEntries, GENESIS_HASH, type ActivityEntry } from '../../src/domain/activity.js';
import type { ActivityLogStore } from '../../src/ports/activity-log.js';
import { exportActivity, verifyActivityLog } from '../../src/pipeline/activity-recorder.js';

/** An engine's store, and what an attacker with write access to its tables could do to it. */
export interface OpenedActivityLog {
  store: ActivityLogStore;
  /** Rewrites one record's response body in place (past the append-only guard: the chain must still show it). */
  changeBody(chain: string, seq: number, body: string): Promise<void>;
  /** Deletes one record (past the append-only guard, as the schema's owner could: the chain must still show it). */
  deleteRecord(chain: string, seq: number): Promise<void>;
  /**
   * Purges tried through a connection of the DIP's own role with the guards in place, by name (a DELETE of
   * one record, of all, and on PostgreSQL a TRUNCATE): spec 5.8.1, each must be refused.
   */
  purges: Record<string, () => Promise<unknown>>;
  close(): Promise<void>;
}

const entry = (i: number, at: number): ActivityEntry => ({
  requestId: `req-${i}`,
  at,
  listener: 'participant',
  caller: '1000000001',
  remote: '127.0.0.1',
  method: 'POST',
  url: `/dip-channel/IF-021?i=${i}`,
  status: 201,
  durationMs: 1.5,
  responseBody: `{"n":${i}}`,
});

export function activityLogContract(name: string, open: () => Promise<OpenedActivityLog>): void {
  describe(`ActivityLogStore contract: ${name}`, () => {
    let ctx: OpenedActivityLog;
    beforeEach(async () => {
      ctx = await open();
    });
    afterEach(async () => {
      await ctx.close();
    });

    /** Appends `n` records to a new chain in batches of 3; returns the chain's records. */
    const fill = async (chain: string, n: number, at0 = 1000) => {
      await ctx.store.openChain(chain, at0);
      let head = { seq: 0, hash: GENESIS_HASH };
      const all = [];
      for (let i = 0; i < n; i += 3) {
        const { records, head: next } = chainEntries(chain, head, Array.from({ length: Math.min(3, n - i) }, (_, k) => entry(i + k + 1, at0 + (i + k) * 10)));
        await ctx.store.append(records);
        head = next;
        all.push(...records);
      }
      return all;
    };

    it("answers a participant's records: made by it, and made for it by its DIP Connection Provider, newest first; both verify", async () => {
      await ctx.store.openChain('node-p', 1000);
      const made = (i: number, caller: string, actingFor: string | null): ActivityEntry => ({ ...entry(i, 1000 + i), caller, ...(actingFor ? { actingFor } : {}) });
      const { records } = chainEntries('node-p', { seq: 0, hash: GENESIS_HASH }, [made(1, 'SUP', null), made(2, 'CP', 'SUP'), made(3, 'CP', null), made(4, 'CP', 'OTHER'), made(5, 'OTHER', null)]);
      await ctx.store.append(records);
      const ids = async (who: string, limit = 10) => (await ctx.store.recent(0, 10_000, limit, { caller: who })).map((r) => [r.requestId, r.caller, r.actingFor ?? null]);
      expect(await ids('SUP')).toEqual([['req-2', 'CP', 'SUP'], ['req-1', 'SUP', null]]);
      expect(await ids('CP')).toEqual([['req-4', 'CP', 'OTHER'], ['req-3', 'CP', null], ['req-2', 'CP', 'SUP']]);
      expect(await ids('OTHER', 1)).toEqual([['req-5', 'OTHER', null]]);
      expect(await ctx.store.chainRecords('node-p', 0, 10)).toEqual(records);
      expect((await verifyActivityLog(ctx.store)).ok).toBe(true);
    });

    it('keeps records as appended, per chain, and verifies a whole log', async () => {
      const a = await fill('node-a', 7);
      await fill('node-b', 4, 1005);
      expect(await ctx.store.chainRecords('node-a', 0, 100)).toEqual(a);
      expect((await ctx.store.chains()).map((c) => [c.chain, c.head.seq])).toEqual([['node-a', 7], ['node-b', 4]]);
      expect(await verifyActivityLog(ctx.store, 2)).toEqual({ ok: true, chains: 2, records: 11, firstBad: null, walLosses: [] });
    });

    it('names the first changed record', async () => {
      await fill('node-a', 6);
      await ctx.changeBody('node-a', 4, '{"n":"forged"}');
      const report = await verifyActivityLog(ctx.store);
      expect(report.ok).toBe(false);
      expect(report.firstBad).toMatchObject({ chain: 'node-a', seq: 4, reason: expect.stringContaining('do not match its hash') as unknown });
    });

    it('names a deletion in the middle and at the end of a chain', async () => {
      await fill('node-a', 6);
      await ctx.deleteRecord('node-a', 3);
      expect((await verifyActivityLog(ctx.store)).firstBad).toMatchObject({ chain: 'node-a', seq: 4, reason: expect.stringContaining('records 3..3 are missing') as unknown });
      await fill('node-b', 5, 2000);
      await ctx.deleteRecord('node-a', 2);
      await ctx.deleteRecord('node-a', 4);
      await ctx.deleteRecord('node-a', 5);
      await ctx.deleteRecord('node-a', 6);
      // Now node-a is records 1 only: a deleted tail is found against the head recorded beside the chain.
      expect((await verifyActivityLog(ctx.store)).firstBad).toMatchObject({ chain: 'node-a', seq: 2, reason: expect.stringContaining('recorded head is record 6') as unknown });
    });

    it('refuses a purge through its own database connection, saying why, and keeps every record', async () => {
      const records = await fill('node-a', 4);
      for (const [what, purge] of Object.entries(ctx.purges)) {
        await expect(purge(), what).rejects.toThrow(/the activity log is append-only: its records cannot be deleted/);
      }
      expect(await ctx.store.chainRecords('node-a', 0, 10)).toEqual(records);
      expect((await verifyActivityLog(ctx.store)).ok).toBe(true);
    });

    it('refuses to change a record in place', async () => {
      await fill('node-a', 1);
      await expect(ctx.store.append(chainEntries('node-a', { seq: 0, hash: GENESIS_HASH }, [entry(9, 5)]).records)).rejects.toThrow();
    });

    it('exports a period in arrival order, page by page', async () => {
      await fill('node-a', 5, 1000);
      await fill('node-b', 5, 1000);
      const seen = [];
      for await (const r of exportActivity(ctx.store, 1010, 1040, 3)) seen.push(`${r.chain}:${r.seq}`);
      expect(seen).toEqual(['node-a:2', 'node-b:2', 'node-a:3', 'node-b:3', 'node-a:4', 'node-b:4']);
    });

    it("lists the records of a period newest first, and one caller's alone", async () => {
      await fill('node-a', 5, 1000);
      await ctx.store.openChain('node-b', 1000);
      const others = chainEntries('node-b', { seq: 0, hash: GENESIS_HASH }, [1, 2, 3].map((i) => ({ ...entry(i, 1000 + i * 10), caller: i === 2 ? null : '1000000002' })));
      await ctx.store.append(others.records);
      const mine = await ctx.store.recent(1010, 1040, 10, { caller: '1000000001' });
      expect(mine.map((r) => `${r.chain}:${r.seq}`)).toEqual(['node-a:4', 'node-a:3', 'node-a:2']);
      expect((await ctx.store.recent(0, 10_000, 2, { caller: '1000000001' })).map((r) => r.seq)).toEqual([5, 4]);
      expect((await ctx.store.recent(0, 10_000, 10, { caller: '1000000002' })).map((r) => r.seq)).toEqual([3, 1]);
      expect(await ctx.store.recent(0, 10_000, 10, { caller: '9999999999' })).toEqual([]);
      // Without a caller: everyone's, newest first.
      expect((await ctx.store.recent(1015, 1035, 10)).map((r) => `${r.chain}:${r.seq}`)).toEqual(['node-b:3', 'node-a:4', 'node-b:2', 'node-a:3']);
    });

    it('finds a request by its ID (x-request-id) and the requests answered at or above a status, alone or with a caller, listed and exported', async () => {
      await fill('node-a', 5, 1000);
      await ctx.store.openChain('node-b', 1000);
      const statuses = [201, 400, 503];
      const others = chainEntries('node-b', { seq: 0, hash: GENESIS_HASH }, [1, 2, 3].map((i) => ({ ...entry(i + 10, 1000 + i * 10), caller: '1000000002', status: statuses[i - 1]! })));
      await ctx.store.append(others.records);
      const at = (rs: Array<{ chain: string; seq: number }>) => rs.map((r) => `${r.chain}:${r.seq}`);
      expect(at(await ctx.store.recent(0, 10_000, 10, { requestId: 'req-12' }))).toEqual(['node-b:2']);
      expect(at(await ctx.store.recent(0, 10_000, 10, { requestId: 'req-3' }))).toEqual(['node-a:3']);
      expect(await ctx.store.recent(0, 10_000, 10, { requestId: 'req-99' })).toEqual([]);
      expect(await ctx.store.recent(0, 10_000, 10, { requestId: 'req-12', caller: '1000000001' })).toEqual([]);
      expect(at(await ctx.store.recent(0, 10_000, 10, { minStatus: 400 }))).toEqual(['node-b:3', 'node-b:2']);
      expect(at(await ctx.store.recent(0, 10_000, 10, { minStatus: 500, caller: '1000000002' }))).toEqual(['node-b:3']);
      expect(await ctx.store.recent(0, 10_000, 10, { minStatus: 400, caller: '1000000001' })).toEqual([]);
      const exported = async (filter: { requestId?: string; minStatus?: number }) => {
        const seen = [];
        for await (const r of exportActivity(ctx.store, 0, 10_000, 1, filter)) seen.push(r);
        return at(seen);
      };
      expect(await exported({ minStatus: 400 })).toEqual(['node-b:2', 'node-b:3']);
      expect(await exported({ requestId: 'req-4' })).toEqual(['node-a:4']);
      expect(await exported({ requestId: 'req-4', minStatus: 400 })).toEqual([]);
    });

    it('reads refused submissions alone: POST /dip-channel/… (any case) answered 400 or above, by caller, page by page', async () => {
      await ctx.store.openChain('node-r', 1000);
      const made = (i: number, method: string, url: string, status: number | null, caller: string | null = '1000000001', actingFor: string | null = null): ActivityEntry => ({
        ...entry(i, 1000 + i),
        method,
        url,
        status,
        caller,
        ...(actingFor ? { actingFor } : {}),
      });
      const { records } = chainEntries('node-r', { seq: 0, hash: GENESIS_HASH }, [
        made(1, 'POST', '/dip-channel/IF-021', 400),
        made(2, 'POST', '/dip-channel/IF-021', 201),
        made(3, 'POST', '/DIP-Channel/if-021?x=1', 503, '1000000002'),
        made(4, 'GET', '/dip-channel/IF-021/replay/1000000001', 400),
        made(5, 'POST', '/statusmessage', 400),
        made(6, 'POST', '/dip-channel/IF-031', 403, 'CP00000001', '1000000001'),
        made(7, 'TLS', '', null, null),
        made(8, 'POST', '/dip-channel/IF-021', 429, null),
      ]);
      await ctx.store.append(records);
      const seqs = async (q: Partial<Parameters<ActivityLogStore['refusedSubmissions']>[0]> = {}) =>
        (await ctx.store.refusedSubmissions({ fromMs: 0, toMs: 10_000, limit: 10, ...q })).map((r) => r.seq);
      expect(await seqs()).toEqual([1, 3, 6, 8]);
      // From included, to not.
      expect(await seqs({ fromMs: 1003, toMs: 1008 })).toEqual([3, 6]);
      expect(await seqs({ caller: '1000000001' })).toEqual([1, 6]);
      expect(await seqs({ caller: 'CP00000001' })).toEqual([6]);
      expect(await seqs({ limit: 2 })).toEqual([1, 3]);
      expect(await seqs({ limit: 2, after: { at: 1003, chain: 'node-r', seq: 3 } })).toEqual([6, 8]);
    });
  });
}
