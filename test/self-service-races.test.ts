/**
 * Self-service changes one thing of a participant's registration (its nomination, its roles, its certificate,
 * its API key) while other writers change others: an operator renewing its certificate, the central
 * register moving its roles, another administrator nominating a provider. Each change writes its own column
 * and only while that column is what the change was decided on (a compare-and-set), so another writer's
 * change made in between is never undone; a conflict on the same column retries (roles) or is answered
 * 409 (a nomination, a certificate) for the caller to decide again. On both engines.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '../src/adapters/clock.js';
import { openPostgresBackend } from '../src/adapters/postgres/index.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { loadConfig } from '../src/config.js';
import type { Participant } from '../src/domain/participant.js';
import { ParticipantLifecycle } from '../src/pipeline/participant-lifecycle.js';
import { Registry } from '../src/pipeline/registry.js';
import { SelfService } from '../src/pipeline/self-service.js';
import type { Backend } from '../src/ports/backend.js';
import type { RegistryStore } from '../src/ports/registry.js';
import { hashApiKey } from '../src/security/api-key.js';
import { ensurePki, issueParticipantCertificate, type PkiMaterial } from '../src/security/pki.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';
import { racingStore } from './helpers/racing-store.js';
import { createTestDatabase, type TestDatabase } from './helpers/postgres.js';

const SUP = '1000000001';
const DCP = '9000000001';
const OTHER_DCP = '9000000002';

let pki: PkiMaterial;
let pg: TestDatabase;
beforeAll(async () => {
  const config = loadConfig({}, { dataDir: mkdtempSync(join(tmpdir(), 'opendip-races-pki-')) });
  pki = await ensurePki(join(config.dataDir, 'pki'), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  pg = await createTestDatabase();
}, 60_000);
afterAll(async () => {
  await pg?.drop();
});

const certificateFor = async (dipId: string): Promise<string> =>
  (await issueParticipantCertificate(pki.ca, { organisation: `Org ${dipId}`, dipIds: [dipId], environment: loadConfig({}).environment, validDays: 30 })).certPem;

// Registered certificates are issued once (RSA keys are slow to make); renewals get fresh ones.
const registered = new Map<string, Promise<string>>();
const registeredCertificate = (dipId: string): Promise<string> => {
  if (!registered.has(dipId)) registered.set(dipId, certificateFor(dipId));
  return registered.get(dipId)!;
};

const engines: Array<[string, () => Promise<Backend>]> = [
  ['SQLite', async () => openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-races-')), 'dip.db'), { clock: new FakeClock(1_000_000) })],
  ['PostgreSQL', async () => openPostgresBackend({ url: await pg.freshSchema(), clock: systemClock })],
];

describe.each(engines)('self-service against another writer: %s', (_name, open) => {
  let backend: Backend | undefined;
  afterEach(async () => {
    await backend?.close();
    backend = undefined;
  });

  /**
   * A SelfService whose store lets `interleave` (another writer) commit right after the next read of the
   * participants, and a registry read before it: what the portal or API call decided on.
   */
  async function setUp(): Promise<{
    store: RegistryStore;
    self: SelfService;
    selfOver: (s: RegistryStore) => SelfService;
    registry: Registry;
    journal: Backend['journal'];
    stale: (dipId: string) => Participant;
    interleave: (f: () => Promise<void>) => void;
  }> {
    const b = (backend = await open());
    const store = b.registry;
    const clock = new FakeClock(1_000_000);
    for (const [dipId, roles] of [[SUP, ['SUP']], [DCP, ['DCP']], [OTHER_DCP, ['DCP']]] as const) {
      await store.upsertParticipant({ dipId, roles: [...roles], organisation: `Org ${dipId}`, certificatePem: await registeredCertificate(dipId), certificateFingerprint: `FP ${dipId}`, createdAt: 1, connectionProvider: null }, `key-${dipId}`);
    }
    const { racing, interleave } = racingStore(store);
    const registry = new Registry(store, quietLogger, () => clock.now());
    await registry.refresh();
    /** A SelfService (and the lifecycle it writes profiles through) over `s`. */
    const selfOver = (s: RegistryStore): SelfService => {
      const lifecycle = new ParticipantLifecycle({ registry, store: s, journal: b.journal, clock, logger: quietLogger, revoke: async () => true, afterChange: () => {} });
      return new SelfService({
        registry,
        lifecycle,
        store: s,
        journal: b.journal,
        now: () => clock.now(),
        optionalRoles: () => lifecycle.optionalRoles(),
        optInChannels: () => [],
        issueCertificate: (_csr, dipId) => certificateFor(dipId),
        trustedCaPems: () => [pki.ca.certPem],
      });
    };
    await new ParticipantLifecycle({ registry, store, journal: b.journal, clock, logger: quietLogger, revoke: async () => true, afterChange: () => {} }).setOptionalRoles(['MDS'], 'operator:alice');
    const stale = (dipId: string): Participant => registry.participant(dipId)!;
    return { store, self: selfOver(racing), selfOver, registry, journal: b.journal, stale, interleave };
  }
  const row = async (store: RegistryStore, dipId: string) => (await store.participants()).find((r) => r.participant.dipId === dipId)!;

  it('a nomination leaves a certificate an operator renewed meanwhile; a nomination changed meanwhile is answered 409', async () => {
    const { store, self, stale } = await setUp();
    const seen = stale(SUP);
    // The operator renews the certificate after the participant's call read its registration.
    const renewed = await certificateFor(SUP);
    expect(await store.setCertificate(SUP, seen.certificateFingerprint, { certificatePem: renewed, certificateFingerprint: 'FP renewed' })).toBe(true);
    await self.nominate(seen, DCP);
    expect((await row(store, SUP)).participant).toMatchObject({ connectionProvider: DCP, certificatePem: renewed, certificateFingerprint: 'FP renewed' });
    // Another administrator nominated a provider after this one's page was read: not silently replaced.
    await expect(self.nominate(seen, OTHER_DCP)).rejects.toMatchObject({ status: 409, message: expect.stringMatching(/changed meanwhile.*9000000001/) });
    expect((await row(store, SUP)).participant.connectionProvider).toBe(DCP);
  });

  it('a role sign-up leaves a nomination and a certificate made meanwhile, and keeps a role the register gave meanwhile', async () => {
    const { store, self, stale } = await setUp();
    const seen = stale(SUP);
    expect(await store.setConnectionProvider(SUP, null, DCP)).toBe(true);
    expect(await store.setRoles(SUP, ['SUP'], ['SUP', 'LDSO'])).toBe(true);
    const view = await self.joinRole(seen, 'MDS');
    expect((await row(store, SUP)).participant).toMatchObject({ connectionProvider: DCP, roles: ['LDSO', 'MDS', 'SUP'] });
    expect(view.roles).toEqual(['LDSO', 'MDS', 'SUP']);
    await self.leaveRole(stale(SUP), 'MDS');
    expect((await row(store, SUP)).participant).toMatchObject({ connectionProvider: DCP, roles: ['LDSO', 'SUP'] });
  });

  it('a certificate renewal leaves a nomination made between its read and its write; a rotation meanwhile is answered 409', async () => {
    const { store, self, stale, interleave } = await setUp();
    interleave(async () => {
      expect(await store.setConnectionProvider(SUP, null, DCP)).toBe(true);
    });
    const first = await self.newCertificate(stale(SUP), 'CSR', 86_400_000);
    expect((await row(store, SUP)).participant).toMatchObject({ connectionProvider: DCP, certificateFingerprint: first.fingerprint });
    // Another renewal commits between this one's read and its write: this one would replace it (and its overlap).
    const other = await certificateFor(SUP);
    interleave(async () => {
      expect(await store.setCertificate(SUP, first.fingerprint, { certificatePem: other, certificateFingerprint: 'FP other' })).toBe(true);
    });
    await expect(self.newCertificate(stale(SUP), 'CSR', 86_400_000)).rejects.toMatchObject({ status: 409, message: expect.stringMatching(/rotated meanwhile/) });
    expect((await row(store, SUP)).participant).toMatchObject({ connectionProvider: DCP, certificateFingerprint: 'FP other' });
  });

  it('an API key rotation leaves a nomination made between its read and its write', async () => {
    const { store, self, stale, interleave } = await setUp();
    interleave(async () => {
      expect(await store.setConnectionProvider(SUP, null, DCP)).toBe(true);
    });
    await self.rotateApiKey(stale(SUP), 0);
    const after = await row(store, SUP);
    expect(after.participant.connectionProvider).toBe(DCP);
    expect(after.apiKeyHash).not.toBe(`key-${SUP}`);
  });

  // The swap and the overlap were two writes: another node refreshing its registry between them refused the
  // old key (the participant's systems not yet moved over were locked out), and a failure of the second left
  // the new key with no overlap at all. One write now, on both engines.
  it('an API key rotation is never seen half done: another node accepts the old key after every write, and a failing profile write locks nobody out', async () => {
    const { store, selfOver, stale } = await setUp();
    const oldKey = 'old-key';
    const registration = (await row(store, SUP)).participant;
    await store.upsertParticipant(registration, hashApiKey(oldKey));
    const otherNode = new Registry(store, quietLogger, () => 1_000_000);
    const seenByOtherNode: Array<string | undefined> = [];
    const watched = (write: 'setApiKeyHash' | 'putRecord') => async (...args: unknown[]) => {
      const done = await (store[write] as (...a: unknown[]) => Promise<unknown>)(...args);
      await otherNode.refresh();
      seenByOtherNode.push(otherNode.byApiKey(oldKey)?.dipId);
      return done;
    };
    const observed = Object.create(store, { setApiKeyHash: { value: watched('setApiKeyHash') }, putRecord: { value: watched('putRecord') } }) as RegistryStore;
    const { apiKey } = await selfOver(observed).rotateApiKey(stale(SUP), 48 * 3_600_000);
    expect(seenByOtherNode.length).toBeGreaterThan(0);
    expect(seenByOtherNode).toEqual(seenByOtherNode.map(() => SUP));
    await otherNode.refresh();
    expect(otherNode.byApiKey(apiKey)?.dipId).toBe(SUP);

    // The profile write fails (a store outage): the old key must still let the participant in.
    const failing = Object.create(store, { putRecord: { value: () => Promise.reject(new Error('store unavailable')) } }) as RegistryStore;
    await selfOver(failing).rotateApiKey(stale(SUP), 48 * 3_600_000).catch(() => undefined);
    await otherNode.refresh();
    expect(otherNode.byApiKey(apiKey)?.dipId).toBe(SUP);
  });

  // The journal entry was a write of its own after the rotation's transaction: a crash (or a journal write
  // failing) between them left a rotation in force that the journal never recorded. One transaction now.
  it('an API key rotation and its journal entry commit together: a journal that fails after the rotation cannot leave it unjournalled', async () => {
    const { store, registry, stale } = await setUp();
    const b = backend!;
    const clock = new FakeClock(1_000_000);
    const lifecycle = new ParticipantLifecycle({ registry, store, journal: b.journal, clock, logger: quietLogger, revoke: async () => true, afterChange: () => {} });
    // The process dies after the rotation's commit, before a separate journal write: modelled by a journal that refuses every write.
    const dying = { ...b.journal, entries: b.journal.entries.bind(b.journal), append: () => Promise.reject(new Error('the process stopped')) };
    const self = new SelfService({ registry, lifecycle, store, journal: dying, now: () => clock.now(), optionalRoles: () => lifecycle.optionalRoles(), optInChannels: () => [], issueCertificate: (_csr, dipId) => certificateFor(dipId), trustedCaPems: () => [pki.ca.certPem] });
    const before = (await row(store, SUP)).apiKeyHash;
    await self.rotateApiKey(stale(SUP), 48 * 3_600_000).catch(() => undefined);
    const rotated = (await row(store, SUP)).apiKeyHash !== before;
    const entries = await b.journal.entries({ action: 'participant.api-key.rotate', limit: 10 });
    // Either both or neither: here the rotation went through, so its entry is there, saying what it did.
    expect({ rotated, journalled: entries.length }).toEqual({ rotated: true, journalled: 1 });
    expect(entries[0]).toMatchObject({ actor: `participant:${SUP}`, target: SUP, after: { apiKey: 'a new one issued', previousApiKeyValidUntil: expect.any(String) } });
  });

  it('a rotation the operator re-registered the key under is answered 409 and leaves no overlap for the leaked key, nor a journal entry', async () => {
    const { store, self, registry, journal, stale, interleave } = await setUp();
    // The leaked key is the registered one; the rotation reads it, then the operator re-registers the participant.
    const seen = stale(SUP);
    const registration = (await row(store, SUP)).participant;
    await store.upsertParticipant(registration, hashApiKey('leaked-key'));
    await registry.refresh();
    expect(registry.byApiKey('leaked-key')?.dipId).toBe(SUP);
    interleave(async () => {
      await store.upsertParticipant(registration, hashApiKey('operator-key'));
    });
    await expect(self.rotateApiKey(seen, 48 * 3_600_000)).rejects.toMatchObject({ status: 409, message: expect.stringMatching(/changed meanwhile \(rotated or re-registered\)/) });
    await registry.refresh();
    expect(registry.byApiKey('leaked-key')).toBeUndefined();
    expect(registry.byApiKey('operator-key')?.dipId).toBe(SUP);
    expect(registry.profile(SUP).profile.previousApiKey ?? null).toBeNull();
    expect(await journal.entries({ action: 'participant.api-key.rotate', limit: 10 })).toEqual([]);
  });
});
