/**
 * The published /validate/{interface}/{event} debugging endpoints (issue 14, item 4), and the choices
 * OpenDIP makes where the published spec leaves a gap (docs/api-differences.md): the answer's shape,
 * and what answers a replay that matches nothing.
 */
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { bareEventCode } from '../src/catalogue/types.js';
import { MSG } from '../src/domain/response-codes.js';
import { DEFAULT_WORKFLOW_STARTERS } from '../src/pipeline/channels.js';
import { dipConsumedRecipient } from '../src/pipeline/consumption-replay.js';
import { dipDateTime } from '../src/domain/time.js';
import { expectRefusal, expectStandardResponse, messageCount, SDS_ID, send, startHostileDip, SUP_ID, validItem, type HostileDip } from './hostile/helpers.js';
import { HAVE_REFERENCE, REFERENCE } from './helpers/reference.js';
import { arbitraryOf } from './helpers/schema-arbitrary.js';

type Json = Record<string, any>;
const catalogue = Catalogue.load();
type Entries = { messageArray: Array<{ message: string; help: string | null; transactionID: string | null; senderUniqueReference: string | null }> };

/** Two participants holding every role of the catalogue: one sends on any channel, the other receives. */
const ANY_SENDER = '5000000001';
const ANY_RECIPIENT = '5000000002';
const ALL_ROLES = [...new Set(catalogue.channels().flatMap((c) => [...c.senderRoles, ...c.receiverRoles]))];

/**
 * A message valid on the channel with this event code, generated from the channel's own schema, with
 * the header a submission by ANY_SENDER to ANY_RECIPIENT needs on this DIP (DEV, no connection provider,
 * sent now, no correlation ID on a workflow starter): /validate checks what submission checks.
 */
function validMessage(channel: string, event: string, seed: number): Json {
  const arb = arbitraryOf(catalogue.schema(channel)!).filter((m) => {
    const r = catalogue.validate(channel, m);
    return r.ok && r.eventCode === event;
  });
  const message = fc.sample(arb, { numRuns: 1, seed })[0] as Json;
  const c = catalogue.channel(channel)!;
  const { S1, A0 } = message.payload.CommonBlock;
  Object.assign(S1, { environmentTag: 'DEV', senderDIPID: ANY_SENDER, senderRoleID: c.senderRoles[0], senderTimestamp: dipDateTime(new Date(Date.now() - 60_000)) });
  S1.DIPConnectionProviderID = null;
  // The channels that start a workflow take no correlation ID of the sender's (MSG1012): the DIP assigns it.
  if (DEFAULT_WORKFLOW_STARTERS.has(channel)) S1.senderCorrelationID = null;
  // What the DIP answers itself (IF-015) names no participant: it goes to none.
  if (A0) A0.primaryRecipients = c.routingModes.includes('primary') && dipConsumedRecipient(channel, ANY_SENDER) === undefined ? [ANY_RECIPIENT] : [];
  return message;
}

describe('POST /validate/{interface}/{event}', () => {
  let h: HostileDip;
  let any: Awaited<ReturnType<HostileDip['t']['participant']>>;
  beforeAll(async () => {
    // Channels addressed only by MPAN lookup reach ANY_RECIPIENT whatever the MPAN: it always receives.
    // The StandardResponse form (api.validateAnswer 'standard-response'): one entry per item, to read each check by.
    h = await startHostileDip({ api: { emptyReplay: 'bad-request', validateAnswer: 'standard-response' }, channels: Object.fromEntries(catalogue.channels().map((c) => [c.interfaceId, { alwaysParticipants: [ANY_RECIPIENT] }])) });
    any = await h.t.participant(ANY_SENDER, ALL_ROLES);
    await h.t.participant(ANY_RECIPIENT, ALL_ROLES);
  });
  afterAll(async () => {
    await h?.close();
  });

  it.skipIf(!HAVE_REFERENCE)('serves every published validation endpoint: 201 for a valid message, 400 naming the field for a broken one; stores nothing', async () => {
    const yaml = readFileSync(join(REFERENCE, 'SubmitEvents-unresolved.yaml'), 'utf8');
    const endpoints = [...yaml.matchAll(/^ {2}\/validate\/([^/\s]+)\/([^/\s:]+):/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(endpoints.length).toBeGreaterThanOrEqual(127);
    const before = messageCount(h.t);
    for (const [[channel, event], i] of endpoints.map((e, i) => [e, i] as const)) {
      const path = `/validate/${channel}/${event}`;
      const message = validMessage(channel, event, i);
      const ok = await send(h.t, any, { path, body: JSON.stringify([message]) });
      expect(ok.status, `${path}: ${ok.text.slice(0, 400)}`).toBe(201);
      expectStandardResponse(ok, path);
      expect((ok.json as Entries).messageArray[0]).toMatchObject({ message: MSG.success, transactionID: null });

      delete message.payload.CommonBlock.S1;
      const broken = await send(h.t, any, { path, body: JSON.stringify([message]) });
      expectRefusal(broken, 400, /item 0: payload\.CommonBlock\.S1 is required/, path);
      expect((broken.json as Entries).messageArray[0]!.message).toBe(MSG.schemaFailure);
    }
    expect(messageCount(h.t)).toBe(before);
  });

  it('validates IF-021 as submission would, and stores and routes nothing', async () => {
    const before = messageCount(h.t);
    const item = validItem();
    const a = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([item, validItem()]) });
    expect(a.status, a.text).toBe(201);
    const entries = (a.json as Entries).messageArray;
    expect(entries).toHaveLength(2);
    expect(entries[0]).toMatchObject({ message: MSG.success, transactionID: null, senderUniqueReference: item.payload.CommonBlock.S1.senderUniqueReference });
    expect(entries[0]!.help).toContain('not stored or routed');
    expect(messageCount(h.t)).toBe(before);
    // Validated, not consumed: the same message can still be submitted.
    expect((await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([item]) })).status).toBe(201);
  });

  it('refuses what submission refuses before storing, with the same code and help, and stores or reserves nothing', async () => {
    const variants: Array<[string, (m: Json) => void]> = [
      ['the environment tag of another DIP', (m) => (m.payload.CommonBlock.S1.environmentTag = 'PRD')],
      ['a connection provider the caller is not', (m) => (m.payload.CommonBlock.S1.DIPConnectionProviderID = SUP_ID)],
      ['another sender than the caller', (m) => (m.payload.CommonBlock.S1.senderDIPID = SUP_ID)],
      ['a role the sender does not hold', (m) => (m.payload.CommonBlock.S1.senderRoleID = 'ADS')],
      ['a sender timestamp in the future', (m) => (m.payload.CommonBlock.S1.senderTimestamp = dipDateTime(new Date(Date.now() + 3_600_000)))],
      ['an unregistered primary recipient', (m) => (m.payload.CommonBlock.A0.primaryRecipients = ['9999999999'])],
      ['a primary recipient that does not receive on the channel', (m) => (m.payload.CommonBlock.A0.primaryRecipients = [SDS_ID])],
    ];
    const before = messageCount(h.t);
    for (const [what, change] of variants) {
      const item = validItem() as Json;
      change(item);
      const body = JSON.stringify([item]);
      const dry = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body });
      const real = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body });
      expect(real.status, `${what}: ${real.text}`).toBeGreaterThanOrEqual(400);
      expectRefusal(dry, 400, undefined, what);
      const [d, r] = [(dry.json as Entries).messageArray[0]!, (real.json as Entries).messageArray[0]!];
      const timeless = (help: string | null) => help?.replace(/DIP time [^)]+/, 'DIP time …');
      expect({ message: d.message, help: timeless(d.help) }, what).toEqual({ message: r.message, help: timeless(r.help) });
      expect(d.message, what).not.toBe(MSG.success);
    }
    expect(messageCount(h.t)).toBe(before);
  });

  it('refuses a reference repeated within the batch, and says it did not check or reserve references accepted before', async () => {
    const item = validItem();
    const twice = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([item, item]) });
    expectRefusal(twice, 400);
    expect((twice.json as Entries).messageArray[1]).toMatchObject({ message: MSG.duplicateReference });
    expect((await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([item]) })).status).toBe(201);
    // Accepted before: a dry run does not read the store's references, and says so.
    const again = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([item]) });
    expect(again.status, again.text).toBe(201);
    expect((again.json as Entries).messageArray[0]!.help).toMatch(/; not stored or routed, and S1\.senderUniqueReference was not checked against those accepted before nor reserved$/);
  });

  it('takes the URL in any case', async () => {
    const a = await send(h.t, h.sds, { path: '/VALIDATE/if-021/activepower', body: JSON.stringify([validItem()]) });
    expect(a.status, a.text).toBe(201);
  });

  it('refuses a message of another event code than the endpoint validates, naming it', async () => {
    const item = validItem() as Json;
    item.payload.CommonBlock.S0.eventCode = '[ReactivePower]';
    expect(catalogue.validate('IF-021', item).ok).toBe(true);
    const a = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([item]) });
    expectRefusal(a, 400, /payload\.CommonBlock\.S0\.eventCode is \[ReactivePower\]; this endpoint validates \[ActivePower\]/);
  });

  it('answers each item: the broken one refused, the valid one said to be valid', async () => {
    const broken = validItem() as Json;
    broken.payload.CommonBlock.M0.GSPGroupID = '_Z';
    const a = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([validItem(), broken]) });
    expectRefusal(a, 400);
    expect((a.json as Entries).messageArray.map((e) => e.message)).toEqual([MSG.success, MSG.schemaFailure]);
    expect((a.json as Entries).messageArray[1]!.help).toContain('payload.CommonBlock.M0.GSPGroupID must be one of');
  });

  it('404 for an event code or channel that does not exist, naming the ones that do; only the channel is MSG1002 Interface ID Invalid', async () => {
    const event = await send(h.t, h.sds, { path: '/validate/IF-021/Nothing', body: JSON.stringify([validItem()]) });
    expectRefusal(event, 404, /event code 'Nothing' is not one of IF-021's \(the path names it\): \/validate\/IF-021\/\{ActivePower\|ReactivePower\}/);
    // The interface ID is valid: the event code fails as a message carrying it fails, on the schema.
    expect((event.json as Entries).messageArray[0]!.message).toBe(MSG.schemaFailure);
    const channel = await send(h.t, h.sds, { path: '/validate/IF-999/ActivePower', body: JSON.stringify([validItem()]) });
    expectRefusal(channel, 404, /'IF-999' is not a channel/);
    expect((channel.json as Entries).messageArray[0]!.message).toBe(MSG.interfaceIdInvalid);
  });

  it('is authenticated like every other call', async () => {
    const a = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([validItem()]), apiKey: null });
    expectRefusal(a, 401, /X-API-Key/);
  });

  it('serves every event code of every channel in the catalogue, published endpoint or not', async () => {
    for (const c of catalogue.channels()) {
      const event = c.eventCodes[0]!;
      const message = validMessage(c.interfaceId, bareEventCode(event), 7);
      const a = await send(h.t, any, { path: `/validate/${c.interfaceId}/${event}`, body: JSON.stringify([message]) });
      expect(a.status, `${c.interfaceId}/${event}: ${a.text.slice(0, 300)}`).toBe(201);
    }
  });
});

describe("the operator's choices where the published API leaves a gap", () => {
  const window = { datetimeFrom: '2020-01-01T00:00:00+00:00', datetimeTo: dipDateTime(new Date(Date.now() + 60_000)), eventCode: null, MPAN: null, version: null };
  const emptyReplay = (h: HostileDip) => send(h.t, h.sup, { path: `/dip-channel/IF-021/replay/${SUP_ID}`, body: JSON.stringify(window) });
  const senderId = (a: { json: unknown }) => (a.json as { messageArray: Array<{ senderID: string }> }).messageArray[0]!.senderID;
  const dips: HostileDip[] = [];
  afterAll(async () => {
    for (const h of dips) await h.close();
  });
  const start = async (overrides: Parameters<typeof startHostileDip>[0] = {}) => {
    const h = await startHostileDip(overrides);
    dips.push(h);
    return h;
  };

  it('by default: nothing to replay is a 400 StandardResponse saying so (the published 200 holds at least one message), and the DIP ID has ten characters (the published type)', async () => {
    const h = await start();
    const a = await emptyReplay(h);
    expectRefusal(a, 400, /nothing to replay: no archived message on IF-021 for 1000000001 matches datetimeFrom 2020-01-01T00:00:00\+00:00/);
    expect(senderId(a)).toBe('0000000000');
  });

  // Found by a black-box participant client (probe5): the published 201, 400 and 500 of every /validate
  // operation are application/json with `type: string`; a client generated from the published document
  // could not read the StandardResponse the DIP answered by default.
  it('by default, /validate answers the published JSON string (201 and 400), each item\'s message and help', async () => {
    const h = await start();
    const ok = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([validItem()]) });
    expect([ok.status, ok.headers['content-type']]).toEqual([201, expect.stringMatching(/^application\/json/)]);
    expect(ok.json).toMatch(/^MSG0000 - Success: valid IF-021 \[ActivePower\]/);
    const bad = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: '[{}]' });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatch(/^MSG1001 - Schema Failure: item 0: payload is required/);
  });

  it("api.emptyReplay 'no-content' answers 204; api.validateAnswer 'standard-response' answers a StandardResponse", async () => {
    const h = await start({ api: { emptyReplay: 'no-content', validateAnswer: 'standard-response' } });
    const a = await emptyReplay(h);
    expect([a.status, a.text]).toEqual([204, '']);
    const ok = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([validItem()]) });
    expect(ok.status).toBe(201);
    expectStandardResponse(ok);
    expect((ok.json as { messageArray: Array<{ message: string }> }).messageArray[0]!.message).toBe(MSG.success);
  });

  it("api.emptyReplay 'empty-array' answers 200 []; dipId '00000000000' reproduces the published examples", async () => {
    const h = await start({ api: { emptyReplay: 'empty-array', validateAnswer: 'standard-response' }, dipId: '00000000000' });
    const a = await emptyReplay(h);
    expect([a.status, a.text]).toEqual([200, '[]']);
    const v = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([validItem()]) });
    expect(senderId(v)).toBe('00000000000');
  });
});
