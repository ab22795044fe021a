import { describe, expect, it } from 'vitest';
import { useBackend, type BackendFactory } from './fixtures.js';

export function registryContract(name: string, open: BackendFactory): void {
  describe(`RegistryStore contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('keeps participants and webhooks, and its version and change feed move on every change', async () => {
      const store = ctx.backend.registry;
      let told = 0;
      const stop = store.watch(() => (told += 1));
      const v0 = await store.version();
      const p = { dipId: 'SUP0000001', roles: ['SUP'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null };
      await store.upsertParticipant(p, 'hash-1');
      await store.upsertParticipant({ ...p, roles: ['SUP', 'LDSO'] }, null);
      expect(await store.participants()).toEqual([{ participant: { ...p, roles: ['SUP', 'LDSO'] }, apiKeyHash: 'hash-1' }]);
      await expect(store.upsertParticipant({ ...p, dipId: 'NEW0000001' }, null)).rejects.toThrow(/API key/);
      // A rotation keeps the replaced certificate until the end of its overlap, and the API key.
      const rotated = { ...p, certificatePem: 'PEM2', certificateFingerprint: 'CD', previous: { certificatePem: 'PEM', certificateFingerprint: 'AB', validUntil: 1_000 } };
      await store.upsertParticipant(rotated, null);
      expect(await store.participants()).toEqual([{ participant: rotated, apiKeyHash: 'hash-1' }]);
      await store.upsertParticipant({ ...p, roles: ['SUP', 'LDSO'] }, null);
      expect((await store.participants())[0]?.participant).not.toHaveProperty('previous');
      await store.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://a', maxMessageCount: 10, maxPayloadKb: 100 });
      await store.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://b', maxMessageCount: 5, maxPayloadKb: 50 });
      expect(await store.webhooks()).toEqual([{ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://b', maxMessageCount: 5, maxPayloadKb: 50 }]);
      expect(await store.deleteWebhook('SUP0000001', 'IF-021')).toBe(true);
      expect(await store.deleteWebhook('SUP0000001', 'IF-021')).toBe(false);
      expect(await store.version()).not.toBe(v0);
      // Changes made through this store are told at once (others' within the engine's feed delay).
      expect(told).toBeGreaterThan(0);
      stop();
    });
  });
}
