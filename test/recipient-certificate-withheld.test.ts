import { createPrivateKey, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkiDir } from '../src/app.js';
import { withheldCopyAlarms } from '../src/pipeline/alarm-sources.js';
import { alarmAction } from '../src/pipeline/alarm-actions.js';
import type { Channel } from '../src/pipeline/channels.js';
import { answerNotFromDip, DipClient } from '../src/client/dip-client.js';
import { onboardParticipant, rotateParticipantCertificate } from '../src/pipeline/participants.js';
import { CopyWithheld, RecipientCopies } from '../src/pipeline/recipient-copy.js';
import type { WorkerStatus } from '../src/pipeline/queue-worker.js';
import { decryptWith, encryptTo } from '../src/security/payload-encryption.js';
import { createCertificateAuthority, issueParticipantCertificate, type KeyAndCert } from '../src/security/pki.js';
import { revokeCertificate, type RevocationEntry } from '../src/security/revocation.js';
import { certificateInfo } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import type { Participant } from '../src/domain/participant.js';
import { FakeClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;

/**
 * Security pattern 2 (spec 5.2.2): a copy is encrypted to the recipient's registered certificate. Once
 * that certificate is revoked (a keyCompromise: whoever holds the key reads what is encrypted to it) or
 * has expired, nothing may be encrypted to it: the copy waits in its queue for the recipient's new one.
 */
describe('RecipientCopies: nothing is encrypted to a revoked or expired certificate', () => {
  const clock = new FakeClock(Date.now());
  let participant: Participant;
  const revoked = new Map<string, RevocationEntry>();
  let copies: RecipientCopies;
  const queue = { recipientDipId: '1000000001', channel: 'IF-021' };
  const outbound = JSON.stringify({ CommonBlock: {}, payload: { CommonBlock: {}, CustomBlock: { a: 1 } } });

  beforeAll(async () => {
    const ca = await createCertificateAuthority({ commonName: 'OpenDIP DEV CA', environment: 'DEV', validDays: 5 });
    const cert = await issueParticipantCertificate(ca, { organisation: 'Sup', dipIds: ['1000000001'], environment: 'DEV', validDays: 30 });
    const info = certificateInfo(cert.certPem);
    participant = { dipId: '1000000001', roles: ['SUP'], organisation: 'Sup', certificatePem: cert.certPem, certificateFingerprint: info.fingerprint256, connectionProvider: null, createdAt: 0 };
    const channel = { interfaceId: 'IF-021', securityPattern: 2, obfuscation: {} } as unknown as Channel;
    copies = new RecipientCopies((id) => (id === 'IF-021' ? channel : undefined), { participant: (id) => (id === participant.dipId ? participant : undefined) }, { revoked: (fp) => revoked.get(fp), now: () => clock.now() });
  });

  it('encrypts to a valid certificate', async () => {
    expect(copies.withheld('1000000001')).toBeNull();
    expect(copies.recipientKey('1000000001')).toBeDefined();
    expect(JSON.parse(await copies.copyFor(queue, { outbound, capacity: null, securityPattern: null })).payload.EncryptedCustomBlock).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it('withholds the copy once the certificate has expired, by the injected clock', async () => {
    await clock.advance(31 * 86_400_000);
    expect(copies.withheld('1000000001')).toMatch(/^the certificate registered for 1000000001 expired at .*: pattern 2 copies for 1000000001 are held until it registers a new certificate/);
    expect(copies.recipientKey('1000000001')).toBeUndefined();
    expect(copies.encryptable('1000000001')).toBe(true);
    expect(() => copies.copyFor(queue, { outbound, capacity: null, securityPattern: null })).toThrow(CopyWithheld);
    expect(copies.withheldFor({ ...queue, channel: 'STATUS' })).toBeNull();
  });

  it('withholds the copy of a revoked certificate, naming the revocation', async () => {
    await clock.advance(-31 * 86_400_000); // back within its validity: the revocation alone withholds it
    const info = certificateInfo(participant.certificatePem);
    revoked.set(info.fingerprint256, { serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, subject: info.subject, dipIds: info.dipIds, reason: 'keyCompromise', revokedAt: '2026-01-01T00:00:00.000Z' });
    expect(copies.withheld('1000000001')).toMatch(new RegExp(`^the certificate registered for 1000000001 \\(serial ${info.serialNumber}\\) was revoked at 2026-01-01T00:00:00.000Z \\(keyCompromise\\)`));
    expect(() => copies.copyFor(queue, { outbound, capacity: null, securityPattern: null })).toThrow(CopyWithheld);
  });

  it("holds a copy by the pattern it is made for, not the channel's now: the sender's pattern 3 copy goes; a pattern 2 one on a channel since set to 1 waits", async () => {
    const info = certificateInfo(participant.certificatePem);
    revoked.set(info.fingerprint256, { serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, subject: info.subject, dipIds: info.dipIds, reason: 'keyCompromise', revokedAt: '2026-01-01T00:00:00.000Z' });
    const perRecipient = JSON.stringify({ payload: { CommonBlock: {}, EncryptedCustomBlocks: { '1000000001': 'a.b.c.d.e' } } });
    expect(JSON.parse(await copies.copyFor(queue, { outbound: perRecipient, capacity: null, securityPattern: 3 })).payload.EncryptedCustomBlock).toBe('a.b.c.d.e');
    const atOne = { interfaceId: 'IF-021', securityPattern: 1, obfuscation: {} } as unknown as Channel;
    const onceTwo = new RecipientCopies((id) => (id === 'IF-021' ? atOne : undefined), { participant: (id) => (id === participant.dipId ? participant : undefined) }, { revoked: (fp) => revoked.get(fp), now: () => clock.now() });
    expect(() => onceTwo.copyFor(queue, { outbound, capacity: null, securityPattern: 2 })).toThrow(CopyWithheld);
    // The queue says some copies may wait (its worker then makes the oldest to learn whether it does).
    expect(onceTwo.withheldFor(queue)).toMatch(/was revoked/);
    expect(onceTwo.copyFor(queue, { outbound, capacity: null, securityPattern: 1 })).toBe(outbound);
  });
});

describe('the copies-withheld alarm', () => {
  it('names the recipient, its held queues and why; tells the operator and the participant what to do', () => {
    const clock = new FakeClock();
    const w = (channel: string, withheld: string | null): WorkerStatus => ({ queue: { recipientDipId: '1000000001', channel }, state: 'idle', ackedSeq: 0, failures: 0, failingSince: null, lastError: null, retryAt: null, withheld });
    const source = withheldCopyAlarms(() => [w('IF-021', 'the certificate registered for 1000000001 … was revoked'), w('IF-020', 'the certificate registered for 1000000001 … was revoked'), w('IF-019', null)], clock);
    expect(source()).toEqual([{ key: 'copies-withheld:1000000001', rule: 'copies-withheld', participant: '1000000001', summary: 'messages for 1000000001 on IF-020, IF-021 are not delivered: the certificate registered for 1000000001 … was revoked', since: clock.now() }]);
    expect(alarmAction({ rule: 'copies-withheld' }, 'operator')).toMatch(/dip participant rotate-cert/);
    // A revoked certificate no longer connects, so the participant is sent where it still can register a new one.
    expect(alarmAction({ rule: 'copies-withheld' }, '1000000001')).toMatch(/if it was revoked, .*the user portal \(Certificates\)/);
    // The resume call an operator is told to make carries the queue in its body.
    for (const rule of ['queue-halted', 'queue-damage'] as const) expect(alarmAction({ rule }, 'operator')).toContain('POST /admin/queues/resume with the queue the alarm names, {"recipientDipId":"…","channel":"…"}');
    expect(alarmAction({ rule: 'copies-withheld' }, '1000000001')).toMatch(/register a new certificate/);
  });
});

describe('a running DIP holds pattern 2 copies for a recipient whose certificate is revoked, and delivers them to its new one', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let received: Awaited<ReturnType<TestDip['receiver']>>;
  let answer = 503;
  /** Each call with what it was answered. */
  const answered: Array<{ status: number; messages: Json[] }> = [];
  const sent: string[] = [];

  beforeAll(async () => {
    t = await startTestDip({ channels: { 'IF-021': { securityPattern: 2 } }, revocationPollMs: 20 });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    received = await t.receiver((call) => {
      answered.push({ status: answer, messages: call.messages as Json[] });
      return answer;
    });
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: received.url })).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  async function sealed(suffix: string) {
    const certs = await sds.client.call<{ encryption: string }>('GET', '/certificates/dip', '');
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: suffix });
    const { CustomBlock, ...payload } = item.payload;
    return { payload: { ...payload, EncryptedCustomBlock: await encryptTo(new X509Certificate(certs.body.encryption).publicKey, JSON.stringify(CustomBlock)) } };
  }
  const worker = () => t.dip.delivery.status().find((w) => w.queue.recipientDipId === sup.dipId && w.queue.channel === 'IF-021');

  it('sends nothing encrypted to the revoked key, dead-letters nothing, and says why', async () => {
    const first = await sds.client.submit('IF-021', [await sealed('wh1')]);
    expect(first.status).toBe(201);
    sent.push(first.body.messageArray[0]!.transactionID!);
    await waitFor(() => answered.length >= 1, 10_000, 'the first (refused) call');
    await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, sup.credentials.certPem, 'keyCompromise');
    // The revocation is read within the watcher's poll (20 ms here); the retries answered 503 till then.
    await waitFor(() => (worker()?.withheld ?? null) !== null, 10_000, 'the queue to hold its copies back');
    answer = 200;
    expect(worker()!.withheld).toMatch(/^the certificate registered for 1000000001 \(serial [0-9A-F]+\) was revoked at .* \(keyCompromise\): pattern 2 copies for 1000000001 are held until it registers a new certificate/);
    const callsWhenHeld = answered.length;
    // A sweep (every 200 ms here) and a retry later: still nothing sent, nothing set aside.
    const sweeps = Date.now();
    await waitFor(() => Date.now() - sweeps > 600, 2000, 'a few sweeps');
    expect(answered.length).toBe(callsWhenHeld);
    expect(answered.every((c) => c.status !== 200)).toBe(true);
    expect(await t.dip.backend.deadLetters.deadLetters({ recipientDipId: sup.dipId, channel: 'IF-021', limit: 10 })).toEqual([]);

    // A new message is accepted, its sender told why its copy waits.
    const second = await sds.client.submit('IF-021', [await sealed('wh2')]);
    expect(second.status).toBe(201);
    sent.push(second.body.messageArray[0]!.transactionID!);
    expect(JSON.stringify(second.body)).toMatch(/1000000001 \(serial [0-9A-F]+\) was revoked at .* \(keyCompromise\)/);
  });

  it('delivers the held copies, in order, encrypted to the certificate registered next', async () => {
    const renewed = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 1000000001', dipIds: [sup.dipId], environment: 'DEV', validDays: 30 });
    await rotateParticipantCertificate(t.dip.backend.registry, { dipId: sup.dipId, certificatePem: renewed.certPem, overlapMs: 0 });
    const delivered = () => answered.filter((c) => c.status === 200).flatMap((c) => c.messages);
    await waitFor(() => delivered().length >= 2, 15_000, 'the held copies');
    expect(delivered().map((m) => m.payload.CommonBlock.D0.transactionID)).toEqual(sent);
    for (const m of delivered()) {
      expect(JSON.parse(await decryptWith(createPrivateKey(renewed.keyPem), m.payload.EncryptedCustomBlock))).toBeTruthy();
      await expect(decryptWith(createPrivateKey(sup.credentials.keyPem), m.payload.EncryptedCustomBlock)).rejects.toThrow();
    }
    await waitFor(() => worker()?.withheld === null, 5000, 'the queue to go on');
  });
});

/**
 * The same hold seen by a puller, over mutual TLS: a connection provider pulling for a participant that
 * nominated it (its own certificate is good; the participant's registered one is revoked, so nothing may be
 * encrypted to it). The pull is refused 409, saying why and what to do, hands nothing out and names no
 * position to acknowledge; once a new certificate is registered the same pull gives every held message, in
 * order, encrypted to the new key, and nothing is lost or repeated.
 */
describe('a pull of pattern 2 copies held for a revoked certificate (409), from the puller\'s side', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let cp: TestParticipant;
  const nomineeId = '1000000005';
  let nominee: KeyAndCert;
  let nomineeClient: DipClient;

  beforeAll(async () => {
    t = await startTestDip({ channels: { 'IF-021': { securityPattern: 2 } }, revocationPollMs: 20 });
    sds = await t.participant('2000000001', ['SDS']);
    cp = await t.participant('9000000001', ['DCP']);
    nominee = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 1000000005', dipIds: [nomineeId], environment: 'DEV', validDays: 30 });
    const { apiKey } = await onboardParticipant(t.dip.backend.registry, { dipId: nomineeId, roles: ['SUP'], certificatePem: nominee.certPem, connectionProvider: cp.dipId });
    nomineeClient = new DipClient({ baseUrl: t.dip.url, apiKey, keyPem: nominee.keyPem, certPem: nominee.certPem, caPem: t.dip.pki.ca.certPem });
  });
  afterAll(async () => {
    await nomineeClient?.close();
    await t?.close();
  });

  async function send(suffix: string): Promise<{ tx: string; answer: Json }> {
    const certs = await sds.client.call<{ encryption: string }>('GET', '/certificates/dip', '');
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [nomineeId], uniqueSuffix: suffix });
    const { CustomBlock, ...payload } = item.payload;
    const sent = await sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlock: await encryptTo(new X509Certificate(certs.body.encryption).publicKey, JSON.stringify(CustomBlock)) } }]);
    expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    return { tx: sent.body.messageArray[0]!.transactionID!, answer: sent.body };
  }
  const pull = () => cp.client.pull('IF-021', nomineeId);
  const txOf = (messages: unknown[]) => (messages as Json[]).map((m) => m.payload.CommonBlock.D0.transactionID as string);

  it('refuses the pull 409 saying why and what to do, hands out nothing, and delivers every held message to the next certificate', async () => {
    const first = await send('pw1');
    // Pulled (encrypted to the key then registered) but not acknowledged when the key is compromised.
    const before = await pull();
    expect([before.status, txOf(before.body)]).toEqual([200, [first.tx]]);

    await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, nominee.certPem, 'keyCompromise');
    // Read by the DIP within its poll: the participant's own calls are refused from then on.
    // Refused 401 on a connection kept alive, or at the handshake of a new one (the CRL): either says it was read.
    const refused = async () => (await nomineeClient.call('GET', '/certificates/dip', '')).status === 401;
    await waitFor(() => refused().catch((e: Error) => /other side closed|ECONNRESET|socket hang up/.test(String(e.message))), 10_000, 'the revocation to be read', 50);
    const second = await send('pw2');
    expect(JSON.stringify(second.answer)).toMatch(/1000000005 \(serial [0-9A-F]+\) was revoked/);

    const held = await pull();
    expect(held.status).toBe(409);
    const refusal = (held.body as unknown as Json).messageArray[0];
    expect(refusal.message).toBe('MSG1000 - Message Processing Failed');
    expect([refusal.recipientID, refusal.DIPConnectionProviderID]).toEqual([nomineeId, cp.dipId]);
    // Why, and what to do: register a new certificate (the operator's command names it), then pull again.
    expect(refusal.help).toMatch(/^the certificate registered for 1000000005 \(serial [0-9A-F]+\) was revoked at \S+ \(keyCompromise\): pattern 2 copies for 1000000005 are held until it registers a new certificate \(dip participant rotate-cert/);
    expect(refusal.help).toMatch(/pull again once it has: they come in order, encrypted to it, none lost$/);
    // Nothing handed out: no position to acknowledge, no signature vouching for messages.
    expect(held.headers['x-opendip-sequence']).toBeUndefined();
    expect(held.headers['x-dip-signature']).toBeUndefined();
    // Nothing past what the earlier pull handed out (position 1) can be acknowledged meanwhile.
    expect((await cp.client.ack('IF-021', nomineeId, 2)).status).toBe(400);

    const renewed = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 1000000005', dipIds: [nomineeId], environment: 'DEV', validDays: 30 });
    await rotateParticipantCertificate(t.dip.backend.registry, { dipId: nomineeId, certificatePem: renewed.certPem, overlapMs: 0 });
    const after = await pull();
    expect(after.status).toBe(200);
    expect(txOf(after.body)).toEqual([first.tx, second.tx]);
    expect([after.firstSeq, after.lastSeq]).toEqual([1, 2]);
    expect(answerNotFromDip('GET', after, [t.dip.pki.ca.certPem])).toBeNull();
    for (const m of after.body as Json[]) {
      expect(JSON.parse(await decryptWith(createPrivateKey(renewed.keyPem), m.payload.EncryptedCustomBlock))).toBeTruthy();
      await expect(decryptWith(createPrivateKey(nominee.keyPem), m.payload.EncryptedCustomBlock)).rejects.toThrow();
    }
    expect((await cp.client.ack('IF-021', nomineeId, 2)).status).toBe(200);
    const drained = await pull();
    expect([drained.status, drained.body]).toEqual([200, []]);
    expect(await t.dip.backend.deadLetters.deadLetters({ recipientDipId: nomineeId, channel: 'IF-021', limit: 10 })).toEqual([]);
  }, 120_000);
});

/**
 * Security pattern 3 (spec 5.2.3): the sender encrypts each recipient's copy to the certificate the DIP hands
 * out for it. Once that certificate is revoked (whoever holds the key reads what is encrypted to it) the DIP
 * neither hands it out nor accepts copies a sender encrypted to it: the sender learns why now, and encrypts
 * to the recipient's new certificate once one is registered (secrev6: both were allowed).
 */
describe('pattern 3: a revoked certificate is neither handed out nor encrypted to', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;

  beforeAll(async () => {
    t = await startTestDip({ channels: { 'IF-021': { securityPattern: 3 } }, revocationPollMs: 20 });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers 404 for the certificate, saying why, and refuses a copy encrypted to it until a new one is registered', async () => {
    const certificate = () => sds.client.call<{ encryption: string }>('GET', `/certificates/participant/${sup.dipId}`, '');
    const before = await certificate();
    expect(before.status).toBe(200);
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'p3rev' });
    const { CustomBlock, ...payload } = item.payload;
    const submit = async (pem: string) => sds.client.submit('IF-021', [{ payload: { ...payload, EncryptedCustomBlocks: { [sup.dipId]: await encryptTo(new X509Certificate(pem).publicKey, JSON.stringify(CustomBlock)) } } }]);

    await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, sup.credentials.certPem, 'keyCompromise');
    await waitFor(async () => (await certificate()).status === 404, 10_000, 'the revocation to be read');
    const refusedCert = (await certificate()).body as unknown as Json;
    expect(refusedCert.messageArray[0].help).toMatch(/^the certificate registered for 1000000001 \(serial [0-9A-F]+\) was revoked at \S+ \(keyCompromise\)/);

    const refused = await submit(before.body.encryption);
    expect(refused.status).toBe(400);
    expect(refused.body.messageArray[0]!.message).toBe('MSG1030 - Msg Addressing / Routing Error');
    expect(refused.body.messageArray[0]!.help).toMatch(/^item 0: payload\.EncryptedCustomBlocks\.1000000001: the certificate registered for 1000000001 \(serial [0-9A-F]+\) was revoked at \S+ \(keyCompromise\).*GET \/certificates\/participant\/1000000001/);

    const renewed = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 1000000001', dipIds: [sup.dipId], environment: 'DEV', validDays: 30 });
    await rotateParticipantCertificate(t.dip.backend.registry, { dipId: sup.dipId, certificatePem: renewed.certPem, overlapMs: 0 });
    const after = await certificate();
    expect(after.status).toBe(200);
    expect(after.body.encryption).toBe(renewed.certPem);
    const accepted = await submit(after.body.encryption);
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(201);
  });
});
