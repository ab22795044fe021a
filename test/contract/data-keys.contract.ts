import { describe, expect, it } from 'vitest';
import { useBackend, type BackendFactory } from './fixtures.js';

export function dataKeysContract(name: string, open: BackendFactory): void {
  describe(`DataKeyStore contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('keeps wrapped data keys in order of creation, across a reopen', async () => {
      const before = (await ctx.backend.dataKeys.dataKeys()).length;
      const a = await ctx.backend.dataKeys.addDataKey(Buffer.from('wrapped-a'));
      const b = await ctx.backend.dataKeys.addDataKey(Buffer.from('wrapped-b'));
      expect(b).toBeGreaterThan(a);
      await ctx.backend.close();
      const keys = await (await ctx.reopen()).dataKeys.dataKeys();
      expect(keys.length).toBe(before + 2);
      expect(keys.slice(-2).map((k) => [k.id, k.wrapped.toString()])).toEqual([
        [a, 'wrapped-a'],
        [b, 'wrapped-b'],
      ]);
    });
  });
}
