import { describe, expect, it } from 'vitest';
import { RecordConflictError } from '../../src/ports/registry.js';
import { useBackend, type BackendFactory } from './fixtures.js';

export function registryContract(name: string, open: BackendFactory): void {
  describe(`RegistryStore contract: ${name}`, () => {
    const ctx = useBackend(open);

    it('inserts a new participant only: one registered already is left as it is, key and all', async () => {
      const store = ctx.backend.registry;
      const p = { dipId: 'SUP0000009', roles: ['SUP'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: 'DCP0000001' };
      expect(await store.insertParticipant(p, 'hash-1')).toBe(true);
      const v = await store.version();
      expect(await store.insertParticipant({ ...p, certificatePem: 'PEM2', connectionProvider: null }, 'hash-2')).toBe(false);
      expect(await store.version()).toBe(v);
      expect((await store.participants()).filter((r) => r.participant.dipId === p.dipId)).toEqual([{ participant: p, apiKeyHash: 'hash-1' }]);
    });

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
      await store.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://a', maxMessageCount: 10, maxPayloadKb: 100, registeredBy: 'DCP0000001' });
      // Replaced whole: who registered it too (the recipient took it over from its provider).
      await store.putWebhook({ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://b', maxMessageCount: 5, maxPayloadKb: 50, registeredBy: 'SUP0000001' });
      expect(await store.webhooks()).toEqual([{ recipientDipId: 'SUP0000001', channel: 'IF-021', url: 'https://b', maxMessageCount: 5, maxPayloadKb: 50, registeredBy: 'SUP0000001' }]);
      expect(await store.deleteWebhook('SUP0000001', 'IF-021')).toBe(true);
      expect(await store.deleteWebhook('SUP0000001', 'IF-021')).toBe(false);
      expect(await store.version()).not.toBe(v0);
      // Changes made through this store are told at once (others' within the engine's feed delay).
      expect(told).toBeGreaterThan(0);
      stop();
    });

    it('sets a connection provider only while it is the one expected, writing nothing else of the row', async () => {
      const store = ctx.backend.registry;
      const p = { dipId: 'SUP0000011', roles: ['SUP'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: 'DCP0000001' };
      await store.upsertParticipant(p, 'hash-11');
      const v = await store.version();
      expect(await store.setConnectionProvider(p.dipId, 'DCP0000002', null)).toBe(false);
      expect(await store.setConnectionProvider('SUP0000099', null, 'DCP0000001')).toBe(false);
      expect(await store.version()).toBe(v);
      await store.upsertParticipant({ ...p, certificatePem: 'PEM2' }, null);
      expect(await store.setConnectionProvider(p.dipId, 'DCP0000001', null)).toBe(true);
      expect(await store.setConnectionProvider(p.dipId, null, 'DCP0000002')).toBe(true);
      expect(await store.version()).toBeGreaterThan(v);
      expect((await store.participants()).filter((r) => r.participant.dipId === p.dipId)).toEqual([{ participant: { ...p, certificatePem: 'PEM2', connectionProvider: 'DCP0000002' }, apiKeyHash: 'hash-11' }]);
    });

    // A roles column stored non-canonically ('SUP,', as an empty role wrote it) reads as ['SUP']: compared
    // as stored, every change to it was refused as changed meanwhile.
    it('sets roles stored non-canonically against the roles they read as', async () => {
      const store = ctx.backend.registry;
      const p = { dipId: 'SUP0000014', roles: ['SUP', ''], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null };
      await store.upsertParticipant(p, 'hash-14');
      const read = (await store.participants()).find((r) => r.participant.dipId === p.dipId)!.participant.roles;
      expect(read).toEqual(['SUP']);
      expect(await store.setRoles(p.dipId, ['MDS'], ['MDS', 'SUP'])).toBe(false);
      expect(await store.setRoles(p.dipId, read, ['MDS', 'SUP'])).toBe(true);
      expect((await store.participants()).find((r) => r.participant.dipId === p.dipId)!.participant.roles).toEqual(['MDS', 'SUP']);
    });

    // Self-service and the register wrote the whole row from an earlier read: a nomination, rotation or role
    // change made in between was undone. Each column now changes only while it is what the writer read.
    it('sets roles, certificate and API key hash only while each is the one expected, writing nothing else of the row', async () => {
      const store = ctx.backend.registry;
      const p = { dipId: 'SUP0000012', roles: ['SUP', 'LDSO'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null };
      await store.upsertParticipant(p, 'hash-12');
      const v = await store.version();
      expect(await store.setRoles(p.dipId, ['SUP'], ['SUP', 'MDS'])).toBe(false);
      expect(await store.setCertificate(p.dipId, 'ZZ', { certificatePem: 'PEM2', certificateFingerprint: 'CD' })).toBe(false);
      const overlap = { kind: 'profile', key: p.dipId, doc: { previousApiKey: 'hash-12' }, at: 2, by: 'SUP0000012' };
      expect(await store.setApiKeyHash(p.dipId, 'hash-0', 'hash-13', overlap, 0)).toBe(false);
      expect(await store.setRoles('SUP0000099', ['SUP'], ['MDS'])).toBe(false);
      expect(await store.version()).toBe(v);
      expect(await store.setConnectionProvider(p.dipId, null, 'DCP0000001')).toBe(true);
      expect(await store.setRoles(p.dipId, ['SUP', 'LDSO'], ['LDSO', 'SUP', 'MDS'])).toBe(true);
      const previous = { certificatePem: 'PEM', certificateFingerprint: 'AB', validUntil: 5_000 };
      expect(await store.setCertificate(p.dipId, 'AB', { certificatePem: 'PEM2', certificateFingerprint: 'CD', previous })).toBe(true);
      expect(await store.setApiKeyHash(p.dipId, 'hash-12', 'hash-13', overlap, 0)).toBe(true);
      expect(await store.records('profile')).toEqual([{ ...overlap, version: 1 }]);
      expect(await store.version()).toBeGreaterThan(v);
      expect((await store.participants()).filter((r) => r.participant.dipId === p.dipId)).toEqual([
        { participant: { ...p, roles: ['LDSO', 'SUP', 'MDS'], connectionProvider: 'DCP0000001', certificatePem: 'PEM2', certificateFingerprint: 'CD', previous }, apiKeyHash: 'hash-13' },
      ]);
      // Without an overlap the replaced certificate is not kept.
      expect(await store.setCertificate(p.dipId, 'CD', { certificatePem: 'PEM3', certificateFingerprint: 'EF' })).toBe(true);
      expect((await store.participants()).find((r) => r.participant.dipId === p.dipId)?.participant).not.toHaveProperty('previous');
    });

    // The key's swap and the old key's overlap were two writes: a node refreshing in between refused the old
    // key, and a failure in between left no overlap at all. Both or neither now, whichever part is refused.
    it('swaps an API key and writes its record in one transaction: a stale key or a stale record version writes neither', async () => {
      const store = ctx.backend.registry;
      const p = { dipId: 'SUP0000014', roles: ['SUP'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null };
      await store.upsertParticipant(p, 'hash-14');
      const profile = (doc: unknown, at: number) => ({ kind: 'profile', key: p.dipId, doc, at, by: p.dipId });
      await store.putRecord(profile({ n: 1 }, 1), 0);
      const v = await store.version();
      await expect(store.setApiKeyHash(p.dipId, 'hash-14', 'hash-15', profile({ n: 2 }, 2), 0)).rejects.toBeInstanceOf(RecordConflictError);
      expect(await store.setApiKeyHash(p.dipId, 'hash-0', 'hash-15', profile({ n: 2 }, 2), 1)).toBe(false);
      expect(await store.version()).toBe(v);
      expect((await store.participants()).find((r) => r.participant.dipId === p.dipId)?.apiKeyHash).toBe('hash-14');
      expect((await store.recordHistory('profile', p.dipId)).map((r) => r.doc)).toEqual([{ n: 1 }]);
      expect(await store.setApiKeyHash(p.dipId, 'hash-14', 'hash-15', profile({ n: 2 }, 2), 1)).toBe(true);
      expect(await store.version()).toBeGreaterThan(v);
      expect((await store.participants()).find((r) => r.participant.dipId === p.dipId)?.apiKeyHash).toBe('hash-15');
      expect((await store.recordHistory('profile', p.dipId)).map((r) => r.doc)).toEqual([{ n: 1 }, { n: 2 }]);
    });

    it('keeps versioned records: a put on a stale version is refused, history stays, the feed moves', async () => {
      const store = ctx.backend.registry;
      let told = 0;
      const stop = store.watch(() => (told += 1));
      const v0 = await store.version();
      const first = await store.putRecord({ kind: 'channel', key: 'IF-021', doc: { state: 'active', settings: { receiverRoles: ['SUP'] } }, at: 1, by: 'operator:alice' }, 0);
      expect(first.version).toBe(1);
      await expect(store.putRecord({ kind: 'channel', key: 'IF-021', doc: {}, at: 2, by: 'x' }, 0)).rejects.toBeInstanceOf(RecordConflictError);
      await store.putRecord({ kind: 'channel', key: 'IF-021', doc: { state: 'paused', settings: {} }, at: 3, by: 'operator:bob' }, 1);
      await store.putRecord({ kind: 'channel', key: 'IF-019', doc: { state: 'active' }, at: 4, by: 'operator:bob' }, 0);
      await store.putRecord({ kind: 'profile', key: 'IF-021', doc: 'other kind', at: 5, by: 'register' }, 0);
      expect(await store.records('channel')).toEqual([
        { kind: 'channel', key: 'IF-019', version: 1, doc: { state: 'active' }, at: 4, by: 'operator:bob' },
        { kind: 'channel', key: 'IF-021', version: 2, doc: { state: 'paused', settings: {} }, at: 3, by: 'operator:bob' },
      ]);
      expect((await store.recordHistory('channel', 'IF-021')).map((r) => [r.version, r.by])).toEqual([
        [1, 'operator:alice'],
        [2, 'operator:bob'],
      ]);
      expect(await store.version()).not.toBe(v0);
      expect(told).toBeGreaterThan(0);
      stop();
    });

    it('removes a participant with its webhooks (offboarding)', async () => {
      const store = ctx.backend.registry;
      const p = { dipId: 'SUP0000002', roles: ['SUP'], organisation: 'Acme', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null };
      await store.upsertParticipant(p, 'hash-2');
      await store.putWebhook({ recipientDipId: 'SUP0000002', channel: 'IF-021', url: 'https://a', maxMessageCount: 10, maxPayloadKb: 100, registeredBy: 'SUP0000002' });
      expect(await store.removeParticipant('SUP0000002')).toBe(true);
      expect(await store.removeParticipant('SUP0000002')).toBe(false);
      expect(await store.participants()).toEqual([]);
      expect(await store.webhooks()).toEqual([]);
    });

    it('journals operator acts append-only, newest first, filtered', async () => {
      const j = ctx.backend.journal;
      const a = await j.append({ at: 10, actor: 'operator:alice', action: 'channel.pause', target: 'IF-021', before: { state: 'active' }, after: { state: 'paused' }, status: 200 });
      const b = await j.append({ at: 11, actor: 'operator:bob', action: 'channel.resume', target: 'IF-021', before: null, after: null, status: null });
      expect(b).toBeGreaterThan(a);
      expect((await j.entries({ limit: 10 })).map((e) => e.id)).toEqual([b, a]);
      expect(await j.entries({ actor: 'operator:alice', limit: 10 })).toEqual([
        { id: a, at: 10, actor: 'operator:alice', action: 'channel.pause', target: 'IF-021', before: { state: 'active' }, after: { state: 'paused' }, status: 200 },
      ]);
      expect((await j.entries({ target: 'IF-021', beforeId: b, limit: 10 })).map((e) => e.id)).toEqual([a]);
    });
  });
}
