import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ValueSealer } from '../../src/ports/backend.js';
import { FileKeyEncryptionKey, Sealer } from '../../src/security/at-rest.js';
import { useBackend, type BackendFactory } from './fixtures.js';

/** What a store without encryption at rest does (the adapters' default before useSealer). */
const NOT_SEALING: ValueSealer = { seal: (plain) => plain, open: (sealed) => sealed, index: (value) => value };

export function mpanContract(name: string, open: BackendFactory): void {
  describe(`MpanStore contract: ${name}`, () => {
    const ctx = useBackend(open);
    const atRest = async () => Sealer.open(new FileKeyEncryptionKey(join(mkdtempSync(join(tmpdir(), 'opendip-mpan-kek-')), 'kek.key')), ctx.backend.dataKeys);
    const stored = async () => (await ctx.storedMpans!()).sort();

    it('keeps MPAN appointment history per slot, folding changes in order', async () => {
      const store = ctx.backend.mpan;
      const mpan = '1200000000009';
      await store.applyAppointments([
        { kind: 'appoint', mpan, slot: 'SUP', dipId: 'OLD', fromMs: 1000, toMs: null },
        { kind: 'appoint', mpan, slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null },
        { kind: 'appoint', mpan, slot: 'SUP', dipId: 'NEW', fromMs: 5000, toMs: null },
      ]);
      expect(await store.mpanHistory(mpan)).toEqual([
        { mpan, slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null },
        { mpan, slot: 'SUP', dipId: 'OLD', fromMs: 1000, toMs: 4999 },
        { mpan, slot: 'SUP', dipId: 'NEW', fromMs: 5000, toMs: null },
      ]);
      await store.applyAppointments([{ kind: 'end', mpan, slot: 'SUP', dipId: 'NEW', toMs: 9000 }]);
      expect((await store.mpanHistory(mpan)).at(-1)).toEqual({ mpan, slot: 'SUP', dipId: 'NEW', fromMs: 5000, toMs: 9000 });
      expect(await store.mpanHistory('1200000000010')).toEqual([]);
    });

    it('keeps MPANs in clear where nothing seals at rest', async () => {
      ctx.backend.useSealer(NOT_SEALING);
      await ctx.backend.mpan.applyAppointments([{ kind: 'appoint', mpan: '1200000000009', slot: 'SUP', dipId: 'S1', fromMs: 0, toMs: null }]);
      expect(await stored()).toEqual(['1200000000009']);
      expect(await ctx.backend.mpan.indexStoredMpans()).toBe(0);
      expect(await stored()).toEqual(['1200000000009']);
    });

    it('stores only the at-rest index hash of an MPAN when encryption at rest is on, and finds the history by the MPAN', async () => {
      const sealer = await atRest();
      ctx.backend.useSealer(sealer);
      const mpan = '1200000000009';
      await ctx.backend.mpan.applyAppointments([
        { kind: 'appoint', mpan, slot: 'SUP', dipId: 'S1', fromMs: 0, toMs: null },
        { kind: 'appoint', mpan, slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null },
        { kind: 'appoint', mpan, slot: 'SUP', dipId: 'S2', fromMs: 5000, toMs: null },
      ]);
      const rows = await stored();
      expect(rows).toEqual([sealer.index(mpan), sealer.index(mpan), sealer.index(mpan)]);
      expect(rows.filter((m) => /\d{13}/.test(m))).toEqual([]);
      expect(await ctx.backend.mpan.mpanHistory(mpan)).toEqual([
        { mpan, slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null },
        { mpan, slot: 'SUP', dipId: 'S1', fromMs: 0, toMs: 4999 },
        { mpan, slot: 'SUP', dipId: 'S2', fromMs: 5000, toMs: null },
      ]);
      await sealer.rotate();
      expect((await ctx.backend.mpan.mpanHistory(mpan)).length, 'rotating the data key does not re-key the index').toBe(3);
    });

    it('rewrites MPANs stored in clear into the index hash once encryption at rest is on, in batches, once', async () => {
      ctx.backend.useSealer(NOT_SEALING);
      const mpans = ['1200000000001', '1200000000002', '1200000000003', '1200000000004', '1200000000005'];
      await ctx.backend.mpan.applyAppointments(mpans.flatMap((mpan, i) => [
        { kind: 'appoint' as const, mpan, slot: 'SUP' as const, dipId: `S${i}`, fromMs: 0, toMs: null },
        { kind: 'appoint' as const, mpan, slot: 'SUP' as const, dipId: `T${i}`, fromMs: 100, toMs: null },
      ]));
      const before = await Promise.all(mpans.map((m) => ctx.backend.mpan.mpanHistory(m)));
      const sealer = await atRest();
      ctx.backend.useSealer(sealer);
      // One MPAN already written under the hash (a node on this build, before the rewrite reached it).
      await ctx.backend.mpan.applyAppointments([{ kind: 'appoint', mpan: '1200000000006', slot: 'LDSO', dipId: 'L1', fromMs: 0, toMs: null }]);
      expect(await ctx.backend.mpan.indexStoredMpans(2)).toBe(10);
      const rows = await stored();
      expect(rows).toHaveLength(11);
      expect(rows.filter((m) => /\d{13}/.test(m))).toEqual([]);
      expect(await Promise.all(mpans.map((m) => ctx.backend.mpan.mpanHistory(m)))).toEqual(before);
      expect(await ctx.backend.mpan.mpanHistory('1200000000006')).toHaveLength(1);
      // Done once: a clear row appearing afterwards (only a build before this one writes one) is left alone.
      ctx.backend.useSealer(NOT_SEALING);
      await ctx.backend.mpan.applyAppointments([{ kind: 'appoint', mpan: '1200000000007', slot: 'SUP', dipId: 'S7', fromMs: 0, toMs: null }]);
      ctx.backend.useSealer(sealer);
      expect(await ctx.backend.mpan.indexStoredMpans(2)).toBe(0);
      expect(await stored()).toContain('1200000000007');
    });
  });
}
