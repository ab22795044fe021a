import { describe, expect, it } from 'vitest';
import { useBackend, type BackendFactory } from './fixtures.js';

export function mpanContract(name: string, open: BackendFactory): void {
  describe(`MpanStore contract: ${name}`, () => {
    const ctx = useBackend(open);

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
  });
}
