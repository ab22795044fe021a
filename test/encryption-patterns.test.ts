import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createPrivateKey, generateKeyPairSync, webcrypto, X509Certificate } from 'node:crypto';
import { decodeProtectedHeader } from 'jose';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onboardParticipant, rotateParticipantCertificate } from '../src/pipeline/participants.js';
import { certificateThumbprint, decryptWith, encryptTo, thumbprintOf } from '../src/security/payload-encryption.js';
import { issueParticipantCertificate } from '../src/security/pki.js';
import { rotateEncryptionKey } from '../src/security/dip-encryption-key.js';
import { pkiDir } from '../src/app.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

/** A JWE in compact serialisation by its shape (a protected header with alg and enc, five base64url parts) that no key opens. */
const JWE_SHAPED = `${Buffer.from('{"alg":"RSA-OAEP-256","enc":"A256GCM"}').toString('base64url')}.a.b.c.d`;

function databaseBytes(dataDir: string): Buffer {
  const file = join(dataDir, 'dip.db');
  return Buffer.concat([file, `${file}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f)));
}

/** A certificate bound to a DIP ID that may sign but not be encrypted to (key usage digitalSignature only). */
async function signOnlyCertificate(caPem: { keyPem: string; certPem: string }, dipId: string) {
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const caKey = await webcrypto.subtle.importKey('pkcs8', createPrivateKey(caPem.keyPem).export({ type: 'pkcs8', format: 'der' }), alg, false, ['sign']);
  const ca = new x509.X509Certificate(caPem.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '0a1b2c3d',
    subject: `CN=${dipId}`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - 3600_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    publicKey: await webcrypto.subtle.importKey('spki', publicKey.export({ type: 'spki', format: 'der' }), alg, true, ['verify']),
    signingKey: caKey,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:dip:participant:${dipId}` }]),
    ],
  });
  return { keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), certPem: cert.toString('pem') };
}

describe('security pattern 2: encrypted to the DIP, re-encrypted for each recipient', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let ldso: TestParticipant;
  let received: Awaited<ReturnType<TestDip['receiver']>>;

  beforeAll(async () => {
    t = await startTestDip({ channels: { 'IF-021': { securityPattern: 2 } }, signingKeyPollMs: 50 });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    ldso = await t.participant('3000000001', ['LDSO']);
    received = await t.receiver();
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: received.url })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** `edit` changes the CustomBlock's text before it is encrypted. */
  async function sealedItem(to: string[], suffix: string, edit: (text: string) => string = (text) => text) {
    const certs = await sds.client.call<{ encryption: string }>('GET', '/certificates/dip', '');
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: to, uniqueSuffix: suffix });
    const { CustomBlock, ...payload } = item.payload;
    const jwe = await encryptTo(new X509Certificate(certs.body.encryption).publicKey, edit(JSON.stringify(CustomBlock)));
    return { plain: item, sealed: { payload: { ...payload, EncryptedCustomBlock: jwe } } };
  }

  it('delivers the payload encrypted to the recipient, which alone can read it; the archive holds no plaintext', async () => {
    const { plain, sealed } = await sealedItem([sup.dipId], 'p2ok');
    const answer = await sds.client.submit('IF-021', [sealed]);
    expect(answer.status).toBe(201);
    await waitFor(() => received.calls.length === 1, 5000, 'delivery');
    const out = received.calls[0]!.messages[0] as Json;
    expect(out.payload.CustomBlock).toBeUndefined();
    expect(out.payload.CommonBlock.D0.transactionID).toBe(answer.body.messageArray[0]!.transactionID);
    const opened = JSON.parse(await decryptWith(createPrivateKey(sup.credentials.keyPem), out.payload.EncryptedCustomBlock));
    expect(opened).toEqual(plain.payload.CustomBlock);
    await expect(decryptWith(createPrivateKey(ldso.credentials.keyPem), out.payload.EncryptedCustomBlock)).rejects.toThrow();
    const bytes = databaseBytes(t.config.dataDir);
    for (const needle of ['settlementDayConsumptionPeriods', 'issuingDataServiceDIPID', plain.payload.CommonBlock.M0.MPANCore]) {
      expect(bytes.includes(Buffer.from(needle)), `'${needle}' on disk`).toBe(false);
    }
  });

  it("a pull's maxPayloadSize counts the copies as answered (re-encrypted, larger than stored), not as stored", async () => {
    // ldso pulls (no webhook). Two messages whose stored copies fit the limit together, their JWE copies not.
    for (const suffix of ['p2size1', 'p2size2']) expect((await sds.client.submit('IF-021', [(await sealedItem([ldso.dipId], suffix)).sealed])).status).toBe(201);
    const stored = await t.dip.backend.archive.findArchived({ recipientDipId: ldso.dipId, channel: 'IF-021', limit: 10 });
    expect(stored).toHaveLength(2);
    const storedBytes = 1 + stored.reduce((n, m) => n + Buffer.byteLength(m.outbound) + 1, 0);
    const all = await ldso.client.call<Json[]>('GET', `/dip-channel/IF-021/pull/${ldso.dipId}?maxMessageCount=10&maxPayloadSize=1024`, '');
    expect(all.status).toBe(200);
    expect(all.body).toHaveLength(2);
    const wireBytes = all.raw.length;
    const limitKb = Math.ceil(storedBytes / 1024);
    expect(storedBytes, 'the stored copies fit the limit').toBeLessThanOrEqual(limitKb * 1024);
    expect(wireBytes, 'the copies as answered do not').toBeGreaterThan(limitKb * 1024);

    const limited = await ldso.client.call<Json[]>('GET', `/dip-channel/IF-021/pull/${ldso.dipId}?maxMessageCount=10&maxPayloadSize=${limitKb}`, '');
    expect(limited.status).toBe(200);
    expect(limited.body).toHaveLength(1);
    expect(limited.raw.length).toBeLessThanOrEqual(limitKb * 1024);
    expect(limited.headers['x-opendip-sequence']).toBe('1-1');
    // The copy left out is not skipped: a page is a leading run, whose positions alone are handed out (no
    // acknowledgement may pass them), and the next pull after acknowledging it starts at the one left out.
    expect((await ldso.client.ack('IF-021', ldso.dipId, 2)).status).toBe(200);
    const more: string[] = [];
    for (const suffix of ['p2size3', 'p2size4']) more.push((await sds.client.submit('IF-021', [(await sealedItem([ldso.dipId], suffix)).sealed])).body.messageArray[0]!.transactionID!);
    const page = await ldso.client.call<Json[]>('GET', `/dip-channel/IF-021/pull/${ldso.dipId}?maxMessageCount=10&maxPayloadSize=${limitKb}`, '');
    expect([page.headers['x-opendip-sequence'], page.body.map((m) => m.payload.CommonBlock.D0.transactionID)]).toEqual(['3-3', [more[0]]]);
    expect((await ldso.client.ack('IF-021', ldso.dipId, 4)).status, 'an acknowledgement past what the page handed out').toBe(400);
    expect((await ldso.client.ack('IF-021', ldso.dipId, 3)).status).toBe(200);
    const next = await ldso.client.call<Json[]>('GET', `/dip-channel/IF-021/pull/${ldso.dipId}?maxMessageCount=10&maxPayloadSize=${limitKb}`, '');
    expect([next.headers['x-opendip-sequence'], next.body.map((m) => m.payload.CommonBlock.D0.transactionID)]).toEqual(['4-4', [more[1]]]);
  });

  it('refuses a clear CustomBlock, an undecryptable one, and a recipient that cannot be encrypted to', async () => {
    const clear = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId] });
    const a1 = await sds.client.submit('IF-021', [clear]);
    expect(a1.status).toBe(400);
    expect(a1.body.messageArray[0]!.help).toMatch(/EncryptedCustomBlock is required/);

    const { sealed } = await sealedItem([sup.dipId], 'p2bad');
    (sealed.payload as Json).EncryptedCustomBlock = 'a.b.c.d.e';
    const a2 = await sds.client.submit('IF-021', [sealed]);
    expect(a2.status).toBe(400);
    expect(a2.body.messageArray[0]!.help).toMatch(/could not be decrypted/);

    const signOnly = await signOnlyCertificate(t.dip.pki.ca, '1000000009');
    await onboardParticipant(t.dip.backend.registry, { dipId: '1000000009', roles: ['SUP'], certificatePem: signOnly.certPem });
    const { sealed: toSignOnly } = await sealedItem(['1000000009'], 'p2nokey');
    const a3 = await sds.client.submit('IF-021', [toSignOnly]);
    expect(a3.status).toBe(400);
    expect(a3.body.messageArray[0]!.message).toMatch(/^MSG1030/);
    expect(a3.body.messageArray[0]!.help).toMatch(/1000000009 have no certificate the payload can be encrypted to/);
    const refusedCert = await sds.client.call('GET', '/certificates/participant/1000000009', '');
    expect([refusedCert.status, refusedCert.body.messageArray[0]!.message, refusedCert.body.messageArray[0]!.help]).toEqual([404, expect.stringMatching(/^MSG1031/), '1000000009 has no certificate that payloads can be encrypted to: none is registered for that DIP ID, or it cannot be encrypted to']);
    // One not registered is answered in the same words: the answer does not tell registered from not.
    const unknownCert = await sds.client.call('GET', '/certificates/participant/1000000099', '');
    expect([unknownCert.status, unknownCert.body.messageArray[0]!.help]).toEqual([404, '1000000099 has no certificate that payloads can be encrypted to: none is registered for that DIP ID, or it cannot be encrypted to']);
    // Not a DIP ID at all: 400, naming the parameter and its format, not "no certificate".
    for (const bad of ['abc', '10000000011', '100000000%21']) {
      const malformed = await sds.client.call('GET', `/certificates/participant/${bad}`, '');
      const shown = decodeURIComponent(bad);
      expect([malformed.status, malformed.body.messageArray[0]!.message, malformed.body.messageArray[0]!.help], bad).toEqual([400, expect.stringMatching(/^MSG1031/), `dipId (path) must be a DIP participant ID: 10 letters or digits (DT-006), not '${shown}'`]);
    }
  });

  it('refuses a number in the decrypted CustomBlock that a double does not hold (it would be re-encrypted altered)', async () => {
    const { sealed } = await sealedItem([sup.dipId], 'p2num', (text) => text.replace('"periodDuration":30', '"periodDuration":30.00000000000000000001'));
    const answer = await sds.client.submit('IF-021', [sealed]);
    expect(answer.status).toBe(400);
    expect(answer.body.messageArray[0]!.message).toMatch(/^MSG1001/);
    expect(answer.body.messageArray[0]!.help).toMatch(
      /^item 0: payload\.CustomBlock\.B900\.settlementDayConsumptionPeriods\[0\]\.settlementDay\.periodDuration \(decrypted from payload\.EncryptedCustomBlock\) is 30\.00000000000000000001, .* delivered as 30;/,
    );
  });

  it("takes what senders encrypted to the DIP's previous encryption certificate after dip pki rotate-encryption, during the overlap", async () => {
    const before = (await sds.client.call<{ encryption: string }>('GET', '/certificates/dip', '')).body.encryption;
    const inFlight = await sealedItem([sup.dipId], 'p2old');
    const rotated = await rotateEncryptionKey(pkiDir(t.config), t.dip.pki.ca);
    expect(rotated.previous?.certPem).toBe(before);
    await waitFor(async () => (await sds.client.call<{ encryption: string }>('GET', '/certificates/dip', '')).body.encryption === rotated.current.certPem, 10_000, 'the DIP to switch to the new certificate');
    expect((await sds.client.submit('IF-021', [inFlight.sealed])).status).toBe(201);
    expect((await sds.client.submit('IF-021', [(await sealedItem([sup.dipId], 'p2new')).sealed])).status).toBe(201);
  });

  // Last: it rotates sup's certificate. During the overlap sup holds two keys (the new one registered, the
  // old one still signing); the JWE header names the certificate (x5t#S256, RFC 7516 4.1.8) so it knows which opens the copy.
  it("names the recipient's certificate in the JWE header: after a rotation the new one, whose key alone opens it", async () => {
    const thumbprint = (pem: string) => createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
    expect(certificateThumbprint(sup.credentials.certPem)).toBe(thumbprint(sup.credentials.certPem));
    const send = async (suffix: string): Promise<string> => {
      const before = received.calls.length;
      expect((await sds.client.submit('IF-021', [(await sealedItem([sup.dipId], suffix)).sealed])).status).toBe(201);
      await waitFor(() => received.calls.length > before, 10_000, 'the delivery');
      return (received.calls.at(-1)!.messages[0] as Json).payload.EncryptedCustomBlock as string;
    };
    expect(thumbprintOf(await send('kid1'))).toBe(thumbprint(sup.credentials.certPem));

    const renewed = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 1000000001', dipIds: [sup.dipId], environment: 'DEV', validDays: 30 });
    await rotateParticipantCertificate(t.dip.backend.registry, { dipId: sup.dipId, certificatePem: renewed.certPem, overlapMs: 86_400_000 });
    await waitFor(async () => {
      const c = await sds.client.call<{ encryption: string }>('GET', `/certificates/participant/${sup.dipId}`, '');
      return c.status === 200 && thumbprint(c.body.encryption) === thumbprint(renewed.certPem);
    }, 10_000, 'the DIP to know the new certificate');

    const jwe = await send('kid2');
    expect(decodeProtectedHeader(jwe)).toMatchObject({ alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'json', 'x5t#S256': thumbprint(renewed.certPem) });
    expect(thumbprintOf(jwe)).not.toBe(thumbprint(sup.credentials.certPem));
    expect(JSON.parse(await decryptWith(createPrivateKey(renewed.keyPem), jwe))).toBeTruthy();
    await expect(decryptWith(createPrivateKey(sup.credentials.keyPem), jwe)).rejects.toThrow();
  });
});

describe('security pattern 3: one copy per recipient, never read by the DIP', () => {
  let t: TestDip;
  let sds: TestParticipant;
  const recipients: Array<{ p: TestParticipant; r: Awaited<ReturnType<TestDip['receiver']>> }> = [];

  beforeAll(async () => {
    t = await startTestDip({ channels: { 'IF-021': { securityPattern: 3 } } });
    sds = await t.participant('2000000001', ['SDS']);
    for (const [id, role] of [['1000000001', 'SUP'], ['3000000001', 'LDSO']] as const) {
      const p = await t.participant(id, [role]);
      const r = await t.receiver();
      expect((await p.client.setWebhook('IF-021', id, { callbackURL: r.url })).status).toBe(201);
      recipients.push({ p, r });
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  it('relays each recipient its own copy; the DIP stores only ciphertext', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: recipients.map((x) => x.p.dipId), uniqueSuffix: 'p3ok' });
    const { CustomBlock, ...payload } = item.payload;
    const copies: Record<string, string> = {};
    for (const { p } of recipients) {
      const cert = await sds.client.call<{ encryption: string }>('GET', `/certificates/participant/${p.dipId}`, '');
      copies[p.dipId] = await encryptTo(new X509Certificate(cert.body.encryption).publicKey, JSON.stringify(CustomBlock));
    }
    const answer = await sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlocks: copies } }]);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    for (const { p, r } of recipients) {
      await waitFor(() => r.calls.length === 1, 5000, `delivery to ${p.dipId}`);
      const out = r.calls[0]!.messages[0] as Json;
      expect(out.payload.EncryptedCustomBlocks).toBeUndefined();
      expect(out.payload.EncryptedCustomBlock).toBe(copies[p.dipId]);
      expect(JSON.parse(await decryptWith(createPrivateKey(p.credentials.keyPem), out.payload.EncryptedCustomBlock))).toEqual(CustomBlock);
    }
    expect(databaseBytes(t.config.dataDir).includes(Buffer.from('settlementDayConsumptionPeriods'))).toBe(false);
    // Even with the DIP's own at-rest keys, the archive holds only the recipients' ciphertext.
    const [archived] = await t.dip.backend.archive.findArchived({ recipientDipId: recipients[0]!.p.dipId, channel: 'IF-021', limit: 1 });
    expect(archived!.outbound).not.toContain('settlementDayConsumptionPeriods');
    expect(JSON.parse(archived!.outbound).payload.EncryptedCustomBlocks).toEqual(copies);
  });

  it('refuses a message without a copy for every recipient, or with a clear CustomBlock', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: recipients.map((x) => x.p.dipId), uniqueSuffix: 'p3missing' });
    const { CustomBlock: _cb, ...payload } = item.payload;
    const onlyOne = { [recipients[0]!.p.dipId]: JWE_SHAPED };
    const a1 = await sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlocks: onlyOne } }]);
    expect(a1.status).toBe(400);
    expect(a1.body.messageArray[0]!.help).toMatch(/no copy for recipient\(s\) 3000000001/);
    const a2 = await sds.client.submit('IF-021', [item]);
    expect(a2.status).toBe(400);
    expect(a2.body.messageArray[0]!.help).toMatch(/EncryptedCustomBlocks is required/);
    // The header is still validated: a bad sender reference is refused even though the payload is opaque.
    const bad = { payload: { ...payload, CommonBlock: { ...payload.CommonBlock, S1: { ...payload.CommonBlock.S1, senderUniqueReference: 'nope' } }, EncryptedCustomBlocks: onlyOne } };
    const a3 = await sds.client.submit('IF-021', [bad]);
    expect(a3.status).toBe(400);
    expect(a3.body.messageArray[0]!.message).toMatch(/^MSG1001/);
  });

  it('says what is wrong with payload.EncryptedCustomBlocks: not an object, or a pattern 2 body on this pattern 3 channel', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: recipients.map((x) => x.p.dipId), uniqueSuffix: 'p3shape' });
    const { CustomBlock: _cb, ...payload } = item.payload;
    const copies = '{ "<recipient DIP ID>": "<JWE to that recipient>" }';
    for (const [value, what] of [[[], 'an array'], ['x', 'a string'], [null, 'null']] as const) {
      const answer = await sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlocks: value } }]);
      expect([answer.status, answer.body.messageArray[0]!.message, answer.body.messageArray[0]!.help], what).toEqual([400, expect.stringMatching(/^MSG1001/), `item 0: payload.EncryptedCustomBlocks must be an object holding one copy per recipient, ${copies}, not ${what} (IF-021 is set to security pattern 3)`]);
    }
    const pattern2 = await sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlock: JWE_SHAPED } }]);
    expect([pattern2.status, pattern2.body.messageArray[0]!.message, pattern2.body.messageArray[0]!.help]).toEqual([400, expect.stringMatching(/^MSG1001/), `item 0: payload.EncryptedCustomBlock (one JWE to the DIP) is security pattern 2's; IF-021 is set to security pattern 3: send payload.EncryptedCustomBlocks instead, ${copies}, each copy encrypted to its recipient's certificate`]);
  });

  it('refuses a copy that is not a JWE in compact serialisation, naming the item and the field', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: recipients.map((x) => x.p.dipId), uniqueSuffix: 'p3syntax' });
    const { CustomBlock, ...payload } = item.payload;
    const good = await encryptTo(new X509Certificate(recipients[1]!.p.credentials.certPem).publicKey, JSON.stringify(CustomBlock));
    const header = (h: object) => Buffer.from(JSON.stringify(h)).toString('base64url');
    const [, ...rest] = good.split('.');
    for (const [bad, why] of [
      ['x.y.z.w.v', /payload\.EncryptedCustomBlocks\.1000000001 is not a JWE in compact serialisation: its protected header is not base64url-encoded JSON/],
      [`${header({ alg: 'RSA-OAEP-256' })}.${rest.join('.')}`, /payload\.EncryptedCustomBlocks\.1000000001 is not a JWE in compact serialisation: its protected header has no "enc"/],
      [`${good.split('.')[0]}.a+b.c.d.e`, /payload\.EncryptedCustomBlocks\.1000000001 is not a JWE in compact serialisation: part 2 is not base64url/],
    ] as const) {
      const answer = await sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlocks: { [recipients[0]!.p.dipId]: bad, [recipients[1]!.p.dipId]: good } } }]);
      expect(answer.status).toBe(400);
      expect(answer.body.messageArray[0]!.help).toMatch(/^item 0: /);
      expect(answer.body.messageArray[0]!.help).toMatch(why);
    }
  });

  it('refuses a copy keyed "__proto__" as a copy for nobody: the sender\'s keys never reach a prototype', async () => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: recipients.map((x) => x.p.dipId), uniqueSuffix: 'p3proto' });
    const { CustomBlock: _cb, ...payload } = item.payload;
    const copies = Object.fromEntries(recipients.map(({ p }) => [p.dipId, JWE_SHAPED]));
    // Raw JSON: an object literal would set the prototype here instead of sending the key.
    const body = JSON.stringify([{ payload: { ...payload, EncryptedCustomBlocks: copies } }]).replace(
      '"EncryptedCustomBlocks":{',
      `"EncryptedCustomBlocks":{"__proto__":"${JWE_SHAPED}",`,
    );
    const answer = await sds.client.submit('IF-021', body);
    expect(answer.status).toBe(400);
    expect(answer.body.messageArray[0]!.help).toMatch(/has copies for __proto__, who are not recipients/);
  });
});
