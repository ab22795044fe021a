/**
 * Offboarding a DIP Connection Provider withdraws its clients' nominations (ParticipantLifecycle). A client
 * changed by another writer while the offboarding runs (its certificate rotated, its nomination moved to
 * another provider) keeps that change: the withdrawal writes the nomination alone, and only while it still
 * names the provider offboarded.
 */

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { emptyProfile, type Participant } from '../src/domain/participant.js';
import { ParticipantLifecycle, REGISTER_RECORD } from '../src/pipeline/participant-lifecycle.js';
import { PROFILE_RECORD, Registry } from '../src/pipeline/registry.js';
import type { RegistryStore } from '../src/ports/registry.js';
import type { Backend } from '../src/ports/backend.js';
import { FakeClock } from './helpers/clocks.js';
import { quietLogger } from './helpers/dip-harness.js';
import { racingStore } from './helpers/racing-store.js';

const participant = (dipId: string, roles: string[], connectionProvider: string | null): Participant => ({
  dipId,
  roles,
  organisation: dipId,
  certificatePem: `PEM ${dipId}`,
  certificateFingerprint: `FP ${dipId}`,
  createdAt: 1,
  connectionProvider,
});

describe('offboarding a connection provider, its clients changed meanwhile', () => {
  let backend: Backend | undefined;
  afterEach(async () => {
    await backend?.close();
    backend = undefined;
  });

  it("withdraws only the nominations still naming it, and keeps the rest of each client's row as another writer left it", async () => {
    const clock = new FakeClock();
    const b = (backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-lifecycle-')), 'dip.db'), { clock }));
    const store = b.registry;
    const [dcp, other, rotated, renominated, untouched] = ['DCP0000001', 'DCP0000002', 'SUP0000001', 'SUP0000002', 'SUP0000003'];
    await store.upsertParticipant(participant(dcp, ['DCP'], null), 'k0');
    await store.upsertParticipant(participant(other, ['DCP'], null), 'k1');
    for (const [i, id] of [rotated, renominated, untouched].entries()) await store.upsertParticipant(participant(id, ['SUP'], dcp), `k${i + 2}`);
    await store.putWebhook({ recipientDipId: renominated, channel: 'IF-021', url: 'https://other.example/hook', maxMessageCount: 10, maxPayloadKb: 100, registeredBy: other });

    // The other writer, injected through the store: right after the offboarding read the participants, a
    // rotation of one client's certificate and another client's nomination of a second provider commit.
    const { racing, interleave, armed } = racingStore(store);
    interleave(async () => {
      const current = new Map((await store.participants()).map((r) => [r.participant.dipId, r.participant]));
      await store.upsertParticipant({ ...current.get(rotated)!, certificatePem: 'PEM rotated', certificateFingerprint: 'FP rotated' }, null);
      await store.upsertParticipant({ ...current.get(renominated)!, connectionProvider: other }, null);
    });

    const registry = new Registry(store, quietLogger, () => clock.now());
    await registry.refresh();
    const lifecycle = new ParticipantLifecycle({ registry, store: racing, journal: b.journal, clock, logger: quietLogger, revoke: async () => true, afterChange: () => {} });
    const result = await lifecycle.offboard(dcp, 'operator:alice', 'left the market');

    expect(armed()).toBe(false);
    const after = new Map((await store.participants()).map((r) => [r.participant.dipId, r.participant]));
    expect(after.get(rotated)).toMatchObject({ connectionProvider: null, certificatePem: 'PEM rotated', certificateFingerprint: 'FP rotated' });
    expect(after.get(renominated)).toMatchObject({ connectionProvider: other });
    expect(after.get(untouched)).toMatchObject({ connectionProvider: null });
    expect(result.nominationsWithdrawn).toEqual([rotated, untouched]);
    // The second provider's webhook for the client that moved to it stays, and no withdrawal is journalled for that client.
    expect(await store.webhooks()).toMatchObject([{ recipientDipId: renominated, registeredBy: other }]);
    const withdrawals = await b.journal.entries({ action: 'participant.connection-provider.withdraw', limit: 10 });
    expect(withdrawals.map((e) => e.target).sort()).toEqual([rotated, untouched]);
  });
});

describe('the register reconcile, a role joined meanwhile', () => {
  let backend: Backend | undefined;
  afterEach(async () => {
    await backend?.close();
    backend = undefined;
  });

  it('grants what the register gives and keeps a role the participant joined between its read and its write', async () => {
    const clock = new FakeClock(1_000_000);
    const b = (backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-lifecycle-')), 'dip.db'), { clock }));
    const store = b.registry;
    const sup = 'SUP0000001';
    await store.upsertParticipant(participant(sup, ['SUP'], null), 'k0');
    // Right after the reconcile reads the roles (SUP), the participant joins MDS as self-service does: its
    // profile's optional roles first, then its roles.
    const { racing, interleave, armed } = racingStore(store);
    interleave(async () => {
      await store.putRecord({ kind: PROFILE_RECORD, key: sup, doc: { ...emptyProfile(sup), optionalRoles: ['MDS'] }, at: 1, by: sup }, 0);
      expect(await store.setRoles(sup, ['SUP'], ['MDS', 'SUP'])).toBe(true);
    });
    const registry = new Registry(store, quietLogger, () => clock.now());
    await registry.refresh();
    const lifecycle = new ParticipantLifecycle({ registry, store: racing, journal: b.journal, clock, logger: quietLogger, revoke: async () => true, afterChange: () => {} });
    const from = new Date(clock.now() - 60_000).toISOString();
    const result = await lifecycle.apply(
      { companyRegNumber: '12345678', companyDetails: ['SUP', 'LDSO'].map((role) => ({ MPID: 'ABCD', marketRole: 'X', DIPID: sup, DIPRole: role, datetimeFrom: from, datetimeTo: null })) },
      'test',
    );

    expect(armed()).toBe(false);
    expect(result.rolesChanged).toEqual([{ dipId: sup, granted: ['LDSO'], revoked: [] }]);
    expect((await store.participants()).find((r) => r.participant.dipId === sup)!.participant.roles).toEqual(['LDSO', 'MDS', 'SUP']);
  });

  // The pass decided from the registry's cache: roles another writer changed after the cache was read and
  // before the decision (another node's pass on an older register entry) looked right already, so nothing
  // was written and the participant lacked a role the register gives it until the next pass, a minute on.
  it('decides from the roles as stored, not as cached: roles changed after the cache was read are brought in line in the same pass', async () => {
    const clock = new FakeClock(1_000_000);
    const b = (backend = openSqliteBackend(join(mkdtempSync(join(tmpdir(), 'opendip-lifecycle-')), 'dip.db'), { clock }));
    const store = b.registry;
    const sup = 'SUP0000002';
    await store.upsertParticipant(participant(sup, ['LDSO', 'SUP'], null), 'k0');
    const registry = new Registry(store, quietLogger, () => clock.now());
    await registry.refresh();
    // Right after the pass reads the register's entries (its cache refreshed: LDSO, SUP), another writer takes LDSO away.
    let pending: (() => Promise<void>) | null = async () => {
      expect(await store.setRoles(sup, ['LDSO', 'SUP'], ['SUP'])).toBe(true);
    };
    const racing = Object.create(store, {
      records: {
        value: async (kind: string) => {
          const read = await store.records(kind);
          const then = kind === REGISTER_RECORD && read.length > 0 ? pending : null;
          if (then) pending = null;
          await then?.();
          return read;
        },
      },
    }) as RegistryStore;
    const lifecycle = new ParticipantLifecycle({ registry, store: racing, journal: b.journal, clock, logger: quietLogger, revoke: async () => true, afterChange: () => {} });
    const from = new Date(clock.now() - 60_000).toISOString();
    const result = await lifecycle.apply(
      { companyRegNumber: '12345678', companyDetails: ['SUP', 'LDSO'].map((role) => ({ MPID: 'ABCD', marketRole: 'X', DIPID: sup, DIPRole: role, datetimeFrom: from, datetimeTo: null })) },
      'test',
    );

    expect(pending).toBeNull();
    expect((await store.participants()).find((r) => r.participant.dipId === sup)!.participant.roles).toEqual(['LDSO', 'SUP']);
    expect(result.rolesChanged).toEqual([{ dipId: sup, granted: ['LDSO'], revoked: [] }]);
  });
});
