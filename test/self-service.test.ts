import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { buildIF021 } from '../src/sim/messages.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

describe('participant self-service', () => {
  let t: TestDip;
  let admin: ReturnType<typeof adminApi>;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let ldso: TestParticipant;
  let cp: TestParticipant;
  const call = async (p: TestParticipant | DipClient, method: string, path: string, body?: unknown) => {
    const client = p instanceof DipClient ? p : p.client;
    const a = await client.call<Json>(method, path, body === undefined ? '' : JSON.stringify(body), body === undefined ? {} : { 'content-type': 'application/json' });
    return a;
  };

  beforeAll(async () => {
    t = await startTestDip();
    admin = adminApi(t);
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    ldso = await t.participant('3000000001', ['LDSO']);
    cp = await t.participant('9000000001', ['DCP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('signs up for an optional role and an opt-in channel, and leaves them; the API key stays', async () => {
    expect((await call(ldso, 'PUT', `/participants/${ldso.dipId}/roles/MDS`)).status).toBe(403); // not optional yet
    expect((await admin('PUT', '/admin/optional-roles', { roles: ['MDS'] })).status).toBe(200);
    const joined = await call(ldso, 'PUT', `/participants/${ldso.dipId}/roles/MDS`);
    expect(joined.status, JSON.stringify(joined.body)).toBe(200);
    expect(joined.body).toMatchObject({ roles: ['LDSO', 'MDS'], optionalRoles: ['MDS'], availableOptionalRoles: ['MDS'] });
    expect((await call(ldso, 'DELETE', `/participants/${ldso.dipId}/roles/LDSO`)).status).toBe(403); // not its to leave
    expect((await call(ldso, 'DELETE', `/participants/${ldso.dipId}/roles/MDS`)).body.roles).toEqual(['LDSO']);

    // Opting into IF-021 (once the operator allows it) brings every message on it.
    expect((await call(ldso, 'PUT', `/participants/${ldso.dipId}/channels/IF-021`)).status).toBe(403);
    await admin('PATCH', '/admin/channels/IF-021', { optIn: true });
    expect((await call(ldso, 'PUT', `/participants/${ldso.dipId}/channels/IF-021`)).body.channels).toEqual(['IF-021']);
    const received = await t.receiver();
    expect((await ldso.client.setWebhook('IF-021', ldso.dipId, { callbackURL: received.url })).status).toBe(201);
    expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'ss1' })])).status).toBe(201);
    await waitFor(() => received.calls.length === 1, 5000, 'the opted-in copy');
    expect((await call(ldso, 'DELETE', `/participants/${ldso.dipId}/channels/IF-021`)).body.channels).toEqual([]);
    // The same client, the same API key all along; every change journalled as the participant.
    const journal = (await admin('GET', `/admin/journal?actor=participant:${ldso.dipId}`)).body as Json[];
    expect(journal.map((e) => e.action)).toContain('participant.channel.join');
  });

  // Nominating the provider it has already deleted every webhook registered before providers were recorded
  // (registered_by NULL) as if the provider had changed: a form or script that PUTs the same nomination again
  // silently moved the participant to pull.
  it('changes nothing when the same provider is nominated again: its webhooks stay', async () => {
    const own = await t.participant('1000000009', ['SUP']);
    expect((await call(own, 'PUT', `/participants/${own.dipId}/connection-provider`, { dipId: cp.dipId })).status).toBe(200);
    await t.dip.backend.registry.putWebhook({ recipientDipId: own.dipId, channel: 'IF-021', url: 'https://93.184.215.14/pre-upgrade', maxMessageCount: 10, maxPayloadKb: 100, registeredBy: null });
    const again = await call(own, 'PUT', `/participants/${own.dipId}/connection-provider`, { dipId: cp.dipId });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.removedWebhooks).toEqual([]);
    expect((await t.dip.backend.registry.webhooks()).filter((w) => w.recipientDipId === own.dipId)).toHaveLength(1);
  });

  it('nominates and withdraws a connection provider; a provider cannot nominate for it', async () => {
    const nominated = await call(sup, 'PUT', `/participants/${sup.dipId}/connection-provider`, { dipId: cp.dipId });
    expect(nominated.body).toMatchObject({ connectionProvider: cp.dipId });
    expect((await call(cp, 'GET', `/participants/${sup.dipId}`)).status).toBe(200);
    expect((await call(cp, 'DELETE', `/participants/${sup.dipId}/connection-provider`)).status).toBe(403);
    // What the provider does for the supplier is journalled and logged as the provider's act (the target names the supplier).
    expect((await call(cp, 'PUT', `/participants/${sup.dipId}/channels/IF-021`)).body.channels).toEqual(['IF-021']);
    expect((await call(cp, 'DELETE', `/participants/${sup.dipId}/channels/IF-021`)).body.channels).toEqual([]);
    const acts = (await admin('GET', `/admin/journal?target=${sup.dipId}/IF-021`)).body as Json[];
    expect(acts.map((e) => [e.actor, e.action])).toEqual([
      [`participant:${cp.dipId}`, 'participant.channel.leave'],
      [`participant:${cp.dipId}`, 'participant.channel.join'],
    ]);
    const urls = async () => ((await admin('GET', `/admin/activity?caller=${cp.dipId}`)).body as Json[]).map((r) => `${r.method} ${r.url} ${r.status}`);
    // Records are written after their answers, in the background: wait for the last of those looked for.
    const expected = [`DELETE /participants/${sup.dipId}/connection-provider 403`, `PUT /participants/${sup.dipId}/channels/IF-021 200`];
    await waitFor(async () => {
      const seen = await urls();
      return expected.every((u) => seen.includes(u));
    }, 10_000, "the provider's requests in the activity log");
    // The supplier's own activity shows what its provider did for it, named as the provider's.
    const forSup = ((await admin('GET', `/admin/activity?caller=${sup.dipId}`)).body as Json[]).filter((r) => r.caller === cp.dipId).map((r) => `${r.method} ${r.url} ${r.status} for ${r.actingFor}`);
    expect(forSup).toContain(`PUT /participants/${sup.dipId}/channels/IF-021 200 for ${sup.dipId}`);
    expect((await call(sup, 'PUT', `/participants/${sup.dipId}/connection-provider`, { dipId: '9999999999' })).status).toBe(404);
    expect((await call(sup, 'DELETE', `/participants/${sup.dipId}/connection-provider`)).body.connectionProvider).toBeNull();
  });

  // An operator re-registers a participant after a compromise (`dip participant add` again): a key still in
  // a rotation's overlap kept working to its end, so the leaked key outlived the re-registration.
  it("re-registered by the operator, its old keys stop at once, one still in a rotation's overlap too", async () => {
    const p = await t.participant('1000000010', ['SUP']);
    const rotated = await call(p, 'POST', `/participants/${p.dipId}/api-key`, { overlapHours: 24 });
    expect(rotated.status).toBe(200);
    expect((await call(p, 'GET', `/participants/${p.dipId}`)).status).toBe(200); // the old key, in its overlap
    const { apiKey } = await onboardParticipant(t.dip.backend.registry, { dipId: p.dipId, roles: ['SUP'], certificatePem: p.credentials.certPem });
    const withNew = new DipClient({ baseUrl: t.dip.url, apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    const withRotated = new DipClient({ baseUrl: t.dip.url, apiKey: rotated.body.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    try {
      await waitFor(async () => (await call(withNew, 'GET', `/participants/${p.dipId}`)).status === 200, 10_000, 'the re-registered key accepted');
      expect((await call(withRotated, 'GET', `/participants/${p.dipId}`)).status).toBe(401);
      expect((await call(p, 'GET', `/participants/${p.dipId}`)).status).toBe(401);
    } finally {
      await withNew.close();
      await withRotated.close();
    }
  });

  it('rotates its API key with an overlap, and gets a certificate for its CSR', async () => {
    const rotated = await call(sup, 'POST', `/participants/${sup.dipId}/api-key`, { overlapHours: 1 });
    expect(rotated.status).toBe(200);
    expect(rotated.body.apiKey).toMatch(/^dip_/);
    // The old key works during the overlap, the new one too.
    expect((await call(sup, 'GET', `/participants/${sup.dipId}`)).status).toBe(200);
    const withNew = new DipClient({ baseUrl: t.dip.url, apiKey: rotated.body.apiKey, keyPem: sup.credentials.keyPem, certPem: sup.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    try {
      expect((await call(withNew, 'GET', `/participants/${sup.dipId}`)).body.previousApiKeyValidUntil).toBeTruthy();
      // No overlap: the key it replaces stops at once.
      const again = await call(withNew, 'POST', `/participants/${sup.dipId}/api-key`, { overlapHours: 0 });
      expect((await call(withNew, 'GET', `/participants/${sup.dipId}`)).status).toBe(401);
      expect(again.body.previousValidUntil).toBeNull();
      // Nor does the one before it, still in its hour of overlap: a leaked key in its overlap ends so too (SECURITY.md).
      expect((await call(sup, 'GET', `/participants/${sup.dipId}`)).status).toBe(401);
    } finally {
      await withNew.close();
    }

    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
    const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=anything', keys, signingAlgorithm: alg });
    const issued = await call(sds, 'POST', `/participants/${sds.dipId}/certificate`, { csr: csr.toString('pem'), overlapDays: 7 });
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    expect(issued.body.certificate).toMatch(/BEGIN CERTIFICATE/);
    expect(new x509.X509Certificate(issued.body.certificate).subjectName.toString()).not.toBe('CN=anything'); // bound to its DIP ID by the DIP
    expect(issued.body.previousValidUntil).toBeTruthy();
    // The old certificate still signs during the overlap.
    expect((await call(sds, 'GET', `/participants/${sds.dipId}`)).body.certificateFingerprint).toBe(issued.body.fingerprint);
    expect((await call(sds, 'POST', `/participants/${sds.dipId}/certificate`, { csr: 'garbage' })).status).toBe(400);
  });
});
