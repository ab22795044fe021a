/**
 * Hostile identities: broken and borrowed credentials, tampered and replayed signatures, a sender
 * speaking for someone else, and a participant reaching beyond its roles. Every refusal is a 4xx
 * StandardResponse naming the reason, nothing is stored, and the DIP keeps serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sign as cryptoSign } from 'node:crypto';
import { contentHash, Signer, stringToSign } from '../../src/security/signature.js';
import type { TestParticipant } from '../helpers/dip-harness.js';
import {
  expectRefusal,
  expectStillServing,
  forgeCertificate,
  messageCount,
  send,
  signerFor,
  startHostileDip,
  submit,
  SUP_ID,
  validItem,
  type HostileDip,
  type SendOptions,
} from './helpers.js';

let h: HostileDip;
let mallory: TestParticipant; // another registered data service
const MALLORY_ID = '2000000002';
const LDSO_ID = '3000000001';

beforeAll(async () => {
  h = await startHostileDip();
  mallory = await h.t.participant(MALLORY_ID, ['SDS']);
  await h.t.participant(LDSO_ID, ['LDSO']);
});
afterAll(async () => {
  await h?.close();
});

const body = () => JSON.stringify([validItem()]);

describe('credentials and signatures', () => {
  const IF021 = '/dip-channel/IF-021';
  const cases: Array<[string, number, RegExp, (b: string) => Promise<Partial<SendOptions> & { as?: TestParticipant }>]> = [
    ['no X-API-Key', 401, /X-API-Key header is missing/, async () => ({ apiKey: null })],
    ['an unknown X-API-Key', 401, /not recognised/, async () => ({ apiKey: 'dip_not-a-real-key' })],
    ['X-API-Key sent twice (joined by the HTTP parser)', 401, /not recognised/, async () => ({ headers: { 'x-api-key': [h.sds.apiKey, h.sds.apiKey] } })],
    ["another participant's API key over one's own TLS certificate", 403, /TLS client certificate is bound to 2000000001, not to the participant of this API key: /, async () => ({ apiKey: mallory.apiKey })],
    ['no X-DIP-Content-Hash', 401, /x-dip-content-hash is missing/, async () => ({ headers: { 'x-dip-content-hash': undefined } })],
    ['no X-DIP-Signature-Date', 401, /x-dip-signature-date is missing/, async () => ({ headers: { 'x-dip-signature-date': undefined } })],
    ['no X-DIP-Signature', 401, /x-dip-signature is missing/, async () => ({ headers: { 'x-dip-signature': undefined } })],
    ['no X-DIP-Signature-Certificate', 401, /x-dip-signature-certificate is missing/, async () => ({ headers: { 'x-dip-signature-certificate': undefined } })],
    ['X-DIP-Signature sent twice', 401, /appears/, async () => {
      const s = await signerFor(h.sds).sign('POST', `${h.t.dip.url}${IF021}`, 'x');
      return { headers: { 'x-dip-signature': [s['x-dip-signature'], s['x-dip-signature']] } };
    }],
    ["a signature made with another participant's key, presenting one's own certificate", 401, /\(signature\): x-dip-signature was not made with the private key of the certificate/, async (b) => {
      const s = await signerFor(mallory).sign('POST', `${h.t.dip.url}${IF021}`, b);
      return { signature: { ...(await signerFor(h.sds).sign('POST', `${h.t.dip.url}${IF021}`, b)), 'x-dip-signature': s['x-dip-signature'], 'x-dip-signature-date': s['x-dip-signature-date'] } };
    }],
    ["a request signed entirely as another registered participant", 401, /is not the certificate registered for 2000000001/, async () => ({ signer: signerFor(mallory) })],
    ['a certificate from another CA naming the same DIP ID', 401, /is not the certificate registered for 2000000001/, async () => {
      const forged = await forgeCertificate({ dipId: '2000000001' });
      return { signer: new Signer(forged.keyPem, forged.certPem) };
    }],
    ['a body changed after signing', 401, /does not match the body/, async () => ({ signedBody: '[]' })],
    ['a body changed after signing, with its content hash recomputed', 401, /\(signature\): x-dip-signature was made with the certificate's key, but over another string/, async (b) => ({ signedBody: '[]', headers: { 'x-dip-content-hash': contentHash(b) } })],
    ['a signature for another channel', 401, /\(signature\): .* over another string/, async () => ({ signedUrl: `${h.t.dip.url}/dip-channel/IF-022` })],
    ['a signature for another host', 401, /\(signature\): .* over another string/, async () => ({ signedUrl: `https://dip.example${IF021}` })],
    ['a signature for another method', 401, /\(method or URL\): it was signed for method DELETE, but the request is a POST; the signature is over 'DELETE;https:\/\/localhost:\d+\/dip-channel\/if-021;/, async () => ({ signedMethod: 'DELETE' })],
    ['a signature over http:// for an https:// call', 401, /\(method or URL\): the URL was signed with http:\/\/ but called with https:\/\//, async () => ({ signedUrl: `${h.t.dip.url.replace('https:', 'http:')}${IF021}` })],
    ['a signature over the path alone', 401, /\(method or URL\): only the path was signed/, async () => ({ signedUrl: IF021 })],
    ['a signature over the URL without its port', 401, /\(method or URL\): the URL was signed without its port/, async () => ({ signedUrl: `https://localhost${IF021}` })],
    ['a signature date just past the skew limit', 401, /behind server time/, async () => ({ signedAt: new Date(Date.now() - 301_000) })],
    ['a signature date in the future', 401, /ahead of server time/, async () => ({ signedAt: new Date(Date.now() + 301_000) })],
    ['a signature date that is not ISO-8601', 401, /is not in the required format: an ISO-8601/, async () => ({ headers: { 'x-dip-signature-date': '23 Nov 2026 10:00:00 GMT' } })],
    // An HTTP-date holds a comma, which Node also puts between the values of a header sent twice: it was
    // refused as "header x-dip-signature-date appears more than once".
    ['a signature date as an HTTP-date (one header holding a comma)', 401, /x-dip-signature-date 'Sat, 05 Dec 2026 12:41:48 GMT' is not in the required format: an ISO-8601 UTC timestamp with milliseconds, like 2025-06-27T14:29:09\.061Z/, async () => ({ headers: { 'x-dip-signature-date': 'Sat, 05 Dec 2026 12:41:48 GMT' } })],
    ['a signature date sent twice', 401, /x-dip-signature-date appears more than once/, async () => {
      const date = new Date().toISOString();
      return { headers: { 'x-dip-signature-date': [date, date] } };
    }],
    ['a certificate header that is not a certificate', 401, /not a base64-encoded X.509 certificate/, async () => ({ headers: { 'x-dip-signature-certificate': Buffer.from('hello').toString('base64') } })],
    ['a signature that is not base64', 401, /not base64/, async () => ({ headers: { 'x-dip-signature': 'not*base64!' } })],
    ['a random signature of the right length', 401, /\(signature\): x-dip-signature was not made with the private key/, async () => ({ headers: { 'x-dip-signature': Buffer.alloc(256, 7).toString('base64') } })],
  ];

  let before = 0;
  beforeAll(() => {
    before = messageCount(h.t);
  });

  it.each(cases)('refuses %s (%i)', async (_name, status, help, make) => {
    const b = body();
    const o = await make(b);
    const a = await send(h.t, o.as ?? h.sds, { path: IF021, body: b, ...o });
    expectRefusal(a, status, help);
    // A signature refusal ends with the string the DIP verifies, for the caller to compare with its own.
    const text = (a.json as { messageArray: Array<{ help: string }> }).messageArray[0]!.help;
    if (text.startsWith('message signature')) expect(text).toMatch(/ \| the DIP verifies: POST;https:\/\/localhost:\d+\/dip-channel\/if-021;[^;]+;\S+$/);
  });

  it('stored nothing, and still accepts a valid message (201)', async () => {
    expect(messageCount(h.t)).toBe(before);
    await expectStillServing(h);
  });
});

describe('signature dates as RFC 3339 allows them', () => {
  // RFC 3339 5.6: "T" and "Z" may be lower case. The sender signs the header's text as it sends it, so the
  // DIP verifies that text: refused before as "not an ISO-8601 UTC timestamp".
  it('accepts 2026-12-05t12:41:48.000z (lower-case t and z), signed over the text as sent (201)', async () => {
    const b = body();
    const date = new Date().toISOString().replace('T', 't').replace('Z', 'z');
    const hash = contentHash(b);
    const signed = stringToSign('POST', `${h.t.dip.url}/dip-channel/IF-021`, date, hash);
    const own = await signerFor(h.sds).sign('POST', `${h.t.dip.url}/dip-channel/IF-021`, b);
    const signature = {
      ...own,
      'x-dip-signature-date': date,
      'x-dip-signature': cryptoSign('sha256', Buffer.from(signed, 'utf8'), h.sds.credentials.keyPem).toString('base64'),
    };
    const a = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: b, signature });
    expect(a.status, a.text).toBe(201);
  });
});

describe('replayed signatures', () => {
  let before = 0;
  beforeAll(() => {
    before = messageCount(h.t);
  });

  it('answers the same signed submission a second time for what it carries (400 MSG1006: already stored), on the same connection', async () => {
    const b = body();
    const first = await submit(h, b);
    expect(first.status).toBe(201);
    const again = await submit(h, b, { signature: first.signature });
    expectRefusal(again, 400, /already accepted/);
    expect((again.json as { messageArray: Array<{ message: string }> }).messageArray[0]!.message).toBe('MSG1006 - Sender Unique Reference Duplicated');
  });

  it('and from a fresh connection too', async () => {
    const b = body();
    const first = await submit(h, b);
    expect(first.status).toBe(201);
    const { Agent } = await import('undici');
    const fresh = new Agent({ connect: { ca: h.t.dip.pki.ca.certPem, cert: h.sds.credentials.certPem, key: h.sds.credentials.keyPem } });
    try {
      const res = await fresh.request({ origin: h.t.dip.url, path: '/dip-channel/IF-021', method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': h.sds.apiKey, ...first.signature }, body: b });
      const text = await res.body.text();
      expectRefusal({ status: res.statusCode, json: JSON.parse(text), text }, 400, /already accepted/);
    } finally {
      await fresh.close();
    }
  });

  it('answers a repeat of a submission refused for its content with the same refusal', async () => {
    const first = await submit(h, '[{"payload":{}}]');
    expect(first.status).toBe(400);
    const again = await submit(h, '[{"payload":{}}]', { signature: first.signature });
    const answers = (a: { json: unknown }) => (a.json as { messageArray: Array<{ message: string; help: string }> }).messageArray.map((e) => [e.message, e.help]);
    expect(again.status).toBe(400);
    expect(answers(again)).toEqual(answers(first));
  });

  it('refuses a replayed webhook registration', async () => {
    const cfg = JSON.stringify({ callbackURL: 'https://sup.example/dip' });
    const path = `/dip-channel/IF-021/pubconfig/${SUP_ID}`;
    const first = await send(h.t, h.sup, { path, body: cfg });
    expect(first.status).toBe(201);
    const again = await send(h.t, h.sup, { path, body: cfg, signature: first.signature });
    expectRefusal(again, 401, /replayed/);
  });

  it('refuses a replayed webhook registration whose signature is written in another base64 form of the same bytes', async () => {
    const cfg = JSON.stringify({ callbackURL: 'https://sup.example/dip-again' });
    const path = `/dip-channel/IF-021/pubconfig/${SUP_ID}`;
    const first = await send(h.t, h.sup, { path, body: cfg });
    expect(first.status).toBe(201);
    // A 256-byte RSA signature is 344 base64 characters ending '==': the last letter carries 4 bits
    // nobody reads, and the padding is optional to a lenient decoder. Each variant is the same signature.
    const sig = first.signature['x-dip-signature'];
    const core = sig.replace(/=+$/, '');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const otherBits = `${core.slice(0, -1)}${alphabet[alphabet.indexOf(core.at(-1)!) ^ 1]}`;
    expect(Buffer.from(otherBits, 'base64').equals(Buffer.from(sig, 'base64'))).toBe(true);
    for (const variant of [core, `${core}=`, `${otherBits}==`, otherBits]) {
      const again = await send(h.t, h.sup, { path, body: cfg, signature: { ...first.signature, 'x-dip-signature': variant } });
      expectRefusal(again, 401, /replayed/, variant.slice(-4));
    }
  });

  it('a re-signed resend of an accepted message is a duplicate (400 MSG1006), not a replay', async () => {
    const b = body();
    const accepted = await submit(h, b);
    expect(accepted.status).toBe(201);
    const resent = await submit(h, b);
    expectRefusal(resent, 400, /already accepted/);
    type Entries = { messageArray: Array<{ message: string; transactionID: string | null }> };
    expect((resent.json as Entries).messageArray[0]!.message).toBe('MSG1006 - Sender Unique Reference Duplicated');
    // With the transaction ID it was accepted under: a sender that lost the 201 learns it here.
    expect((resent.json as Entries).messageArray[0]!.transactionID).toBe((accepted.json as Entries).messageArray[0]!.transactionID);
  });

  it('stored each accepted message once, and still accepts a valid message (201)', async () => {
    expect(messageCount(h.t)).toBe(before + 3);
    await expectStillServing(h);
  });
});

describe('sender impersonation', () => {
  type Item = ReturnType<typeof validItem>;
  const withS1 = (patch: Record<string, unknown>) => {
    const item = validItem() as Item & { payload: { CommonBlock: { S1: Record<string, unknown> } } };
    Object.assign(item.payload.CommonBlock.S1, patch);
    return item;
  };
  const cases: Array<[string, number, string, RegExp, () => unknown[]]> = [
    ['S1.senderDIPID naming another registered data service', 403, 'MSG1009 - Sender DIP ID Invalid', /senderDIPID is 2000000002, but the caller is 2000000001/, () => [withS1({ senderDIPID: MALLORY_ID })]],
    ['S1.senderDIPID naming the recipient itself', 403, 'MSG1009 - Sender DIP ID Invalid', /but the caller is 2000000001/, () => [withS1({ senderDIPID: SUP_ID })]],
    ['S1.senderDIPID naming an unregistered participant', 403, 'MSG1009 - Sender DIP ID Invalid', /but the caller is 2000000001/, () => [withS1({ senderDIPID: '2999999999' })]],
    ['S1.DIPConnectionProviderID naming another participant', 403, 'MSG1011 - Connection Provider ID Invalid', /DIPConnectionProviderID 2000000002 is not the caller/, () => [withS1({ DIPConnectionProviderID: MALLORY_ID })]],
    ['one impersonating item in an otherwise honest batch', 403, 'MSG1009 - Sender DIP ID Invalid', /item 1: S1.senderDIPID/, () => [validItem(), withS1({ senderDIPID: MALLORY_ID })]],
  ];

  let before = 0;
  beforeAll(() => {
    before = messageCount(h.t);
  });

  it.each(cases)('refuses %s (%i)', async (_name, status, code, help, items) => {
    const a = await submit(h, JSON.stringify(items()));
    expectRefusal(a, status, help);
    expect((a.json as { messageArray: Array<{ message: string }> }).messageArray.map((e) => e.message)).toContain(code);
  });

  it('refuses a status message claiming another sender (403)', async () => {
    const entry = {
      transactionID: 'T-IF-021-2000000002-SDS-20261123-0000000000000000',
      senderUniqueReference: null,
      correlationID: null,
      sentTimestamp: '2026-11-23T10:00:00+00:00',
      senderID: MALLORY_ID,
      recipientID: SUP_ID,
      DIPConnectionProviderID: null,
      message: 'MSG1000 - Message Processing Failed',
      help: null,
      serviceTicketURL: null,
    };
    const a = await send(h.t, h.sup, { path: '/statusmessage', body: JSON.stringify([entry]) });
    expectRefusal(a, [400, 403]);
  });

  it('stored nothing, and still accepts a valid message (201)', async () => {
    expect(messageCount(h.t)).toBe(before);
    await expectStillServing(h);
  });
});

describe('role escalation', () => {
  const filter = JSON.stringify({ datetimeFrom: '2020-01-01T00:00:00+00:00', datetimeTo: '2099-01-01T00:00:00+00:00' });
  const hook = JSON.stringify({ callbackURL: 'https://evil.example/steal' });
  const cases: Array<[string, number, RegExp, () => { as: TestParticipant; o: SendOptions }]> = [
    ['a supplier (receiver only) sending on IF-021', 403, /only .* may send on IF-021/, () => ({ as: h.sup, o: { path: '/dip-channel/IF-021', body: JSON.stringify([validItem(SUP_ID)]) } })],
    ['a data service claiming the LDSO role in S1.senderRoleID', 403, /senderRoleID LDSO is not a role of 2000000001/, () => {
      const item = validItem() as unknown as { payload: { CommonBlock: { S1: { senderRoleID: string } } } };
      item.payload.CommonBlock.S1.senderRoleID = 'LDSO';
      return { as: h.sds, o: { path: '/dip-channel/IF-021', body: JSON.stringify([item]) } };
    }],
    ['a data service registering a webhook on a channel it does not receive', 403, /only .* receive on IF-021/, () => ({ as: h.sds, o: { path: `/dip-channel/IF-021/pubconfig/${h.sds.dipId}`, body: hook } })],
    ["a supplier registering a webhook for the LDSO's queue", 403, /recipient-id 3000000001 is not the caller 1000000001/, () => ({ as: h.sup, o: { path: `/dip-channel/IF-021/pubconfig/${LDSO_ID}`, body: hook } })],
    ["a supplier deleting the LDSO's webhook", 403, /is not the caller/, () => ({ as: h.sup, o: { method: 'DELETE', path: `/dip-channel/IF-021/pubconfig/${LDSO_ID}` } })],
    ["a supplier replaying the LDSO's queue", 403, /is not the caller/, () => ({ as: h.sup, o: { path: `/dip-channel/IF-021/replay/${LDSO_ID}`, body: filter } })],
    ["a supplier requeueing the LDSO's queue", 403, /is not the caller/, () => ({ as: h.sup, o: { path: `/dip-channel/IF-021/requeue/${LDSO_ID}`, body: filter } })],
    ["a supplier pulling the LDSO's queue", 403, /is not the caller/, () => ({ as: h.sup, o: { method: 'GET', path: `/dip-channel/IF-021/pull/${LDSO_ID}` } })],
    ["a supplier acknowledging the LDSO's queue", 403, /is not the caller/, () => ({ as: h.sup, o: { path: `/dip-channel/IF-021/ack/${LDSO_ID}`, body: '{"sequence": 1000000}' } })],
    ["a supplier redirecting the LDSO's status messages", 403, /is not the caller/, () => ({ as: h.sup, o: { path: `/statusmessage/config/${LDSO_ID}`, body: hook } })],
    ['a participant calling the operator API on the participant listener', 404, /no such resource/, () => ({ as: h.sup, o: { method: 'GET', path: '/admin/dead-letters' } })],
    ['a participant requeueing dead letters through the participant listener', 404, /no such resource/, () => ({ as: h.sup, o: { path: '/admin/dead-letters/requeue', body: JSON.stringify({ recipientDipId: LDSO_ID, channel: 'IF-021' }) } })],
  ];

  let before = 0;
  beforeAll(() => {
    before = messageCount(h.t);
  });

  it.each(cases)('refuses %s (%i)', async (_name, status, help, make) => {
    const { as, o } = make();
    const a = await send(h.t, as, o);
    expectRefusal(a, status, help);
  });

  it('stored nothing, and still accepts a valid message (201)', async () => {
    expect(messageCount(h.t)).toBe(before);
    await expectStillServing(h);
  });
});
