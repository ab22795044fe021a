/**
 * Item 5 of issue 14: the API's own request bodies (webhook configuration, replay filters, status
 * messages) are accepted exactly when the published API 2.1.0 accepts them. The oracle is built here,
 * straight from the reference YAML with its own $ref resolver and Ajv's native OpenAPI `nullable`,
 * independently of the generator that made the DIP's schemas; fast-check then looks for a body on which
 * the two disagree. Then the same over HTTPS for the cases participants met.
 * Reproduce a failure with the seed fast-check prints: FC_SEED=<seed> npx vitest run test/api-contract.test.ts
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileBodySchema, publishedSchema } from '../src/api/schemas.js';
import type { ApiSchemaName } from '../src/catalogue/types.js';
import { dipDateTime } from '../src/domain/time.js';
import { Signer } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { isObject, oracle, type Node } from './helpers/published-oracle.js';
import { HAVE_REFERENCE } from './helpers/reference.js';
import { arbitraryOf } from './helpers/schema-arbitrary.js';

const seed = process.env.FC_SEED ? Number(process.env.FC_SEED) : undefined;
const params = (numRuns: number) => ({ numRuns, ...(seed !== undefined ? { seed } : {}) });

/** Values that sit on the edges of the published types: lengths around each limit, wrong types, null. */
const edgy: fc.Arbitrary<Node> = fc.oneof(
  fc.constantFrom<Node>(null, true, 0, -1, 1.5, 10001, '', [], {}, ['x'], 'https://example.com/hook', 'ftp://x', 'not a uri'),
  fc.constantFrom(1, 9, 10, 11, 13, 24, 25, 26, 49, 50, 51, 59, 60, 61, 64, 65, 66, 199, 200, 201, 249, 250, 251, 499, 500, 501).chain((n) =>
    fc.constantFrom('1'.repeat(n), 'x'.repeat(n), `S-IF-021-1234567890-SUP-20240101-${'a'.repeat(Math.max(1, n - 33))}`),
  ),
  fc.constantFrom('2022-03-21T19:05:00+00:00', '2022-03-21T19:05:00Z', 'MSG0101 Application 101 error message', '[ActivePower]', '1234567890123'),
);

/** Bodies near the published shape: generated valid ones, then fields replaced, removed or added. */
function near(schema: ApiSchemaName): fc.Arbitrary<Node> {
  const base = arbitraryOf(publishedSchema(schema));
  const mutateObject = (o: Node): fc.Arbitrary<Node> => {
    if (!isObject(o)) return fc.constant(o);
    const keys = [...Object.keys(o), 'transactionIDs', 'callbackURL', 'extra'];
    return fc.tuple(fc.constantFrom(...keys), fc.oneof(edgy, fc.constant(undefined))).map(([k, v]) => {
      const copy: Record<string, Node> = { ...o };
      if (v === undefined) delete copy[k];
      else copy[k] = v;
      return copy;
    });
  };
  const mutated = base.chain((b) => (Array.isArray(b) ? fc.array(fc.constantFrom(...b).chain(mutateObject), { minLength: 0, maxLength: 3 }) : mutateObject(b)));
  return fc.oneof(base, mutated, mutated, edgy);
}

describe.skipIf(!HAVE_REFERENCE)('request bodies: the DIP accepts exactly what the published API 2.1.0 accepts', () => {
  it.each(['WebhookConfig', 'MessageRequest', 'StandardResponseArray'] as const)('%s: no body on which the DIP and the published schema disagree', (name) => {
    const published = oracle(name);
    const dip = compileBodySchema(publishedSchema(name));
    const verdicts = { accepted: 0, refused: 0 };
    fc.assert(
      fc.property(near(name), (body) => {
        const expected = published(body);
        expect(dip(body), JSON.stringify(body).slice(0, 400)).toBe(expected);
        verdicts[expected ? 'accepted' : 'refused']++;
      }),
      params(400),
    );
    // Both sides of the boundary were explored.
    expect(verdicts.accepted).toBeGreaterThan(20);
    expect(verdicts.refused).toBeGreaterThan(20);
  });

  it("the published types' own examples: free message text and 200-character references are valid, eleven-zero IDs are not", () => {
    const published = oracle('StandardResponseArray');
    const entry = {
      transactionID: 'T-IF-021-1401234567-SDS-20220321-1234CC0123456789',
      senderUniqueReference: `S-IF-021-1401234567-SUP-20220321-${'a'.repeat(167)}`,
      correlationID: null,
      sentTimestamp: '2022-03-21T11:15:59+00:00',
      senderID: '1401234567',
      recipientID: null,
      DIPConnectionProviderID: null,
      message: 'MSG0101 Application 101 error message',
      help: null,
      serviceTicketURL: null,
    };
    expect(entry.senderUniqueReference).toHaveLength(200);
    const dip = compileBodySchema(publishedSchema('StandardResponseArray'));
    for (const [body, valid] of [
      [[entry], true],
      [[{ ...entry, senderID: '00000000000' }], false],
      [[{ ...entry, senderUniqueReference: `${entry.senderUniqueReference}a` }], false],
    ] as const) {
      expect(published(body)).toBe(valid);
      expect(dip(body)).toBe(valid);
    }
  });
});

describe('request bodies over HTTPS', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let received: string;
  const window = { datetimeFrom: dipDateTime(new Date(Date.now() - 3_600_000)), datetimeTo: dipDateTime(new Date(Date.now() + 60_000)) };

  beforeAll(async () => {
    t = await startTestDip();
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    const sent = await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: `contract${process.pid}` })]);
    expect(sent.status).toBe(201);
    received = sent.body.messageArray[0]!.transactionID!;
  });
  afterAll(async () => {
    await t?.close();
  });

  const replay = (body: object) => sup.client.call<unknown>('POST', `/dip-channel/IF-021/replay/${sup.dipId}`, JSON.stringify(body));

  it('a replay without the fields the published MessageRequest requires is refused, naming each (400 MSG1001)', async () => {
    const answer = await replay(window);
    expect(answer.status).toBe(400);
    const entry = (answer.body as { messageArray: Array<{ message: string; help: string; recipientID: string }> }).messageArray[0]!;
    expect(entry.message).toBe('MSG1001 - Schema Failure');
    expect(entry.recipientID).toBe(sup.dipId);
    for (const field of ['eventCode', 'MPAN', 'version']) expect(entry.help).toContain(`${field} is required`);
  });

  it('a replay with them null is served (200), field names in any case; open bounds are open', async () => {
    const exact = await replay({ ...window, eventCode: null, MPAN: null, version: null });
    expect(exact.status, JSON.stringify(exact.body)).toBe(200);
    expect(exact.body).toHaveLength(1);
    const anyCase = await replay({ DATETIMEFROM: null, datetimeto: null, EventCode: null, mpan: null, Version: null });
    expect(anyCase.status, JSON.stringify(anyCase.body)).toBe(200);
    expect(anyCase.body).toHaveLength(1);
  });

  // The operator API refuses a property its schema does not list (it used to strip it); the participant
  // listener is not changed by that: it has its own validator (nothing removed), and the published
  // WebhookConfig and MessageRequest do not say additionalProperties: false, so an adapter that sends a
  // field of its own still gets what it got before.
  it('a webhook configuration or replay with a field the published schema does not name is taken as before', async () => {
    const hook = await sup.client.call('POST', `/dip-channel/IF-021/pubconfig/${sup.dipId}`, JSON.stringify({ callbackURL: 'https://example.com/extra', maxMessageCount: 4, adapterVersion: '1.2' }));
    expect([hook.status, hook.body.messageArray[0]!.help]).toEqual([201, 'webhook for IF-021 set to https://example.com/extra']);
    expect((await t.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === sup.dipId && w.channel === 'IF-021')).toMatchObject({ url: 'https://example.com/extra', maxMessageCount: 4 });
    const replayed = await replay({ ...window, eventCode: null, MPAN: null, version: null, adapterVersion: '1.2' });
    expect(replayed.status, JSON.stringify(replayed.body)).toBe(200);
    expect(replayed.body).toHaveLength(1);
  });

  it('a replay with a 25-character date that is not a date, or a window backwards, is refused naming it', async () => {
    const notADate = await replay({ ...window, datetimeFrom: 'x'.repeat(25), eventCode: null, MPAN: null, version: null });
    expect([notADate.status, JSON.stringify(notADate.body)]).toEqual([400, expect.stringContaining("datetimeFrom 'xxxxxxxxxxxxxxxxxxxxxxxxx' is not a date-time")]);
    const backwards = await replay({ datetimeFrom: window.datetimeTo, datetimeTo: window.datetimeFrom, eventCode: null, MPAN: null, version: null });
    expect([backwards.status, JSON.stringify(backwards.body)]).toEqual([400, expect.stringContaining('is after datetimeTo')]);
  });

  it('status messages and webhook configurations take field names in any case, and refuse one given twice', async () => {
    const entry = {
      TRANSACTIONID: received,
      senderuniquereference: null,
      CorrelationId: null,
      sentTimestamp: dipDateTime(new Date()),
      SENDERID: sup.dipId,
      recipientid: null,
      dipconnectionproviderid: null,
      Message: 'RCP1061 - MPAN Invalid or Unknown',
      HELP: null,
      serviceticketurl: null,
    };
    const status = await sup.client.statusMessage([entry]);
    expect(status.status, JSON.stringify(status.body)).toBe(201);
    const hook = await sup.client.call('POST', `/dip-channel/IF-021/pubconfig/${sup.dipId}`, JSON.stringify({ CALLBACKURL: 'https://example.com/hook', MaxMessageCount: 5 }));
    expect(hook.status, JSON.stringify(hook.body)).toBe(201);
    const twice = await sup.client.call('POST', `/dip-channel/IF-021/pubconfig/${sup.dipId}`, '{"callbackURL":"https://example.com/a","CALLBACKURL":"https://example.com/b"}');
    expect([twice.status, twice.body.messageArray[0]!.help]).toEqual([400, expect.stringContaining('callbackURL is given twice')]);
    // The same case twice: JSON.parse alone would keep the last.
    const same = await sup.client.call('POST', `/dip-channel/IF-021/pubconfig/${sup.dipId}`, '{"callbackURL":"https://example.com/a","callbackURL":"https://example.com/b"}');
    expect([same.status, same.body.messageArray[0]!.help]).toEqual([400, expect.stringContaining('callbackURL is given twice in one object')]);
  });

  it('takes a webhook configuration nested under config, where the published callback expression reads it ({$request.body#/config.callbackURL})', async () => {
    const path = `/dip-channel/IF-021/pubconfig/${sup.dipId}`;
    const nested = await sup.client.call('POST', path, JSON.stringify({ Config: { callbackurl: 'https://example.com/nested', maxMessageCount: 7 } }));
    expect([nested.status, nested.body.messageArray[0]!.help]).toEqual([201, 'webhook for IF-021 set to https://example.com/nested']);
    const stored = (await t.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === sup.dipId && w.channel === 'IF-021');
    expect(stored).toMatchObject({ url: 'https://example.com/nested', maxMessageCount: 7 });
    // Checked like the flat form, field by field.
    const bad = await sup.client.call('POST', path, JSON.stringify({ config: { callbackURL: 'https://example.com/x', maxMessageCount: '7' } }));
    expect([bad.status, bad.body.messageArray[0]!.help]).toEqual([400, expect.stringContaining('config.maxMessageCount must be of type number')]);
    // OpenDIP's own rules name the nested field the same way (they named the flat one, which the body did not have).
    const zero = await sup.client.call('POST', path, JSON.stringify({ config: { callbackURL: 'https://example.com/x', maxMessageCount: 0 } }));
    expect([zero.status, zero.body.messageArray[0]!.help]).toEqual([400, 'config.maxMessageCount must be a whole number from 1 to 10000 (messages per webhook call), not 0']);
    const ftp = await sup.client.call('POST', path, JSON.stringify({ config: { callbackURL: 'ftp://example.com/x' } }));
    expect([ftp.status, ftp.body.messageArray[0]!.help]).toEqual([400, expect.stringMatching(/^config\.callbackURL must be an http\(s\) URL/)]);
    // A flat field's refusal keeps its flat name.
    const flatZero = await sup.client.call('POST', path, JSON.stringify({ maxMessageCount: 0, config: { callbackURL: 'https://example.com/x' } }));
    expect([flatZero.status, flatZero.body.messageArray[0]!.help]).toEqual([400, expect.stringMatching(/^maxMessageCount must be a whole number/)]);
    // A flat field beside the nested form is taken too, over its nested twin.
    const mixed = await sup.client.call('POST', path, JSON.stringify({ maxMessageCount: 3, config: { callbackURL: 'https://example.com/mixed', maxMessageCount: 9 } }));
    expect(mixed.status).toBe(201);
    expect((await t.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === sup.dipId && w.channel === 'IF-021')).toMatchObject({ url: 'https://example.com/mixed', maxMessageCount: 3 });
    // The flat form wins when both are given.
    const both = await sup.client.call('POST', path, JSON.stringify({ callbackURL: 'https://example.com/flat', config: { callbackURL: 'https://example.com/nested' } }));
    expect(both.body.messageArray[0]!.help).toBe('webhook for IF-021 set to https://example.com/flat');
  });

  // The reference: "Ingress does not enforce the case of JSON field names or URLs". The channel in a path was
  // read in any case; a recipient-id with letters (an LDSO's DIP ID) was refused 403 "not the caller" unless
  // written in the registered case, so a client that lower-cases the URL it signs and sends was locked out.
  it('reads the recipient-id of a path in any case, as the channel', async () => {
    const ldso = await t.participant('LDSO160000', ['LDSO']);
    const hook = await ldso.client.call('POST', '/dip-channel/if-021/pubconfig/ldso160000', JSON.stringify({ callbackURL: 'https://example.com/ldso' }));
    expect([hook.status, hook.body.messageArray[0]!.recipientID], JSON.stringify(hook.body)).toEqual([201, 'LDSO160000']);
    expect((await t.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === 'LDSO160000' && w.channel === 'IF-021')).toMatchObject({ url: 'https://example.com/ldso' });
    expect((await ldso.client.call('DELETE', '/dip-channel/IF-021/pubconfig/Ldso160000', '')).status).toBe(204);
    expect((await t.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === 'LDSO160000' && w.channel === 'IF-021')).toBeUndefined();
    const pulled = await ldso.client.call<unknown>('GET', '/dip-channel/IF-021/pull/ldso160000', '');
    expect(pulled.status, JSON.stringify(pulled.body)).toBe(200);
    const replayed = await ldso.client.call('POST', '/dip-channel/IF-021/replay/ldso160000', JSON.stringify({ datetimeFrom: null, datetimeTo: null, eventCode: null, MPAN: null, version: null }));
    expect([replayed.status, JSON.stringify(replayed.body)]).toEqual([400, expect.stringContaining('nothing to replay: no archived message on IF-021 for LDSO160000')]);
    expect((await ldso.client.call('POST', '/statusmessage/config/ldso160000', JSON.stringify({ callbackURL: 'https://example.com/ldso' }))).status).toBe(201);
    // Another participant's ID, in whatever case, is still not the caller's.
    const other = await t.participant('LDSO170000', ['LDSO']);
    const refused = await other.client.call('POST', '/dip-channel/IF-021/pubconfig/ldso160000', JSON.stringify({ callbackURL: 'https://example.com/x' }));
    expect([refused.status, refused.body.messageArray[0]!.help]).toEqual([403, 'recipient-id ldso160000 is not the caller LDSO170000']);
    // A participant's certificate (to encrypt to) is found by its DIP ID in any case too.
    const cert = await other.client.call<{ dipId: string }>('GET', '/certificates/participant/ldso160000', '');
    expect([cert.status, cert.body.dipId]).toEqual([200, 'LDSO160000']);
    // Two registered IDs differing only in case: each is read exactly, and a third spelling names neither.
    const upper = await t.participant('LDSO180000', ['LDSO']);
    const lower = await t.participant('ldso180000', ['LDSO']);
    expect((await upper.client.call('POST', '/dip-channel/IF-021/pubconfig/LDSO180000', JSON.stringify({ callbackURL: 'https://example.com/u' }))).status).toBe(201);
    expect((await lower.client.call('POST', '/dip-channel/IF-021/pubconfig/ldso180000', JSON.stringify({ callbackURL: 'https://example.com/l' }))).status).toBe(201);
    expect((await upper.client.call('POST', '/dip-channel/IF-021/pubconfig/Ldso180000', JSON.stringify({ callbackURL: 'https://example.com/x' }))).status).toBe(403);
    expect((await lower.client.call('POST', '/dip-channel/IF-021/pubconfig/LDSO180000', JSON.stringify({ callbackURL: 'https://example.com/x' }))).status).toBe(403);
  });

  // The public Postman pre-request script (the reference's example of a client written by others, which
  // participants used against the live DIP) hashes the text "{}" for a request without a body.
  it('takes a bodiless call signed as the public Postman pre-request script signs it (the hash of "{}")', async () => {
    const signer = new Signer(sup.credentials.keyPem, sup.credentials.certPem);
    const asPostman = async (method: string, path: string) => sup.client.call<unknown>(method, path, '', { ...(await signer.sign(method, `${t.dip.url}${path}`, '{}')) });
    const hook = `/dip-channel/IF-021/pubconfig/${sup.dipId}`;
    expect((await sup.client.call('POST', hook, JSON.stringify({ callbackURL: 'https://example.com/postman' }))).status).toBe(201);
    const deleted = await asPostman('DELETE', hook);
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(204);
    expect((await t.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === sup.dipId && w.channel === 'IF-021')).toBeUndefined();
    const status = await asPostman('DELETE', `/statusmessage/config/${sup.dipId}`);
    expect(status.status, JSON.stringify(status.body)).toBe(204);
    const pulled = await asPostman('GET', `/dip-channel/IF-021/pull/${sup.dipId}?maxMessageCount=1`);
    expect(pulled.status, JSON.stringify(pulled.body)).toBe(200);
    // A body that is there is still hashed as it is.
    const body = JSON.stringify({ callbackURL: 'https://example.com/postman' });
    const mismatched = await sup.client.call('POST', hook, body, { ...(await signer.sign('POST', `${t.dip.url}${hook}`, '{}')) });
    expect([mismatched.status, mismatched.body.messageArray[0]!.help]).toEqual([401, expect.stringContaining('does not match the body')]);
  });

  it('a webhook configuration the published schema refuses is refused naming the field; one it accepts but the DIP cannot use is refused saying why', async () => {
    const call = (body: object) => sup.client.call('POST', `/dip-channel/IF-021/pubconfig/${sup.dipId}`, JSON.stringify(body));
    const cases: Array<[object, string]> = [
      [{ callbackURL: 'https://example.com/hook', maxMessageCount: '10' }, 'maxMessageCount must be of type number'],
      [{ callbackURL: 'not a uri' }, 'callbackURL must be a valid uri'],
      [{}, 'callbackURL is required'],
      [{ callbackURL: 'ftp://example.com/hook' }, 'must be an http(s) URL'],
      // secretlint-disable-next-line -- a made-up credential: the refusal of one is what is tested
      [{ callbackURL: 'https://user:secret@example.com/hook' }, 'callbackURL must not carry a user name or password'],
      // secretlint-disable-next-line -- likewise
      [{ callbackURL: 'ftp://user:secret@example.com/hook' }, 'must be an http(s) URL (and carry no user name or password)'],
      // secretlint-disable-next-line -- likewise; the URL parser reads a user here too
      [{ callbackURL: 'https:///user:secret@example.com/hook' }, 'callbackURL must not carry a user name or password'],
      [{ callbackURL: 'https://example.com/hook', maxMessageCount: 0 }, 'maxMessageCount must be a whole number from 1 to 10000'],
      [{ callbackURL: 'https://example.com/hook', maxMessageCount: 2.5 }, 'maxMessageCount must be a whole number from 1 to 10000 (messages per webhook call), not 2.5'],
    ];
    for (const [body, help] of cases) {
      const answer = await call(body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.body.messageArray[0]!.help, JSON.stringify(body)).toContain(help);
    }
  });
});
