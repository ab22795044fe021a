/**
 * A participant's adapter held to the published contract alone (OpenAPI 2.1.0, DI-999, the reference
 * README): each answer below is checked against the published response schema with Ajv (built from the
 * reference YAML, not the DIP's own schemas), and must say which item or field is at fault and why.
 * Cases found by probing the participant listener as an independent developer would (helper contract2).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dipDateTime } from '../src/domain/time.js';
import { oracle } from './helpers/published-oracle.js';
import { HAVE_REFERENCE } from './helpers/reference.js';
import { send, startHostileDip, SDS_ID, SUP_ID, validItem, type Answer, type HostileDip } from './hostile/helpers.js';

type Entry = { transactionID: string | null; message: string; help: string | null };

describe.skipIf(!HAVE_REFERENCE)('the participant API against the published contract', () => {
  let h: HostileDip;
  let received: string[] = [];
  const standardResponse = HAVE_REFERENCE ? oracle('StandardResponse') : null;

  function expectPublished(a: Answer): Entry[] {
    expect(standardResponse!(a.json), `${JSON.stringify(standardResponse!.errors)} in ${a.text.slice(0, 400)}`).toBe(true);
    return (a.json as { messageArray: Entry[] }).messageArray;
  }

  beforeAll(async () => {
    h = await startHostileDip();
    const sent = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem(), validItem()]) });
    expect(sent.status, sent.text).toBe(201);
    received = (sent.json as { messageArray: Entry[] }).messageArray.map((e) => e.transactionID!);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  const status = (transactionID: string, senderID = SUP_ID) => ({
    transactionID,
    senderUniqueReference: null,
    correlationID: null,
    sentTimestamp: dipDateTime(new Date()),
    senderID,
    recipientID: null,
    DIPConnectionProviderID: null,
    message: 'RCP1061 - MPAN Invalid or Unknown',
    help: null,
    serviceTicketURL: null,
  });

  it('a batch of status messages refused whole answers every entry, as a batch of messages is: each failing one its own code and why, the rest why they were not taken', async () => {
    const body = [status(received[0]!), status('T-IF-021-2000000001-SDS-20260101-0000000000000000'), status(received[1]!, SDS_ID)];
    const a = await send(h.t, h.sup, { path: '/statusmessage', body: JSON.stringify(body) });
    // The first failing entry's status, as for a submission (README, "Answers to a submission").
    expect(a.status, a.text).toBe(400);
    const entries = expectPublished(a);
    expect(entries.map((e) => e.message)).toEqual(['MSG1000 - Message Processing Failed', 'MSG1030 - Msg Addressing / Routing Error', 'MSG1009 - Sender DIP ID Invalid']);
    expect(entries[0]!.help).toBe('not accepted: the batch is refused whole because items 1 and 2 failed (items are counted from 0)');
    expect(entries[1]!.help).toMatch(/^item 1: transactionID T-IF-021-2000000001-SDS-20260101-0000000000000000 is not a message 1000000001 received/);
    expect(entries[2]!.help).toMatch(/^item 2: senderID 2000000001 is not the caller 1000000001/);
    // Refused whole: the sender got no status message, not even about the entry that was right.
    const pulled = await send(h.t, h.sds, { method: 'GET', path: `/statusmessage/pull/${SDS_ID}` });
    expect([pulled.status, pulled.json]).toEqual([200, []]);
  });

  // docs/api-differences.md: "Bodies on GET and DELETE: ignored". A DELETE with a JSON body was (204), but
  // one whose client labels its empty body text/plain (.NET's StringContent(""), many HTTP libraries) or
  // labels nothing was refused 400 "Content-Type … is not accepted": the label of a body no one reads.
  it.each([
    ['an empty body labelled text/plain; charset=utf-8', '', 'text/plain; charset=utf-8'],
    ['an empty body labelled application/x-www-form-urlencoded', '', 'application/x-www-form-urlencoded'],
    ['a body {} with no Content-Type', '{}', undefined],
    ['a body {} labelled text/plain', '{}', 'text/plain'],
  ])('a DELETE of a webhook or status configuration with %s is answered 204: its body is ignored', async (_what, body, type) => {
    for (const path of [`/dip-channel/IF-021/pubconfig/${SUP_ID}`, `/statusmessage/config/${SUP_ID}`]) {
      const set = await send(h.t, h.sup, { path, body: JSON.stringify({ callbackURL: 'http://127.0.0.1:9/hook' }) });
      expect(set.status, set.text).toBe(201);
      const a = await send(h.t, h.sup, { method: 'DELETE', path, body, headers: { 'content-type': type } });
      expect([a.status, a.text], path).toEqual([204, '']);
    }
  });

  it('a POST without a Content-Type is refused saying it has none (as the operator API does), not that the type \'\' is not accepted', async () => {
    const a = await send(h.t, h.sup, { path: `/dip-channel/IF-021/ack/${SUP_ID}`, body: '{"sequence":0}', headers: { 'content-type': undefined } });
    expect(a.status, a.text).toBe(400);
    const [entry] = expectPublished(a);
    expect(entry!.help).toBe('a body without a Content-Type is not accepted: send application/json');
  });

  // docs/api-differences.md, "Pull consumption": pull and acknowledgement "only while no webhook is
  // registered on the channel, or no status-message webhook (409 otherwise)". A pull was 409; an
  // acknowledgement was taken (200 "nothing changed", or 400 "past the last position a pull handed out").
  it.each([
    ['a channel', `/dip-channel/IF-021/pubconfig/${SUP_ID}`, `/dip-channel/IF-021/ack/${SUP_ID}`, /^messages on IF-021 are pushed to your webhook/],
    ['status messages', `/statusmessage/config/${SUP_ID}`, `/statusmessage/ack/${SUP_ID}`, /^messages on STATUS are pushed to your status-message webhook/],
  ])('an acknowledgement on %s with a webhook registered is 409, as a pull is', async (_what, config, ack, help) => {
    const set = await send(h.t, h.sup, { path: config, body: JSON.stringify({ callbackURL: 'http://127.0.0.1:9/hook' }) });
    expect(set.status, set.text).toBe(201);
    try {
      for (const sequence of [0, 1]) {
        const a = await send(h.t, h.sup, { path: ack, body: JSON.stringify({ sequence }) });
        expect(a.status, a.text).toBe(409);
        expect(expectPublished(a)[0]!.help).toMatch(help);
      }
    } finally {
      await send(h.t, h.sup, { method: 'DELETE', path: config });
    }
  });

  // The published DT-006N type admits null, and the header reader dropped non-strings: [null] read as "no
  // recipient named" (MSG1038 about the MPAN lookup) and [id, null] was taken (201) as if the null were not there.
  it.each([
    ['[null]', [null], 0, 'must be a DIP participant ID (a string of 10 characters), not null'],
    ['a null after a valid ID', [SUP_ID, null], 1, 'must be a DIP participant ID (a string of 10 characters), not null'],
    ['two nulls', [null, SUP_ID, null], 0, 'must be a DIP participant ID (a string of 10 characters), not null (and 1 more like it)'],
    ['an empty string', [''], 0, 'must be at least 10 characters long'],
  ])('a message whose A0.primaryRecipients holds %s is refused MSG1001 naming the item, the field and its index, as a malformed ID is', async (_what, recipients, index, why) => {
    const bad = validItem();
    (bad.payload.CommonBlock as { A0: { primaryRecipients: unknown[] } }).A0.primaryRecipients = recipients;
    const a = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem(), bad]) });
    expect(a.status, a.text).toBe(400);
    const entries = expectPublished(a);
    expect(entries.map((e) => e.message)).toEqual(['MSG1000 - Message Processing Failed', 'MSG1001 - Schema Failure']);
    expect(entries[1]!.help).toBe(`item 1: payload.CommonBlock.A0.primaryRecipients[${index}] ${why}`);
  });

  // JSON.parse reads 9007199254740993 as …992: the schema's integer check took it, and the refusal echoed
  // the rounded number ("sequence 9007199254740992 is past the last position …"), not what was sent.
  it.each([
    ['a channel', `/dip-channel/IF-021/ack/${SUP_ID}`],
    ['status messages', `/statusmessage/ack/${SUP_ID}`],
  ])('an acknowledgement on %s whose sequence is not a safe integer is refused 400 MSG1001 naming sequence and the bound, never echoing a rounded number', async (_what, path) => {
    for (const sequence of ['9007199254740993', '9007199254740992', '1e300']) {
      const a = await send(h.t, h.sup, { path, body: `{"sequence":${sequence}}` });
      expect(a.status, a.text).toBe(400);
      const [entry] = expectPublished(a);
      expect([entry!.message, entry!.help], sequence).toEqual(['MSG1001 - Schema Failure', 'sequence must be <= 9007199254740991']);
    }
    // The largest safe integer is a sequence, judged against the pull as any other.
    const top = await send(h.t, h.sup, { path, body: '{"sequence":9007199254740991}' });
    expect(top.status, top.text).toBe(400);
    expect(expectPublished(top)[0]!.help).toMatch(/^sequence 9007199254740991 is past the last position a pull handed out/);
  });

  // README: a submission holds at most maxBatchMessages (1000) messages, more is 413. A batch of status
  // messages had no cap but the 10 MiB body limit (some 30,000 entries), each judged before the answer.
  it('a batch of status messages over maxBatchMessages is refused 413 as a batch of messages is: the same code, the count and the limit', async () => {
    const max = h.t.config.maxBatchMessages;
    const messages = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify(Array.from({ length: max + 1 }, () => validItem())) });
    expect(messages.status, messages.text.slice(0, 400)).toBe(413);
    const [m] = expectPublished(messages);
    expect([m!.message, m!.help]).toEqual(['MSG1001 - Schema Failure', `the batch holds ${max + 1} messages; the limit is ${max}`]);
    const statuses = await send(h.t, h.sup, { path: '/statusmessage', body: JSON.stringify(Array.from({ length: max + 1 }, () => status(received[0]!))) });
    expect(statuses.status, statuses.text.slice(0, 400)).toBe(413);
    const [s] = expectPublished(statuses);
    expect([s!.message, s!.help]).toEqual(['MSG1001 - Schema Failure', `the batch holds ${max + 1} status messages; the limit is ${max}`]);
  });
});
