import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerNotFromDip, DipClient, ReplayInterrupted, type DipAnswer } from '../src/client/dip-client.js';
import { REPLAY_PAGE } from '../src/pipeline/replay.js';
import { contentHash, verifyDipSignature } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * Spec 5.2.2, pattern 1: the DIP signs what it sends and the recipient verifies. Webhook calls always
 * were; a recipient that pulls, or replays after losing data, got the same messages unsigned. Each pull and
 * replay answer is now signed over a string of its own (`RESPONSE <status>;METHOD;url;date;hash`), verified
 * here as a puller does (answerNotFromDip). A first attempt signed answers with a webhook call's string, and
 * a participant choosing its pull's URL and replaying webhook-shaped bodies got DIP signatures that verify
 * at another participant's webhook: the last case shows an answer's signature is no webhook call's.
 */
describe('pull and replay answers carry the DIP signature', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip();
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    for (const suffix of ['a', 'b']) {
      const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `sig${suffix}` })]);
      expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    }
  });
  afterAll(async () => t?.close());

  const verify = (method: string, answer: DipAnswer<unknown>): string | null => answerNotFromDip(method, answer, [t.dip.pki.ca.certPem]);

  it('signs a pull answer over its exact bytes, which stay the bare egress array', async () => {
    const pulled = await sup.client.pull('IF-021', sup.dipId);
    expect(pulled.status).toBe(200);
    expect(pulled.body).toHaveLength(2);
    expect(verify('GET', pulled)).toBeNull();
    expect(pulled.headers['x-dip-content-hash']).toBe(contentHash(pulled.raw));
    // The body is what it was: a JSON array of the copies, nothing wrapped around it.
    expect(pulled.raw.toString('utf8')).toBe(`[${pulled.body.map((m) => JSON.stringify(m)).join(',')}]`);
    expect(pulled.headers['content-type']).toBe('application/json; charset=utf-8');
    // Bound to the request and the status: not an answer to another URL or method, nor a 206 page.
    expect(verify('GET', { ...pulled, url: pulled.url.replace('/pull/', '/replay/') })).toMatch(/^bad-signature/);
    expect(verify('POST', pulled)).toMatch(/^bad-signature/);
    expect(verify('GET', { ...pulled, status: 206 })).toMatch(/^bad-signature/);
    // Nor with a byte changed.
    expect(verify('GET', { ...pulled, raw: Buffer.from(pulled.raw.toString('utf8').replace('"', ' "')) })).toMatch(/^bad-hash/);
    // A participant's own signature over the same string is not the DIP's.
    expect(answerNotFromDip('GET', pulled, [])).toContain('does not chain to a trusted DIP CA');
  });

  // An idle poll cost an RSA signature (~1.1 ms of CPU) for an answer that vouches for no message: at the
  // default rate limit one participant polling fast took a fifth of a core and the thread pool webhook
  // signing shares. An empty answer goes unsigned, and a puller's check passes it only when it is empty.
  it('leaves an empty pull answer unsigned, which the check passes only as empty', async () => {
    const ldso = await t.participant('3000000001', ['LDSO']);
    const nothing = await ldso.client.pull('IF-021', ldso.dipId);
    expect([nothing.status, nothing.raw.toString('utf8')]).toEqual([200, '[]']);
    expect(nothing.headers['x-dip-signature']).toBeUndefined();
    expect(verify('GET', nothing)).toBeNull();
    // Only as a 200: the DIP never sends an empty page (206).
    expect(verify('GET', { ...nothing, status: 206 })).toMatch(/^missing-header/);
    // Messages without the signature are refused.
    const pulled = await sup.client.pull('IF-021', sup.dipId);
    const stripped = Object.fromEntries(Object.entries(pulled.headers).filter(([k]) => !k.startsWith('x-dip-')));
    expect(verify('GET', { ...pulled, headers: stripped })).toMatch(/^missing-header/);
  });

  // What the DIP sends for a replay that finds nothing is the operator's choice (api.emptyReplay); 'empty-array'
  // answers 200 [] through the same sendSigned as an empty pull, so unsigned: the client takes it from replay too.
  it("takes an empty replay answered 200 [] (api.emptyReplay 'empty-array') unsigned, as the DIP sends it", async () => {
    const e = await startTestDip({ api: { emptyReplay: 'empty-array', validateAnswer: 'standard-response' } });
    try {
      const nobody = await e.participant('1000000003', ['SUP']);
      const client = new DipClient({ baseUrl: e.dip.url, apiKey: nobody.apiKey, keyPem: nobody.credentials.keyPem, certPem: nobody.credentials.certPem, caPem: e.dip.pki.ca.certPem, answerCas: [e.dip.pki.ca.certPem] });
      const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
      const raw = await client.replay('IF-021', nobody.dipId, filter);
      expect([raw.status, raw.raw.toString('utf8'), raw.headers['x-dip-signature']]).toEqual([200, '[]', undefined]);
      const pages = [];
      for await (const page of client.replayPages('IF-021', nobody.dipId, filter)) pages.push(page);
      expect(pages).toEqual([{ messages: [], continuation: undefined }]);
    } finally {
      await e.close();
    }
  });

  it('signs a replay answer', async () => {
    const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
    const replayed = await sup.client.replay('IF-021', sup.dipId, filter);
    expect(replayed.status).toBe(200);
    expect(replayed.body).toHaveLength(2);
    expect(verify('POST', replayed)).toBeNull();
    expect(replayed.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('signs each page of a replay longer than one (206), over its own status', async () => {
    // A recipient of its own, so the other cases' two messages stay two: one more than a page for it.
    const many = await t.participant('1000000002', ['SUP']);
    for (const [from, count] of [[0, 500], [500, REPLAY_PAGE + 1 - 500]] as const) {
      const items = Array.from({ length: count }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [many.dipId], uniqueSuffix: `page${from + i}` }));
      const sent = await sds.client.submit('IF-021', items);
      expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    }
    const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
    const first = await many.client.replay('IF-021', many.dipId, filter);
    expect(first.status).toBe(206);
    expect(first.body).toHaveLength(REPLAY_PAGE);
    expect(verify('POST', first)).toBeNull();
    expect(first.headers['x-dip-content-hash']).toBe(contentHash(first.raw));
    // The status is signed: a 206 page's signature is no 200's (a last page's), nor a 200's a 206's.
    expect(verify('POST', { ...first, status: 200 })).toMatch(/^bad-signature/);
    const token = first.headers['x-continuation-token'];
    expect(token).toBeDefined();
    // The token is signed too: one who can alter headers cannot send the client to another page (another
    // token in its place: the position is its first 48 bits, here one more), nor end the replay by taking
    // the token away, nor make a last page look continued by adding one.
    const otherToken = `${token!.slice(0, 11)}${token![11] === '0' ? '1' : '0'}${token!.slice(12)}`;
    expect(verify('POST', { ...first, headers: { ...first.headers, 'x-continuation-token': otherToken } })).toMatch(/^bad-signature/);
    expect(verify('POST', { ...first, headers: { ...first.headers, 'x-continuation-token': undefined } })).toMatch(/^bad-signature/);
    const last = await many.client.replay('IF-021', many.dipId, filter, token);
    expect([last.status, last.body]).toEqual([200, [expect.anything()]]);
    expect(verify('POST', last)).toBeNull();
    expect(verify('POST', { ...last, status: 206 })).toMatch(/^bad-signature/);
    expect(verify('POST', { ...last, headers: { ...last.headers, 'x-continuation-token': token } })).toMatch(/^bad-signature/);
  }, 120_000);

  // What the signed token is for: a man in the middle who can alter headers (not the signed bytes) puts, in
  // place of the first page's token, the second page's one, seen on an earlier replay of the same filter
  // (tokens are deterministic: the position and the filter). A client following tokens it does not check
  // skips the second page, 1,000 messages, without a word; the DIP's client checks each page and stops.
  it("the DIP's client refuses a page whose continuation token was swapped", async () => {
    const many = await t.participant('1000000003', ['SUP']);
    for (let from = 0; from < 2 * REPLAY_PAGE + 1; from += 500) {
      const count = Math.min(500, 2 * REPLAY_PAGE + 1 - from);
      const items = Array.from({ length: count }, (_, i) => buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [many.dipId], uniqueSuffix: `swap${from + i}` }));
      const sent = await sds.client.submit('IF-021', items);
      expect(sent.status, JSON.stringify(sent.body)).toBe(201);
    }
    const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
    const seen: Array<string | undefined> = [];
    for await (const page of many.client.replayPages('IF-021', many.dipId, filter)) seen.push(page.continuation);
    const [, afterFirst, afterSecond] = seen;
    expect(afterSecond).toBeDefined();
    // Over the same mutual-TLS connections as any call; only the first page's token header is altered.
    class Tampered extends DipClient {
      override async replay(...args: Parameters<DipClient['replay']>): Promise<DipAnswer<unknown>> {
        const answer = await super.replay(...args);
        return answer.headers['x-continuation-token'] === afterFirst ? { ...answer, headers: { ...answer.headers, 'x-continuation-token': afterSecond } } : answer;
      }
    }
    const tampered = new Tampered({ baseUrl: t.dip.url, apiKey: many.apiKey, keyPem: many.credentials.keyPem, certPem: many.credentials.certPem, caPem: t.dip.pki.ca.certPem, answerCas: [t.dip.pki.ca.certPem] });
    try {
      const got: number[] = [];
      const reading = (async () => {
        for await (const page of tampered.replayPages('IF-021', many.dipId, filter)) got.push(page.messages.length);
      })();
      const stopped = await reading.then(() => null, (err: unknown) => err);
      expect(stopped).toBeInstanceOf(ReplayInterrupted);
      expect((stopped as ReplayInterrupted).message).toMatch(/not the DIP's: bad-signature/);
      // Nothing of the first page was handed on, and resuming from where it stopped asks for it again.
      expect(got).toEqual([]);
      expect((stopped as ReplayInterrupted).continuation).toBeUndefined();
    } finally {
      await tampered.close();
    }
  }, 180_000);

  it("never verifies as a webhook call, whatever the method and URL (domain separation)", async () => {
    const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00' };
    const replayed = await sup.client.replay('IF-021', sup.dipId, filter);
    const signed = verifyDipSignature({ method: 'POST', url: replayed.url, body: replayed.raw, headers: replayed.headers, now: new Date(), maxSkewMs: 300_000, answer: { status: replayed.status } });
    expect(signed.ok).toBe(true);
    // The webhook verifier (what startWebhookReceiver runs), with the answer's bytes and headers as a call's.
    const asCall = (method: string, url: string) => verifyDipSignature({ method, url, body: replayed.raw, headers: replayed.headers, now: new Date(), maxSkewMs: 300_000 });
    const urls = [replayed.url, replayed.url.replace(/^https:\/\/[^/]+/, 'https://victim.example/hook?x='), 'https://victim.example/hook', 'https://localhost/'];
    for (const method of ['POST', 'GET', 'PUT', 'PATCH', 'DELETE', 'RESPONSE']) for (const url of urls) expect([method, url, asCall(method, url).ok]).toEqual([method, url, false]);
    // Why no URL can make it one: a call's string is `${method};…`, and a method is an HTTP token, which has
    // no ';'; the answer's string starts with a field that is no token (a space in it), so no request has it.
    expect(signed.stringToSign.startsWith('RESPONSE 200;POST;https://localhost:')).toBe(true);
    // The last field is the continuation token, empty on an answer that names no next page.
    expect(signed.stringToSign.endsWith(`;${replayed.headers['x-dip-content-hash']};`)).toBe(true);
    const first = signed.stringToSign.slice(0, signed.stringToSign.indexOf(';'));
    expect(first).not.toMatch(/^[!#$%&'*+.^\w`|~-]+$/);
    expect(() => httpRequest({ host: '127.0.0.1', port: 1, method: first })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_HTTP_TOKEN' }));
  });
});
