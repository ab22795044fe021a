import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { registerParticipant, rotateCertificateJournalled, type JournalledAct } from '../src/pipeline/participants.js';
import type { Backend } from '../src/ports/backend.js';
import { ensurePki, issueParticipantCertificate, type KeyAndCert } from '../src/security/pki.js';
import { FakeClock } from './helpers/clocks.js';

/**
 * The operator's acts at the command line (`dip participant add`, `dip participant rotate-cert`) changed
 * the registry and left no journal entry (spec 8.3: every administrative act says who, what, before and
 * after): an auditor saw only the register's `register.update` for a participant whose API key was issued.
 */
describe('participant registration and certificate rotation outside the operator API are journalled', () => {
  let backend: Backend;
  let first: KeyAndCert;
  let second: KeyAndCert;
  let provider: KeyAndCert;
  const clock = new FakeClock(Date.parse('2026-12-06T05:00:00Z'));
  const by = (): JournalledAct => ({ journal: backend.journal, actor: 'cli:alice', now: () => clock.now() });
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-cli-journal-'));
    const { ca } = await ensurePki(join(dir, 'pki'), { environment: 'DEV', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    first = await issueParticipantCertificate(ca, { organisation: 'Org A', dipIds: ['1000000002'], environment: 'DEV', validDays: 30 });
    second = await issueParticipantCertificate(ca, { organisation: 'Org A', dipIds: ['1000000002'], environment: 'DEV', validDays: 30 });
    provider = await issueParticipantCertificate(ca, { organisation: 'Provider', dipIds: ['5000000001'], environment: 'DEV', validDays: 30 });
    backend = openSqliteBackend(join(dir, 'dip.db'), { clock });
  }, 60_000);
  afterAll(async () => backend?.close());

  const journalOf = async (target: string) => (await backend.journal.entries({ target, limit: 20 })).reverse().map((e) => ({ actor: e.actor, action: e.action, before: e.before, after: e.after }));

  it('journals the registration (an API key issued, never the key), a re-registration with its before, a nomination, and the rotation', async () => {
    const made = await registerParticipant(backend.registry, { dipId: '1000000002', roles: ['SUP'], organisation: 'Org A', certificatePem: first.certPem }, by());
    await registerParticipant(backend.registry, { dipId: '5000000001', roles: ['DCP'], certificatePem: provider.certPem }, by());
    await clock.advance(1_000);
    await registerParticipant(backend.registry, { dipId: '1000000002', roles: ['SUP', 'OBS'], organisation: 'Org A', certificatePem: first.certPem, connectionProvider: '5000000001' }, by());
    await registerParticipant(backend.registry, { dipId: '1000000002', roles: ['SUP', 'OBS'], organisation: 'Org A', certificatePem: first.certPem, connectionProvider: null }, by());
    await clock.advance(1_000);
    const rotated = await rotateCertificateJournalled(backend.registry, { dipId: '1000000002', certificatePem: second.certPem, overlapMs: 86_400_000, now: new Date(clock.now()) }, by());

    const entries = await journalOf('1000000002');
    expect(entries.map((e) => [e.actor, e.action])).toEqual([
      ['cli:alice', 'participant.register'],
      ['cli:alice', 'participant.register'],
      ['cli:alice', 'participant.register'],
      ['cli:alice', 'participant.connection-provider.withdraw'],
      ['cli:alice', 'participant.certificate.rotate'],
    ]);
    const fingerprint = made.participant.certificateFingerprint;
    expect(entries[0]!.before).toBeNull();
    expect(entries[0]!.after).toEqual({ roles: ['SUP'], organisation: 'Org A', certificateFingerprint: fingerprint, connectionProvider: null, apiKey: 'issued' });
    expect(entries[1]!.before).toEqual({ roles: ['SUP'], organisation: 'Org A', certificateFingerprint: fingerprint, connectionProvider: null });
    expect(entries[1]!.after).toMatchObject({ roles: ['SUP', 'OBS'], connectionProvider: '5000000001', apiKey: 'a new one issued: the one before no longer works' });
    expect(entries[3]!.before).toEqual({ connectionProvider: '5000000001' });
    expect(entries[4]!.before).toEqual({ certificateFingerprint: fingerprint });
    expect(entries[4]!.after).toEqual({ certificateFingerprint: rotated.certificateFingerprint, previousValidUntil: new Date(clock.now() + 86_400_000).toISOString() });
    // The key itself is never written to the journal.
    expect(JSON.stringify(await backend.journal.entries({ limit: 50 }))).not.toContain(made.apiKey);
  });
});
