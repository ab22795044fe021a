/**
 * Every invalid submission to POST /dip-channel/{id} gets a specific 4xx, the right MSG code in the
 * published StandardResponse shape, and leaves no trace: no row in batches / messages / queue_entries
 * of the real SQLite file, and nothing at any recipient's webhook.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MSG, type MsgText } from '../src/domain/response-codes.js';
import type { StandardResponse } from '../src/domain/standard-response.js';
import { issueParticipantCertificate, type KeyAndCert } from '../src/security/pki.js';
import { contentHash, Signer } from '../src/security/signature.js';
import { gzipSync } from 'node:zlib';
import { buildIF021, type IF021Item } from '../src/sim/messages.js';
import { queueSettled, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Json = Record<string, any>;
interface Answer {
  status: number;
  body: StandardResponse;
}

const ENTRY_FIELDS = [
  'DIPConnectionProviderID',
  'correlationID',
  'help',
  'message',
  'recipientID',
  'senderID',
  'senderUniqueReference',
  'sentTimestamp',
  'serviceTicketURL',
  'transactionID',
].sort();
const MSG_TEXTS = new Set<string>(Object.values(MSG));
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const DIP_DATE_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$/;

/** Raw, fully controllable calls: whose TLS certificate, which API key, who signs, what bytes. */
class RawCaller {
  private readonly agents = new Map<string, Agent>();

  constructor(private readonly t: TestDip) {}

  async send(opts: {
    /** Whose client certificate is shown at the TLS handshake. */
    tls: TestParticipant;
    /** Default: the TLS participant's key; null: no X-API-Key header. */
    apiKey?: string | null;
    /** Who signs (key and certificate). Default: the TLS participant; null: no signature headers. */
    signer?: KeyAndCert | null;
    signedAt?: Date;
    /** The bytes that are signed; default: `body`. */
    signedBody?: string | Buffer;
    body: string | Buffer;
    path?: string;
    contentType?: string;
    /** Applied after signing: replace a header, or remove it with null. */
    headers?: Record<string, string | null>;
  }): Promise<Answer> {
    const url = `${this.t.dip.url}${opts.path ?? '/dip-channel/IF-021'}`;
    const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/json' };
    const apiKey = opts.apiKey === undefined ? opts.tls.apiKey : opts.apiKey;
    if (apiKey !== null) headers['x-api-key'] = apiKey;
    const signer = opts.signer === undefined ? opts.tls.credentials : opts.signer;
    if (signer !== null) {
      Object.assign(headers, await new Signer(signer.keyPem, signer.certPem).sign('POST', url, opts.signedBody ?? opts.body, opts.signedAt));
    }
    for (const [k, v] of Object.entries(opts.headers ?? {})) {
      if (v === null) delete headers[k.toLowerCase()];
      else headers[k.toLowerCase()] = v;
    }
    const res = await request(url, { method: 'POST', body: opts.body, headers, dispatcher: this.agent(opts.tls) });
    const text = await res.body.text();
    return { status: res.statusCode, body: (text === '' ? null : JSON.parse(text)) as StandardResponse };
  }

  private agent(p: TestParticipant): Agent {
    let a = this.agents.get(p.dipId);
    if (!a) {
      a = new Agent({ connect: { ca: this.t.dip.pki.ca.certPem, cert: p.credentials.certPem, key: p.credentials.keyPem } });
      this.agents.set(p.dipId, a);
    }
    return a;
  }

  async close(): Promise<void> {
    for (const a of this.agents.values()) await a.close();
  }
}

/** Row counts of the tables a submission writes, read from the DIP's own SQLite file. */
function tableCounter(t: TestDip): { counts(): Record<string, number>; close(): void } {
  const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true, fileMustExist: true });
  const statements = ['batches', 'messages', 'queue_entries'].map((table) => [table, db.prepare(`SELECT COUNT(*) AS n FROM ${table}`)] as const);
  return {
    counts: () => Object.fromEntries(statements.map(([table, s]) => [table, (s.get() as { n: number }).n])),
    close: () => db.close(),
  };
}

/** The published StandardResponse: messageArray entries with all ten fields, a 25-character timestamp. */
function expectStandardShape(body: StandardResponse, dipId: string, entries?: number): void {
  expect(body, 'a StandardResponse body').toBeTruthy();
  expect(Object.keys(body).sort()).toEqual(['messageArray', 'timestamp']);
  expect(body.timestamp).toMatch(DIP_DATE_TIME);
  expect(Array.isArray(body.messageArray)).toBe(true);
  expect(body.messageArray.length).toBeGreaterThan(0);
  if (entries !== undefined) expect(body.messageArray).toHaveLength(entries);
  for (const e of body.messageArray) {
    expect(Object.keys(e).sort()).toEqual(ENTRY_FIELDS);
    expect(MSG_TEXTS.has(e.message), `message '${e.message}' is a published MSG text`).toBe(true);
    expect(e.sentTimestamp).toMatch(DIP_DATE_TIME);
    expect(e.senderID).toBe(dipId);
    expect(e.serviceTicketURL).toBeNull();
  }
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
/** A number's exact text, which no JavaScript value would serialise to: put in place by withRawNumbers. */
const rawNumber = (text: string): string => `\u0000number:${text}`;
const withRawNumbers = (items: unknown[]): string => JSON.stringify(items).replace(/"\\u0000number:([^"]*)"/g, '$1');
const refOf = (item: IF021Item): string => item.payload.CommonBlock.S1.senderUniqueReference;

describe('ingest refusals: a specific 4xx, the right MSG code, and nothing stored', () => {
  let t: TestDip;
  let raw: RawCaller;
  let db: ReturnType<typeof tableCounter>;
  let sds: TestParticipant; // the sender under test
  let sds2: TestParticipant; // another data service
  let sup: TestParticipant; // primary recipient, SUP (may not send IF-021)
  let mds: TestParticipant; // "always" recipient
  let regs: TestParticipant; // registered, but receives nothing on IF-021
  let both: TestParticipant; // holds SDS and SUP
  let secondCert: KeyAndCert; // a valid certificate for sds's DIP ID from the DIP's CA, but not the one registered
  // A second DIP with small limits (bodyLimitBytes 64 KiB, maxBatchMessages 10), started alongside.
  let small: TestDip;
  let smallDb: ReturnType<typeof tableCounter>;
  let smallSender: TestParticipant;
  const inbox: Record<string, Awaited<ReturnType<TestDip['receiver']>>> = {};
  /** `${senderDIPID}|${senderUniqueReference}` of every message the DIP accepted (201). */
  const accepted: string[] = [];
  let n = 0;

  const item = (over: Partial<Parameters<typeof buildIF021>[0]> = {}): IF021Item =>
    buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `f${++n}x${Date.now().toString(36)}`, ...over });

  const delivered = (dipId: string): string[] =>
    inbox[dipId]!.calls.flatMap((c) => c.messages).map((m) => {
      const s1 = (m as Json).payload.CommonBlock.S1;
      return `${s1.senderDIPID}|${s1.senderUniqueReference}`;
    });

  /** Sends, then asserts status, shape, the first entry's code and help, and that no row was written. */
  async function refused(
    call: () => Promise<Answer>,
    status: number,
    message: MsgText,
    help: RegExp,
    recipientID: string | null = sds.dipId,
  ): Promise<StandardResponse> {
    const before = db.counts();
    const answer = await call();
    expect(answer.status, JSON.stringify(answer.body)).toBe(status);
    expectStandardShape(answer.body, t.config.dipId);
    const first = answer.body.messageArray[0]!;
    expect(first.message).toBe(message);
    expect(first.help).toMatch(help);
    // Nothing accepted has a transaction ID; a duplicate names the one it was accepted under (checked where it is).
    if (first.message !== MSG.duplicateReference) expect(first.transactionID).toBeNull();
    for (const e of answer.body.messageArray) expect(e.recipientID).toBe(recipientID);
    expect(db.counts(), 'nothing stored').toEqual(before);
    return answer.body;
  }

  async function acceptedOk(p: TestParticipant, items: IF021Item[]): Promise<Answer> {
    const before = db.counts();
    const answer = await p.client.submit('IF-021', items);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expectStandardShape(answer.body, t.config.dipId, items.length);
    for (const e of answer.body.messageArray) expect(e.message).toBe(MSG.success);
    const after = db.counts();
    expect(after.batches).toBe(before.batches! + 1);
    expect(after.messages).toBe(before.messages! + items.length);
    expect(after.queue_entries).toBe(before.queue_entries! + 2 * items.length); // SUP (primary) + MDS (always)
    for (const i of items) accepted.push(`${i.payload.CommonBlock.S1.senderDIPID}|${refOf(i)}`);
    return answer;
  }

  beforeAll(async () => {
    // /validate's StandardResponse form: its entries are compared with the submission's.
    [t, small] = await Promise.all([startTestDip({ api: { emptyReplay: 'bad-request', validateAnswer: 'standard-response' } }), startTestDip({ bodyLimitBytes: 64 * 1024, maxBatchMessages: 10 })]);
    raw = new RawCaller(t);
    [sds, sds2, sup, mds, regs, both, secondCert, smallSender] = await Promise.all([
      t.participant('2000000001', ['SDS']),
      t.participant('2000000002', ['SDS']),
      t.participant('1000000001', ['SUP']),
      t.participant('4000000001', ['MDS']),
      t.participant('6000000001', ['REGS']),
      t.participant('7000000001', ['SDS', 'SUP']),
      issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 2000000001 (spare)', dipIds: ['2000000001'], environment: t.config.environment, validDays: 30 }),
      (async () => {
        // The recipient first: the DIP reloads its registry when it meets an unknown API key (the
        // sender's), but only polls for other changes, so a recipient onboarded after the sender's
        // first call could stay unseen by routing for up to one poll interval.
        await small.participant('4000000001', ['MDS']);
        return small.participant('2000000001', ['SDS']);
      })(),
    ]);
    smallDb = tableCounter(small);
    for (const p of [sup, mds]) {
      const r = await t.receiver();
      expect((await p.client.setWebhook('IF-021', p.dipId, { callbackURL: `${r.url}if-021` })).status).toBe(201);
      inbox[p.dipId] = r;
    }
    db = tableCounter(t);
  });

  afterAll(async () => {
    db?.close();
    smallDb?.close();
    await raw?.close();
    await Promise.all([t?.close(), small?.close()]);
  });

  it('counts rows in the real database: a valid message writes one batch, one message, one queue entry per recipient', async () => {
    const ok = item();
    await acceptedOk(sds, [ok]);
    await waitFor(() => delivered(sup.dipId).length === 1 && delivered(mds.dipId).length === 1, 5000, 'first delivery');
  });

  describe('authentication: 401, MSG1000, help naming the problem', () => {
    const body = (): string => JSON.stringify([item()]);

    it('no X-API-Key', async () => {
      await refused(() => raw.send({ tls: sds, apiKey: null, body: body() }), 401, MSG.processingFailed, /X-API-Key header is missing/, null);
    });

    it('an unknown X-API-Key', async () => {
      await refused(() => raw.send({ tls: sds, apiKey: 'dip_not-a-key-anyone-was-given', body: body() }), 401, MSG.processingFailed, /X-API-Key is not recognised/, null);
    });

    it('no signature headers at all, or one of them missing', async () => {
      await refused(
        () => raw.send({ tls: sds, signer: null, body: body() }),
        401,
        MSG.processingFailed,
        /^message signature refused \(signature headers\): header x-dip-content-hash is missing.*x-dip-signature-certificate is missing \| the DIP verifies: POST;https:\/\/localhost:\d+\/dip-channel\/if-021;<x-dip-signature-date>;<x-dip-content-hash>$/,
        null,
      );
      for (const h of ['x-dip-content-hash', 'x-dip-signature-date', 'x-dip-signature', 'x-dip-signature-certificate']) {
        await refused(() => raw.send({ tls: sds, body: body(), headers: { [h]: null } }), 401, MSG.processingFailed, new RegExp(`header ${h} is missing`), null);
      }
    });

    it('a body tampered with after signing (content hash mismatch)', async () => {
      const signed = body();
      const tampered = signed.replace('"v":"', '"v":"9');
      expect(tampered).not.toBe(signed);
      await refused(
        () => raw.send({ tls: sds, body: tampered, signedBody: signed }),
        401,
        MSG.processingFailed,
        new RegExp(`^message signature refused \\(content hash\\): x-dip-content-hash does not match the body .* \\| the DIP verifies: POST;https://localhost:\\d+/dip-channel/if-021;[-\\d:.TZ]+;${escape(contentHash(tampered))}$`),
        null,
      );
    });

    it('a signature made with a different key than the certificate presented', async () => {
      const b = body();
      await refused(
        () =>
          raw.send({
            tls: sds,
            body: b,
            signer: sup.credentials, // SUP's key signs ...
            headers: { 'x-dip-signature-certificate': Buffer.from(sds.credentials.certPem).toString('base64') }, // ... SDS's certificate is shown
          }),
        401,
        MSG.processingFailed,
        /^message signature refused \(signature\): x-dip-signature was not made with the private key of the certificate in x-dip-signature-certificate.* \| the DIP verifies: POST;https:\/\/localhost:\d+\/dip-channel\/if-021;/,
        null,
      );
    });

    it("a valid signature with another participant's certificate, not the one registered for the caller", async () => {
      await refused(
        () => raw.send({ tls: sds, body: body(), signer: sup.credentials }),
        401,
        MSG.processingFailed,
        /^message signature refused \(registered certificate\): X-DIP-Signature-Certificate \(SHA-256 [0-9A-F]{64}\) is not the certificate registered for 2000000001 \(SHA-256 [0-9A-F]{64}\).* \| the DIP verifies: POST;/,
        null,
      );
    });

    it("another valid certificate from the DIP's own CA for the caller's DIP ID, but not the registered one", async () => {
      await refused(
        () => raw.send({ tls: sds, body: body(), signer: secondCert }),
        401,
        MSG.processingFailed,
        /is not the certificate registered for 2000000001/,
        null,
      );
    });

    it('a signature date outside the allowed clock skew, behind or ahead', async () => {
      const skew = t.config.maxClockSkewSeconds * 1000;
      await refused(
        () => raw.send({ tls: sds, body: body(), signedAt: new Date(Date.now() - skew - 60_000) }),
        401,
        MSG.processingFailed,
        new RegExp(`^message signature refused \\(clock skew\\): x-dip-signature-date .* is 3\\d\\d\\.\\d{3} s behind server time .*; limit is ${(skew / 1000).toFixed(3).replace('.', '\\.')} s \\| the DIP verifies: POST;`),
        null,
      );
      await refused(
        () => raw.send({ tls: sds, body: body(), signedAt: new Date(Date.now() + skew + 60_000) }),
        401,
        MSG.processingFailed,
        /x-dip-signature-date .* s ahead of server time/,
        null,
      );
    });

    it("participant A's TLS client certificate with participant B's API key (and B's signature) → 403", async () => {
      const answer = await refused(
        () => raw.send({ tls: sds, apiKey: sup.apiKey, signer: sup.credentials, body: body() }),
        403,
        MSG.processingFailed,
        /^the TLS client certificate is bound to 2000000001, not to the participant of this API key: /,
        null,
      );
      // Security review: the answer named the key's participant, so anyone holding a leaked key learnt whose
      // it was. The operator still reads it: the activity log records the request under the key's participant.
      expect(JSON.stringify(answer)).not.toContain(sup.dipId);
    });
  });

  describe('channel and sender role', () => {
    it('an unknown channel → 404 MSG1002', async () => {
      await refused(() => sds.client.submit('IF-999', [item()]), 404, MSG.interfaceIdInvalid, /dip-channel 'IF-999' is not a channel of this DIP/);
    });

    it('a path that is no resource (not a channel path) → 404 MSG1000 naming it, not MSG1002', async () => {
      for (const path of ['/nope', '/dip-channel-typo/IF-021']) {
        await refused(() => sds.client.call('GET', path, ''), 404, MSG.processingFailed, new RegExp(`no such resource: GET ${path}`), null);
      }
      // A segment too long outside the channel's place (here the recipient ID) is no interface ID either.
      await refused(() => sds.client.call('GET', `/dip-channel/IF-021/pull/${'9'.repeat(300)}`, ''), 404, MSG.processingFailed, /a path segment is longer than 200 characters/, null);
    });

    it('a channel ID too long to be one, or not a valid URL → 404 / 400 MSG1002, still a StandardResponse', async () => {
      await refused(
        () => sds.client.submit('IF-' + '9'.repeat(300), [item()]),
        404,
        MSG.interfaceIdInvalid,
        /no such resource: POST \/dip-channel\/IF-9+… \(a path segment is longer than 200 characters\)/,
        null,
      );
      await refused(() => sds.client.submit('IF-%zz', [item()]), 400, MSG.interfaceIdInvalid, /the path \/dip-channel\/IF-%zz is not a valid URL/, null);
    });

    it('a method other than POST on a channel → 405 with Allow: POST, in StandardResponse shape', async () => {
      for (const method of ['GET', 'PUT']) {
        const before = db.counts();
        const answer = await sds.client.call(method, '/dip-channel/IF-021', method === 'GET' ? '' : JSON.stringify([item()]));
        expect(answer.status).toBe(405);
        expect(answer.headers['allow']).toBe('POST');
        expectStandardShape(answer.body, t.config.dipId, 1);
        expect(answer.body.messageArray[0]!.help).toContain(`${method} is not allowed on /dip-channel/{id}`);
        expect(db.counts()).toEqual(before);
      }
    });

    it('a participant whose roles may not send on the channel (SUP on IF-021) → 403 MSG1010', async () => {
      const bySup = buildIF021({ senderDipId: sup.dipId, senderRole: 'SUP', uniqueSuffix: 'supsends' });
      await refused(
        () => sup.client.submit('IF-021', [bySup]),
        403,
        MSG.senderRoleInvalid,
        /1000000001 holds SUP; only SDS, ADS, UMSDS may send on IF-021/,
        sup.dipId,
      );
    });
  });

  describe('the body as a whole → 400 MSG1001', () => {
    it('not JSON', async () => {
      await refused(() => sds.client.submit('IF-021', '[{"payload": '), 400, MSG.schemaFailure, /the body is not valid JSON/);
    });

    it('JSON, but not an array', async () => {
      await refused(() => sds.client.submit('IF-021', JSON.stringify(item())), 400, MSG.schemaFailure, /the body must be a JSON array/);
    });

    it('an empty array', async () => {
      await refused(() => sds.client.submit('IF-021', []), 400, MSG.schemaFailure, /the body is an empty array/);
    });

    it('a member name given twice in the same case (JSON.parse would keep the last; a reader of the signed text may take the first)', async () => {
      const good = item();
      const text = JSON.stringify([item(), good]);
      const ref = good.payload.CommonBlock.S1.senderUniqueReference;
      // The second item's reference given twice: a decoy first, the real one last.
      const twice = text.replace(`"senderUniqueReference":"${ref}"`, `"senderUniqueReference":"S-DECOY","senderUniqueReference":"${ref}"`);
      expect(twice).not.toBe(text);
      await refused(() => sds.client.submit('IF-021', twice), 400, MSG.schemaFailure, /item 1: payload\.CommonBlock\.S1\.senderUniqueReference is given twice in one object/);
    });

    it('an array of something other than messages', async () => {
      await refused(() => sds.client.submit('IF-021', '[42]'), 400, MSG.schemaFailure, /item 0: .*payload is required|item 0: the message must be of type object/);
    });

    it('bytes that are not UTF-8, which decoding would have changed into U+FFFD after the sender signed them', async () => {
      const text = JSON.stringify([item()]);
      const at = text.indexOf('"', text.indexOf('senderUniqueReference') + 25);
      const body = Buffer.concat([Buffer.from(text.slice(0, at)), Buffer.from([0xff, 0xfe]), Buffer.from(text.slice(at))]);
      await refused(() => raw.send({ tls: sds, body }), 400, MSG.schemaFailure, /the body is not UTF-8 text/, null);
    });

    it('a compressed body (Content-Encoding), which the DIP does not decode', async () => {
      const body = gzipSync(JSON.stringify([item()]));
      await refused(() => raw.send({ tls: sds, body, headers: { 'content-encoding': 'gzip' } }), 400, MSG.schemaFailure, /Content-Encoding 'gzip' is not accepted: send the body uncompressed/, null);
    });

    it('a charset other than UTF-8, or a byte order mark, named as such (not read as UTF-8 regardless, nor "Unexpected token")', async () => {
      const body = JSON.stringify([item()]);
      await refused(() => raw.send({ tls: sds, body, headers: { 'content-type': 'application/json; charset=utf-16' } }), 400, MSG.schemaFailure, /Content-Type charset 'utf-16' is not accepted: JSON is exchanged in UTF-8/, null);
      await refused(() => raw.send({ tls: sds, body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)]) }), 400, MSG.schemaFailure, /starts with a UTF-8 byte order mark/, null);
    });

    it('an Accept that excludes JSON → 406, as published; one that allows it, however written, is served', async () => {
      for (const accept of ['application/xml', 'text/html, application/json;q=0']) {
        await refused(() => raw.send({ tls: sds, body: JSON.stringify([item()]), headers: { accept } }), 406, MSG.processingFailed, /excludes application\/json/, null);
      }
      for (const accept of ['application/json, text/plain, */*', '*/*', 'application/*;q=0.5', 'application/json; charset=utf-8', 'application/json;charset=UTF-8', 'application/json;version=2', 'text/html, application/json;q=0.1', '']) {
        const answer = await raw.send({ tls: sds, body: JSON.stringify([item()]), headers: { accept } });
        expect(answer.status, accept).toBe(201);
        accepted.push(`${sds.dipId}|${answer.body.messageArray[0]!.senderUniqueReference}`);
      }
    });

    it('a content type other than application/json', async () => {
      for (const type of ['text/plain', 'application/xml', '']) {
        const answer = await refused(
          () => raw.send({ tls: sds, body: JSON.stringify([item()]), contentType: type, headers: type === '' ? { 'content-type': null } : {} }),
          400, // the published operation lists no 415
          MSG.schemaFailure,
          // With none at all the help says so, not that an empty one was sent.
          type === '' ? /a body without a Content-Type is not accepted: send application\/json/ : new RegExp(`Content-Type '${type.replace('/', '\\/')}' is not accepted: send application/json`),
          null,
        );
        expect(answer.messageArray).toHaveLength(1);
      }
    });
  });

  describe('schema failures → 400 MSG1001 (or the field\'s own code), help naming the field and the rule', () => {
    const cases: Array<[string, (m: Json) => void, RegExp, (keyof typeof MSG)?]> = [
      ['CustomBlock.B900 missing', (m) => delete m.payload.CustomBlock.B900, /item 0: payload\.CustomBlock\.B900 is required/],
      [
        'senderUniqueReference not matching its pattern',
        (m) => (m.payload.CommonBlock.S1.senderUniqueReference = 'S-IF-021-not-a-reference'),
        /item 0: payload\.CommonBlock\.S1\.senderUniqueReference must match pattern \^S-/,
      ],
      [
        'an extra, unknown field',
        (m) => (m.payload.CommonBlock.S1.favouriteColour = 'blue'),
        /item 0: payload\.CommonBlock\.S1\.favouriteColour is not a field of payload\.CommonBlock\.S1 on IF-021; extra fields are not allowed/,
      ],
      [
        'an extra field named __proto__',
        (m) => Object.defineProperty(m.payload.CommonBlock.S1, '__proto__', { value: { polluted: true }, enumerable: true }),
        /item 0: payload\.CommonBlock\.S1\.__proto__ is not a field of payload\.CommonBlock\.S1/,
      ],
      [
        'an unknown block in CustomBlock',
        (m) => (m.payload.CustomBlock.B999 = { x: 1 }),
        /item 0: payload\.CustomBlock\.B999 is not a field of payload\.CustomBlock/,
      ],
      [
        "an event code that is not the channel's",
        (m) => (m.payload.CommonBlock.S0.eventCode = '[ConsumptionAmendment]'),
        /item 0: payload\.CommonBlock\.S0\.eventCode must be one of "\[ActivePower\]", "\[ReactivePower\]"/,
      ],
      [
        'S0.interfaceID of another channel',
        (m) => (m.payload.CommonBlock.S0.interfaceID = 'IF-022'),
        /item 0: payload\.CommonBlock\.S0\.interfaceID must be "IF-021": the message was sent on channel IF-021/,
        // DI-999's code for it, the help as for any schema failure.
        'interfaceIdInvalid',
      ],
      [
        'S0.interfaceID missing',
        (m) => delete m.payload.CommonBlock.S0.interfaceID,
        /item 0: payload\.CommonBlock\.S0\.interfaceID is required/,
        'interfaceIdInvalid',
      ],
      // A schema failure confined to one header field DI-999 has a code for is answered with that code, the
      // same one a well-formed but wrong value of the field gets (MSG1007 for a date-time that does not exist).
      [
        'senderTimestamp of the wrong length',
        (m) => (m.payload.CommonBlock.S1.senderTimestamp = '2025-01-01T00:00:00Z'),
        /item 0: payload\.CommonBlock\.S1\.senderTimestamp must be at least 25 characters long/,
        'senderTimestampInvalid',
      ],
      [
        'senderTimestamp missing',
        (m) => delete m.payload.CommonBlock.S1.senderTimestamp,
        /item 0: payload\.CommonBlock\.S1\.senderTimestamp is required/,
        'senderTimestampInvalid',
      ],
      [
        'senderCorrelationID of 61 characters',
        (m) => (m.payload.CommonBlock.S1.senderCorrelationID = 'C'.repeat(61)),
        /item 0: payload\.CommonBlock\.S1\.senderCorrelationID must be at most 60 characters long/,
        'senderCorrelationIdInvalid',
      ],
      [
        'senderCorrelationID empty',
        (m) => (m.payload.CommonBlock.S1.senderCorrelationID = ''),
        /item 0: payload\.CommonBlock\.S1\.senderCorrelationID must be at least 1 characters long/,
        'senderCorrelationIdInvalid',
      ],
      [
        'senderRoleID not a role code',
        (m) => (m.payload.CommonBlock.S1.senderRoleID = 'ZZ'),
        /item 0: payload\.CommonBlock\.S1\.senderRoleID must be /,
        'senderRoleInvalid',
      ],
      [
        'senderDIPID not a string',
        (m) => (m.payload.CommonBlock.S1.senderDIPID = 12),
        /item 0: payload\.CommonBlock\.S1\.senderDIPID must be of type string/,
        'senderDipIdInvalid',
      ],
      [
        'DIPConnectionProviderID not a string',
        (m) => (m.payload.CommonBlock.S1.DIPConnectionProviderID = 12),
        /item 0: payload\.CommonBlock\.S1\.DIPConnectionProviderID must be of type string/,
        'connectionProviderInvalid',
      ],
      // Two header fields at fault: no one field's code says it, so the generic one.
      [
        'senderCorrelationID and senderTimestamp both wrong',
        (m) => {
          m.payload.CommonBlock.S1.senderCorrelationID = '';
          m.payload.CommonBlock.S1.senderTimestamp = '2025-01-01T00:00:00Z';
        },
        /item 0: payload\.CommonBlock\.S1\.(senderCorrelationID|senderTimestamp) must be/,
      ],
      // The code is read from every issue, not from the ten shown: twelve shallower ones come first here.
      [
        'S0.interfaceID of another channel behind twelve shallower problems',
        (m) => {
          m.payload.CommonBlock.S0.interfaceID = 'IF-022';
          for (let i = 0; i < 12; i++) m.payload[`x${i}`] = i;
        },
        /^item 0: payload\.x0 is not a field of /,
        'interfaceIdInvalid',
      ],
      // The missing or mistyped block is named first, not left among the "(+n more)" behind the CustomBlock fields.
      [
        'CommonBlock missing, CustomBlock empty',
        (m) => {
          delete m.payload.CommonBlock;
          m.payload.CustomBlock = {};
        },
        /^item 0: payload\.CommonBlock is required; /,
      ],
      [
        'CommonBlock not an object, CustomBlock empty',
        (m) => {
          m.payload.CommonBlock = 'S0';
          m.payload.CustomBlock = {};
        },
        /^item 0: payload\.CommonBlock must be of type object; /,
      ],
      // More than ten problems are cut to ten only after ordering: the envelope's is not the one cut.
      [
        'eleven CustomBlock problems and one in the CommonBlock',
        (m) => {
          m.payload.CommonBlock.S1.senderTimestamp = '2025-01-01T00:00:00Z';
          const period = (m.payload.CustomBlock.B900.settlementDayConsumptionPeriods as Json[])[0]!.consumptionPeriods[0];
          for (let i = 0; i < 11; i++) period[`extra${i}`] = i;
        },
        /^item 0: payload\.CommonBlock\.S1\.senderTimestamp must be at least 25 characters long; /,
      ],
      // Three shown and the rest counted, all of them: before, the count was taken after the cut to ten (+7).
      [
        'fourteen problems: three shown, "+11 more"',
        (m) => {
          // Beside S1: short paths, so that three and the count fit the help text's 500 characters.
          for (let i = 0; i < 14; i++) m.payload.CommonBlock.S1[`x${i}`] = i;
        },
        /^item 0: payload\.CommonBlock\.S1\.x0 is not a field of .*; payload\.CommonBlock\.S1\.x2 is not a field of [^;]*; extra fields are not allowed \(\+11 more\)$/,
      ],
      [
        'problems too long for three in the help text: as many as fit, and the count of the rest kept',
        (m) => {
          // Each of these issues is over 200 characters: three and the count would pass the 500 allowed.
          for (let i = 0; i < 5; i++) m.payload.CommonBlock.S1[`${'long'.repeat(40)}${i}`] = i;
        },
        /^item 0: payload\.CommonBlock\.S1\.(long)+0 is not a field of .* \(\+[34] more\)$/,
      ],
      [
        'the same field twice in different case',
        (m) => (m.payload.CommonBlock.S1.SENDERDIPID = m.payload.CommonBlock.S1.senderDIPID),
        /item 0: payload\.CommonBlock\.S1\.\w+ is given twice/i,
        // Which of the two is the sender cannot be told: the field's own code, as for any problem of it alone.
        'senderDipIdInvalid',
      ],
      // Numbers a double does not hold (src/security/json-numbers.ts): the schema allows them, the parse alters them.
      [
        'CustomBlock: an integer of 21 significant digits that reads as the 30 the schema requires',
        (m) => ((m.payload.CustomBlock.B900.settlementDayConsumptionPeriods as Json[])[0]!.settlementDay.periodDuration = rawNumber('30.00000000000000000001')),
        /^item 0: payload\.CustomBlock\.B900\.settlementDayConsumptionPeriods\[0\]\.settlementDay\.periodDuration is 30\.00000000000000000001, which an IEEE 754 double does not hold .*: it would be delivered as 30; send it with at most 15 significant digits/,
      ],
      [
        'CustomBlock: the same, negative and with an exponent',
        (m) => ((m.payload.CustomBlock.B900.settlementDayConsumptionPeriods as Json[])[0]!.settlementDay.periodDuration = rawNumber('-3.0000000000000000001E+1')),
        /^item 0: payload\.CustomBlock\.B900\.settlementDayConsumptionPeriods\[0\]\.settlementDay\.periodDuration is -3\.0000000000000000001E\+1, .* delivered as -30;/,
      ],
      [
        'CustomBlock: beyond the largest double (read as Infinity, delivered as null)',
        (m) => ((m.payload.CustomBlock.B900.settlementDayConsumptionPeriods as Json[])[0]!.settlementDay.periodDuration = rawNumber('1e400')),
        /^item 0: payload\.CustomBlock\.B900\.settlementDayConsumptionPeriods\[0\]\.settlementDay\.periodDuration is 1e400, beyond the largest IEEE 754 double/,
      ],
      [
        // A number where the schema wants a string is refused for its type, as a short one is ("senderDIPID
        // not a string" above), with the field's own code: its digits are beside the point (MSG1001 before).
        'CommonBlock: a number too long for a double where the schema wants a string',
        (m) => (m.payload.CommonBlock.S1.senderDIPID = rawNumber('12345678901234567890')),
        /^item 0: payload\.CommonBlock\.S1\.senderDIPID must be of type string$/,
        'senderDipIdInvalid',
      ],
      [
        'CommonBlock: the same under the field name in another case (field names are case-insensitive)',
        (m) => {
          delete m.payload.CommonBlock.S1.senderDIPID;
          m.payload.CommonBlock.S1.senderdipid = rawNumber('12345678901234567890');
        },
        /^item 0: payload\.CommonBlock\.S1\.senderDIPID must be of type string$/,
        'senderDipIdInvalid',
      ],
      [
        'a number too long for a double where the schema wants a string, beside another field refused: MSG1001, both named',
        (m) => {
          m.payload.CommonBlock.S1.senderDIPID = rawNumber('12345678901234567890');
          m.payload.CommonBlock.S1.senderRoleID = 'ZZ';
        },
        /^item 0: .*senderDIPID must be of type string.*senderRoleID|^item 0: .*senderRoleID.*senderDIPID must be of type string/,
      ],
    ];
    for (const [name, spoil, help, code = 'schemaFailure'] of cases) {
      it(name, async () => {
        const m = clone(item()) as Json;
        spoil(m);
        const answer = await refused(() => sds.client.submit('IF-021', withRawNumbers([m])), 400, MSG[code], help);
        // The sender's reference is echoed back when it can be read, so the sender knows which item failed;
        // one not in its published form is not (the answer's schema, DT-995N, would not allow it).
        const ref = (m.payload.CommonBlock?.S1?.senderUniqueReference as string | undefined) ?? null;
        expect(answer.messageArray[0]!.senderUniqueReference).toBe(name.startsWith('senderUniqueReference') ? null : ref);
      });
    }
  });

  describe('numbers a double does not hold → 400 MSG1001 naming the item and the number', () => {
    const period = (m: Json): Json => (m.payload.CustomBlock.B900.settlementDayConsumptionPeriods as Json[])[0]!.settlementDay;

    it('the item at fault is named among good ones, and /validate answers the same', async () => {
      const bad = clone(item()) as Json;
      period(bad).periodDuration = rawNumber('30.000000000000000000000000001');
      const body = withRawNumbers([item(), bad]);
      const help = /^item 1: payload\.CustomBlock\.B900\.settlementDayConsumptionPeriods\[0\]\.settlementDay\.periodDuration is 30\.000000000000000000000000001, .* delivered as 30;/;
      const answer = await refused(() => sds.client.submit('IF-021', body), 400, MSG.processingFailed, /the batch is refused whole because item 1 failed/);
      expect(answer.messageArray[1]!.message).toBe(MSG.schemaFailure);
      expect(answer.messageArray[1]!.help).toMatch(help);
      const dry = await sds.client.call('POST', '/validate/IF-021/ActivePower', body);
      expect(dry.status).toBe(400);
      expect(dry.body.messageArray.map((e) => e.message)).toEqual([MSG.success, MSG.schemaFailure]);
      expect(dry.body.messageArray[1]!.help).toMatch(help);
    });

    it('the same value written otherwise (trailing zeros, an exponent, many digits that a double holds exactly) is accepted', async () => {
      for (const text of ['30.000000000000000000000', '3e1', '3.0000000000000000E+1', '0.00000000000000000003e21']) {
        const m = clone(item()) as Json;
        period(m).periodDuration = rawNumber(text);
        const answer = await sds.client.submit('IF-021', withRawNumbers([m]));
        expect(answer.status, `${text}: ${JSON.stringify(answer.body)}`).toBe(201);
        // Accepted, so delivered: the suite's last check holds every accepted message to its delivery.
        accepted.push(`${sds.dipId}|${refOf(m as IF021Item)}`);
      }
    });
  });

  describe('the header against the caller and the DIP', () => {
    const s1 = (change: (s1: Json) => void): IF021Item => {
      const m = clone(item());
      change(m.payload.CommonBlock.S1);
      return m;
    };

    it("S1.environmentTag other than the DIP's (DEV) → 400 MSG1001", async () => {
      await refused(
        () => sds.client.submit('IF-021', [s1((s) => (s.environmentTag = 'SIT'))]),
        400,
        MSG.schemaFailure,
        /item 0: S1\.environmentTag is SIT, but this DIP is the DEV environment/,
      );
    });

    it('S1.senderDIPID of another participant → 403 MSG1009', async () => {
      await refused(
        () => sds.client.submit('IF-021', [s1((s) => (s.senderDIPID = sds2.dipId))]),
        403,
        MSG.senderDipIdInvalid,
        /item 0: S1\.senderDIPID is 2000000002, but the caller is 2000000001/,
      );
    });

    it("S1.senderRoleID not one of the caller's roles → 403 MSG1010", async () => {
      await refused(
        () => sds.client.submit('IF-021', [s1((s) => (s.senderRoleID = 'ADS'))]),
        403,
        MSG.senderRoleInvalid,
        /item 0: S1\.senderRoleID ADS is not a role of 2000000001 \(SDS\)/,
      );
    });

    it('S1.senderRoleID a role the caller holds but that may not send on the channel → 403 MSG1010', async () => {
      const m = buildIF021({ senderDipId: both.dipId, senderRole: 'SUP', primaryRecipients: [sup.dipId], uniqueSuffix: 'bothsup' });
      await refused(
        () => both.client.submit('IF-021', [m]),
        403,
        MSG.senderRoleInvalid,
        /item 0: S1\.senderRoleID SUP may not send on IF-021 \(senders: SDS, ADS, UMSDS\)/,
        both.dipId,
      );
    });

    it('S1.DIPConnectionProviderID naming someone else → 403 MSG1011', async () => {
      const answer = await refused(
        () => sds.client.submit('IF-021', [s1((s) => (s.DIPConnectionProviderID = sds2.dipId))]),
        403,
        MSG.connectionProviderInvalid,
        /item 0: S1\.DIPConnectionProviderID 2000000002 is not the caller 2000000001/,
      );
      expect(answer.messageArray[0]!.DIPConnectionProviderID).toBe(sds2.dipId);
    });

    it('S1.senderTimestamp far in the future → 400 MSG1007', async () => {
      const future = new Date(Date.now() + 24 * 3600_000).toISOString().slice(0, 19) + '+00:00';
      await refused(
        () => sds.client.submit('IF-021', [s1((s) => (s.senderTimestamp = future))]),
        400,
        MSG.senderTimestampInvalid,
        /item 0: S1\.senderTimestamp .* is in the future/,
      );
    });

    it('S1.senderTimestamp of the right shape but no real date-time → 400 MSG1007', async () => {
      await refused(
        () => sds.client.submit('IF-021', [s1((s) => (s.senderTimestamp = '2025-13-45T99:99:99+00:00'))]),
        400,
        MSG.senderTimestampInvalid,
        /item 0: S1\.senderTimestamp '2025-13-45T99:99:99\+00:00' is not a date-time/,
      );
    });

    // Date.parse rolled these over to another instant (2 March, the next day) or read them as local time,
    // and the message was accepted with a timestamp its sender never wrote.
    it.each([
      ['2026-02-30T10:00:00+00:00', /2026-02 has no day 30/],
      ['2025-02-29T10:00:00+00:00', /2025-02 has no day 29/],
      ['2026-01-01T24:00:00+00:00', /24:00:00 is not a time of day/],
      ['2026-01-01 10:00:00+00:00', /25 characters: date, T, time to the second, offset/],
      ['Thu, 01 Jan 2026 10:00:00', /25 characters: date, T, time to the second, offset/],
    ])('S1.senderTimestamp %j, a date-time that does not exist or is not the wire form → 400 MSG1007', async (written, why) => {
      const answer = await refused(() => sds.client.submit('IF-021', [s1((s) => (s.senderTimestamp = written))]), 400, MSG.senderTimestampInvalid, /item 0: S1\.senderTimestamp '.*' is not a date-time like 2022-03-21T19:05:00\+00:00/);
      expect(answer.messageArray[0]!.help).toMatch(why);
    });
  });

  describe('routing', () => {
    it('a primary recipient that is not registered → 400 MSG1031', async () => {
      await refused(
        () => sds.client.submit('IF-021', [item({ primaryRecipients: [sup.dipId, '9999999999'] })]),
        400,
        MSG.primaryRecipientInvalid,
        /item 0: A0\.primaryRecipients: 9999999999 is not a registered DIP participant/,
      );
    });

    it('a primary recipient with no role that receives on the channel → 400 MSG1032', async () => {
      await refused(
        () => sds.client.submit('IF-021', [item({ primaryRecipients: [regs.dipId] })]),
        400,
        MSG.primaryRecipientRoleInvalid,
        /item 0: A0\.primaryRecipients: 6000000001 holds REGS, none of which receives on IF-021/,
      );
    });
  });

  describe('a batch is accepted or refused whole', () => {
    it('one bad item among good ones: whole batch refused, the good ones MSG1000 naming the failed item', async () => {
      const items = [item(), item(), item(), item()];
      const bad = items[2]!;
      bad.payload.CommonBlock.S1.senderTimestamp = '2025-01-01T00:00:00Z';
      const answer = await refused(() => sds.client.submit('IF-021', items), 400, MSG.processingFailed, /item 2 failed/);
      expect(answer.messageArray).toHaveLength(4);
      expect(answer.messageArray.map((e) => e.message)).toEqual([MSG.processingFailed, MSG.processingFailed, MSG.senderTimestampInvalid, MSG.processingFailed]);
      expect(answer.messageArray.map((e) => e.senderUniqueReference)).toEqual(items.map(refOf));
      for (const i of [0, 1, 3]) expect(answer.messageArray[i]!.help).toBe('not accepted: the batch is refused whole because item 2 failed (items are counted from 0)');
      expect(answer.messageArray[2]!.help).toMatch(/^item 2: payload\.CommonBlock\.S1\.senderTimestamp must be at least 25 characters long/);
    });

    it('the status is that of the first failing item; every failing item carries its own code', async () => {
      const items = [item(), item(), item()];
      items[0]!.payload.CommonBlock.S1.senderDIPID = sds2.dipId; // 403 MSG1009
      items[2]!.payload.CommonBlock.A0!.primaryRecipients = ['9999999999']; // 400 MSG1031
      const answer = await refused(() => sds.client.submit('IF-021', items), 403, MSG.senderDipIdInvalid, /item 0: S1\.senderDIPID/);
      expect(answer.messageArray.map((e) => e.message)).toEqual([MSG.senderDipIdInvalid, MSG.processingFailed, MSG.primaryRecipientInvalid]);
      // Every failing item is named, not only the first.
      expect(answer.messageArray[1]!.help).toBe('not accepted: the batch is refused whole because items 0 and 2 failed (items are counted from 0)');
      expect(answer.messageArray[2]!.help).toMatch(/^item 2: A0\.primaryRecipients: 9999999999/);
    });

    it('many failing items: the first ten named and the rest counted, within the help text', async () => {
      const items = Array.from({ length: 14 }, () => item());
      for (const i of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) items[i]!.payload.CommonBlock.A0!.primaryRecipients = ['9999999999'];
      const answer = await refused(() => sds.client.submit('IF-021', items), 400, MSG.processingFailed, /items 1, 2, 3/);
      for (const i of [0, 13]) expect(answer.messageArray[i]!.help).toBe('not accepted: the batch is refused whole because items 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 2 more failed (items are counted from 0)');
    });
  });

  describe('duplicate senderUniqueReference → 400 MSG1006', () => {
    it('twice within one batch: refused, nothing stored', async () => {
      const a = item();
      const again = clone(a);
      const other = item();
      const answer = await refused(() => sds.client.submit('IF-021', [a, other, again]), 400, MSG.processingFailed, /item 2 failed/);
      expect(answer.messageArray.map((e) => e.message)).toEqual([MSG.processingFailed, MSG.processingFailed, MSG.duplicateReference]);
      expect(answer.messageArray[2]!.help).toBe(`item 2: S1.senderUniqueReference ${refOf(a)} appears twice in this batch`);
      expect(answer.messageArray[2]!.senderUniqueReference).toBe(refOf(a));
    });

    it('resent after acceptance: refused, nothing new stored, the recipient gets the first one once', async () => {
      const a = item();
      const first = await acceptedOk(sds, [a]);
      const key = `${sds.dipId}|${refOf(a)}`;
      await waitFor(() => delivered(sup.dipId).includes(key), 5000, 'the first copy at SUP');

      const again = await refused(() => sds.client.submit('IF-021', [a]), 400, MSG.duplicateReference, new RegExp(`^item 0: S1\\.senderUniqueReference ${refOf(a)} was already accepted from 2000000001`));
      expect(again.messageArray[0]!.transactionID).toBe(first.body.messageArray[0]!.transactionID);
      // With a new message beside it, the batch is still refused whole and the new one is not kept.
      const fresh = item();
      const answer = await refused(() => sds.client.submit('IF-021', [fresh, a]), 400, MSG.processingFailed, /item 1 failed/);
      expect(answer.messageArray.map((e) => e.message)).toEqual([MSG.processingFailed, MSG.duplicateReference]);
      // Named by its place, as every failing item's help is (README, "Answers to a submission").
      expect(answer.messageArray[1]!.help).toMatch(/^item 1: S1\.senderUniqueReference /);

      // Everything SUP's queue holds is delivered: had the refused batch kept anything, it would be there.
      await waitFor(() => queueSettled(t.dip, { recipientDipId: sup.dipId, channel: 'IF-021' }), 5000, "SUP's queue settled");
      expect(delivered(sup.dipId).filter((k) => k === key)).toHaveLength(1);
      expect(delivered(sup.dipId)).not.toContain(`${sds.dipId}|${refOf(fresh)}`);
    });

    // An idempotent adapter takes MSG1006 as "already done": with new content under the old reference, that
    // content was dropped silently. The code stays (the contract); the help says the content differs.
    it('resent with different content: still MSG1006 naming the original transaction, the help saying the content differs; an exact resend (or a new senderTimestamp) does not', async () => {
      const a = item();
      const first = await acceptedOk(sds, [a]);
      const original = first.body.messageArray[0]!.transactionID;
      const restamped = clone(a);
      restamped.payload.CommonBlock.S1.senderTimestamp = '2026-01-01T00:00:00+00:00';
      for (const same of [a, restamped]) {
        const again = await sds.client.submit('IF-021', [same]);
        expect([again.status, again.body.messageArray[0]!.transactionID]).toEqual([400, original]);
        expect(again.body.messageArray[0]!.help).not.toContain('differs');
      }
      const changed = clone(a);
      changed.payload.CommonBlock.M0.GSPGroupID = changed.payload.CommonBlock.M0.GSPGroupID === '_A' ? '_B' : '_A';
      const answer = await sds.client.submit('IF-021', [changed]);
      expect([answer.status, answer.body.messageArray[0]!.message, answer.body.messageArray[0]!.transactionID]).toEqual([400, MSG.duplicateReference, original]);
      expect(answer.body.messageArray[0]!.help).toBe(`item 0: S1.senderUniqueReference ${refOf(a)} was already accepted from 2000000001, as transaction ${original}; its content differs from the message accepted under that reference: the new content was not accepted (send it under a new senderUniqueReference)`);
    });

    it('sent concurrently on several connections: exactly one is accepted, the others get MSG1006', async () => {
      const a = item();
      const before = db.counts();
      // Distinct requests (bodies differing in trailing whitespace, so distinct signatures) carrying the same message.
      const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => sds.client.submit('IF-021', JSON.stringify([a]) + ' '.repeat(i))));
      const statuses = answers.map((x) => x.status).sort();
      expect(statuses).toEqual([201, 400, 400, 400, 400, 400]);
      for (const x of answers) {
        expectStandardShape(x.body, t.config.dipId, 1);
        if (x.status === 400) expect(x.body.messageArray[0]!.message).toBe(MSG.duplicateReference);
      }
      expect(db.counts()).toEqual({ batches: before.batches! + 1, messages: before.messages! + 1, queue_entries: before.queue_entries! + 2 });
      accepted.push(`${sds.dipId}|${refOf(a)}`);
    });

    it('the same reference from a different sender is accepted', async () => {
      const mine = item();
      await acceptedOk(sds, [mine]);
      const theirs = buildIF021({ senderDipId: sds2.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: 'theirs' });
      theirs.payload.CommonBlock.S1.senderUniqueReference = refOf(mine);
      await acceptedOk(sds2, [theirs]);
      await waitFor(() => delivered(sup.dipId).includes(`${sds2.dipId}|${refOf(mine)}`), 5000, "the second sender's message at SUP");
    });
  });

  describe('size limits → 413 (a DIP with bodyLimitBytes 64 KiB, maxBatchMessages 10)', () => {
    const batch = (count: number, tag: string): IF021Item[] =>
      Array.from({ length: count }, (_, i) => buildIF021({ senderDipId: smallSender.dipId, senderRole: 'SDS', uniqueSuffix: `${tag}${i}x${Date.now().toString(36)}` }));

    it('a body over the limit', async () => {
      const items = batch(20, 'big');
      expect(JSON.stringify(items).length).toBeGreaterThan(64 * 1024);
      const before = smallDb.counts();
      const answer = await smallSender.client.submit('IF-021', items);
      expect(answer.status).toBe(413);
      expectStandardShape(answer.body, small.config.dipId, 1);
      expect(answer.body.messageArray[0]!.message).toBe(MSG.schemaFailure);
      expect(answer.body.messageArray[0]!.help).toBe('the body is larger than the limit of 65536 bytes');
      expect(smallDb.counts()).toEqual(before);
    });

    it('a batch of more messages than maxBatchMessages', async () => {
      const items = batch(11, 'many');
      expect(JSON.stringify(items).length).toBeLessThan(64 * 1024);
      const before = smallDb.counts();
      const answer = await smallSender.client.submit('IF-021', items);
      expect(answer.status).toBe(413);
      expectStandardShape(answer.body, small.config.dipId, 1);
      expect(answer.body.messageArray[0]!.message).toBe(MSG.schemaFailure);
      expect(answer.body.messageArray[0]!.help).toBe('the batch holds 11 messages; the limit is 10');
      expect(smallDb.counts()).toEqual(before);
    });

    it('still accepts a batch at the limits afterwards', async () => {
      const answer = await smallSender.client.submit('IF-021', batch(10, 'fits'));
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      expect(smallDb.counts().messages).toBe(10);
    });
  });

  describe('afterwards', () => {
    it('the recipients received exactly the accepted messages, each once, and nothing refused', async () => {
      await waitFor(() => delivered(sup.dipId).length >= accepted.length && delivered(mds.dipId).length >= accepted.length, 5000, 'all accepted messages');
      // Both queues settled: everything they hold has been called, so anything stray would be among the calls.
      for (const id of [sup.dipId, mds.dipId]) await waitFor(() => queueSettled(t.dip, { recipientDipId: id, channel: 'IF-021' }), 5000, `${id}'s queue settled`);
      for (const id of [sup.dipId, mds.dipId]) expect([...delivered(id)].sort()).toEqual([...accepted].sort());
      const c = db.counts();
      expect(c.messages).toBe(accepted.length);
      expect(c.queue_entries).toBe(2 * accepted.length);
    });

    it('the server is healthy: a valid message still gets 201 and is delivered', async () => {
      const ok = item();
      await acceptedOk(sds, [ok]);
      await waitFor(() => delivered(sup.dipId).includes(`${sds.dipId}|${refOf(ok)}`), 5000, 'the last message at SUP');
    });
  });
});
