/**
 * Certificate rotation without an outage, over real TLS sockets: a participant's certificate with an
 * overlap (src/pipeline/participants.ts, src/pipeline/authenticate.ts), and the DIP's own signing key
 * (src/security/signing-key.ts).
 */
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateParticipantCertificate } from '../src/pipeline/participants.js';
import { systemClock } from '../src/adapters/clock.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { pkiDir } from '../src/app.js';
import { DipClient } from '../src/client/dip-client.js';
import { issueParticipantCertificate, rotateSigningCertificate } from '../src/security/pki.js';
import { certificateInfo } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;
const ref = (m: unknown) => (m as Json).payload.CommonBlock.S1.senderUniqueReference as string;

describe("a participant's certificate rotates with an overlap", () => {
  let t: TestDip;
  let sds: TestParticipant;
  // The overlap ends by moving the DIP's clock (and its participants' with it), not by waiting for it.
  const clock = new ShiftableClock();
  beforeAll(async () => {
    t = await startTestDip({}, undefined, { clock });
    sds = await t.participant('2000000001', ['SDS']);
    await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  let n = 0;
  const submit = (client: DipClient) => client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `rot${n++}` })]);

  it('accepts the old and the new certificate during the overlap (same API key), and only the new one after it', async () => {
    const renewed = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 2000000001', dipIds: ['2000000001'], environment: 'DEV', validDays: 30 });
    // The same API key throughout: a rotation changes the certificate only.
    const newClient = new DipClient({ baseUrl: t.dip.url, apiKey: sds.apiKey, keyPem: renewed.keyPem, certPem: renewed.certPem, caPem: t.dip.pki.ca.certPem, now: () => new Date(clock.now()) });
    try {
      // Before the rotation the new certificate is not registered: the DIP says so.
      const early = await submit(newClient);
      expect(early.status).toBe(401);
      expect(JSON.stringify(early.body)).toMatch(/is not the certificate registered for 2000000001/);

      const overlapMs = 3_000;
      const rotated = await rotateParticipantCertificate(t.dip.backend.registry, { dipId: sds.dipId, certificatePem: renewed.certPem, overlapMs, trustedCaPems: [t.dip.pki.ca.certPem], now: new Date(clock.now()) });
      expect(rotated.certificateFingerprint).toBe(certificateInfo(renewed.certPem).fingerprint256);
      expect(rotated.previous?.certificateFingerprint).toBe(certificateInfo(sds.credentials.certPem).fingerprint256);

      // During the overlap: both sign (the registry learns the rotation at the first call that needs it).
      expect((await submit(newClient)).status).toBe(201);
      expect((await submit(sds.client)).status).toBe(201);
      expect((await submit(newClient)).status).toBe(201);
      expect(clock.now()).toBeLessThan(rotated.previous!.validUntil);

      // After the overlap: the old certificate is refused, naming why and what to use instead.
      clock.jump(rotated.previous!.validUntil - clock.now() + 1);
      const late = await submit(sds.client);
      expect(late.status).toBe(401);
      const help = JSON.stringify(late.body);
      expect(help).toMatch(/message signature refused \(registered certificate\): X-DIP-Signature-Certificate \(SHA-256 [0-9A-F]{64}\) is 2000000001's previous certificate, whose overlap ended at \d{4}-\d{2}-\d{2}T[\d:.]+Z: sign with the current one \(SHA-256 [0-9A-F]{64}\) \| the DIP verifies: POST;/);
      expect(help).toContain(rotated.certificateFingerprint);
      expect((await submit(newClient)).status).toBe(201);
    } finally {
      await newClient.close();
    }
  });

  it('refuses a rotation to the same certificate, to one bound to another DIP ID, or for an unknown participant', async () => {
    const current = t.dip.backend.registry;
    const registered = (await current.participants()).find((r) => r.participant.dipId === '2000000001')!.participant;
    await expect(rotateParticipantCertificate(current, { dipId: '2000000001', certificatePem: registered.certificatePem, overlapMs: 1000 })).rejects.toThrow(/already the one registered/);
    const other = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'X', dipIds: ['2000000009'], environment: 'DEV', validDays: 5 });
    await expect(rotateParticipantCertificate(current, { dipId: '2000000001', certificatePem: other.certPem, overlapMs: 1000 })).rejects.toThrow(/bound to 2000000009.*not to 2000000001/);
    await expect(rotateParticipantCertificate(current, { dipId: '2000000009', certificatePem: other.certPem, overlapMs: 1000 })).rejects.toThrow(/not a registered participant/);
  });

  it('a database made before rotation existed gets the new columns (migrate)', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'opendip-migrate-')), 'dip.db');
    const old = new Database(file);
    old.exec(`CREATE TABLE participants (dip_id TEXT PRIMARY KEY, roles TEXT NOT NULL, organisation TEXT NOT NULL, certificate_pem TEXT NOT NULL,
      certificate_fingerprint TEXT NOT NULL, api_key_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, connection_provider TEXT)`);
    old.prepare('INSERT INTO participants VALUES (?, ?, ?, ?, ?, ?, ?, NULL)').run('2000000001', 'SDS', 'Org', 'PEM', 'AB', 'hash', 1);
    old.close();
    const backend = openSqliteBackend(file, { clock: systemClock });
    const store = backend.registry;
    try {
      const [row] = await store.participants();
      expect(row?.participant).toEqual({ dipId: '2000000001', roles: ['SDS'], organisation: 'Org', certificatePem: 'PEM', certificateFingerprint: 'AB', createdAt: 1, connectionProvider: null });
      const previous = { certificatePem: 'PEM', certificateFingerprint: 'AB', validUntil: 5 };
      await store.upsertParticipant({ ...row!.participant, certificatePem: 'PEM2', certificateFingerprint: 'CD', previous }, null);
      expect((await store.participants())[0]?.participant.previous).toEqual(previous);
    } finally {
      await backend.close();
    }
  });
});

describe("the DIP's own signing key rotates without an outage", () => {
  let t: TestDip;
  beforeAll(async () => {
    t = await startTestDip({ signingKeyPollMs: 50 });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('deliveries before and after `rotate-signing` all verify at the receiver; the signing certificate changes, nothing fails', async () => {
    const sds = await t.participant('2000000001', ['SDS']);
    const sup = await t.participant('1000000001', ['SUP']);
    const deadLetters: unknown[] = [];
    t.dip.events.on('dead-letter', (e) => deadLetters.push(e));
    // The receiver verifies the chain to the CA (src/client/webhook-receiver.ts), as a recipient does.
    const r = await t.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url, maxMessageCount: 1 })).status).toBe(201);
    const oldCert = certificateInfo(t.dip.pki.signing.certPem);

    // A steady stream of messages; the rotation happens in the middle of it.
    const sent: string[] = [];
    let rotation: Promise<unknown> | undefined;
    // The stream goes on while the new files are written and picked up (the watcher polls every 50 ms).
    for (let i = 0; i < 30; i++) {
      if (i === 10) rotation = rotateSigningCertificate(pkiDir(t.config), { environment: 'DEV' });
      const m = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `sk${i}` });
      expect((await sds.client.submit('IF-021', [m])).status).toBe(201);
      sent.push(ref(m));
    }
    await rotation;
    await waitFor(() => t.dip.signing.current().certificate.serialNumber !== oldCert.serialNumber, 5_000, 'the DIP to pick up the new signing key');
    const newCert = t.dip.signing.current().certificate;
    for (let i = 30; i < 35; i++) {
      const m = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `sk${i}` });
      expect((await sds.client.submit('IF-021', [m])).status).toBe(201);
      sent.push(ref(m));
    }
    await waitFor(() => r.calls.flatMap((c) => c.messages).length >= sent.length, 15_000, 'every delivery');

    // Every call verified (signature and chain); each message once, in order; nothing dead-lettered.
    expect(r.calls.every((c) => c.signature.ok)).toBe(true);
    expect(r.calls.flatMap((c) => c.messages).map(ref)).toEqual(sent);
    expect(deadLetters).toEqual([]);
    // The certificate in X-DIP-Signature-Certificate changed once, from the old to the new one.
    const signedBy = r.calls.map((c) => (c.signature.ok ? c.signature.certificate.fingerprint256 : ''));
    expect(signedBy[0]).toBe(oldCert.fingerprint256);
    expect(signedBy.at(-1)).toBe(newCert.fingerprint256);
    const switchAt = signedBy.indexOf(newCert.fingerprint256);
    expect(signedBy.slice(0, switchAt).every((f) => f === oldCert.fingerprint256)).toBe(true);
    expect(signedBy.slice(switchAt).every((f) => f === newCert.fingerprint256)).toBe(true);
    // No failed attempt in the delivery log either.
    const attempts = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true }).prepare('SELECT verdict FROM delivery_attempts').all() as Array<{ verdict: string }>;
    expect(attempts.filter((a) => a.verdict !== 'delivered')).toEqual([]);

    // Participants fetching the DIP's certificates get the one in force.
    const certs = await sds.client.call<{ signing: string }>('GET', '/certificates/dip', '');
    expect(certs.status).toBe(200);
    expect(certificateInfo(certs.body.signing).fingerprint256).toBe(newCert.fingerprint256);
  });

  it('keeps the key in force when the new files are not a usable pair from the CA', async () => {
    const { writeFile } = await import('node:fs/promises');
    const before = t.dip.signing.current().certificate.serialNumber;
    // A participant certificate is not the DIP's key: the key file does not match it.
    const stray = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'X', dipIds: ['2000000009'], environment: 'DEV', validDays: 5 });
    await writeFile(join(pkiDir(t.config), 'dip-signing.cert.pem'), stray.certPem);
    // What the watcher's next poll does, done now: it looks at the changed files and keeps the key in force.
    t.dip.signing.reload();
    expect(t.dip.signing.current().certificate.serialNumber).toBe(before);
    // The next proper rotation is picked up.
    await rotateSigningCertificate(pkiDir(t.config), { environment: 'DEV' });
    await waitFor(() => t.dip.signing.current().certificate.serialNumber !== before, 5_000, 'the next rotation');
  });
});
