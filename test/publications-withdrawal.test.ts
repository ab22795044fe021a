import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { adminApi } from './helpers/admin.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { MSG } from '../src/domain/response-codes.js';
import { publicationBackends } from './helpers/publication-backends.js';

/**
 * Withdrawal of a publication (README "Large publications (Pattern B)"). The spec (5.6) says nothing of
 * taking one back; a publication sent to the wrong channel, or holding what it should not, could not be
 * taken back at all. The operator withdraws it with a reason: its bytes go, it is listed nowhere, and
 * whoever could read it is answered 410 with the reason; the act is journalled.
 */
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');
const CSV = Buffer.from('MPAN,Volume\n1000000000001,1.5\n');

const backends = publicationBackends('opendip_withdraw');

describe.each(backends)('an operator withdraws a publication ($name)', ({ storage: openStorage }) => {
  let cleanup: () => Promise<void> = async () => {};
  let t: TestDip;
  let vas: TestParticipant;
  let sup: TestParticipant;
  let anonymous: Agent;
  let admin: ReturnType<typeof adminApi>;

  beforeAll(async () => {
    const opened = await openStorage();
    cleanup = opened.cleanup;
    t = await startTestDip({ ...(opened.storage ? { storage: opened.storage } : {}), publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } });
    vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
    anonymous = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    admin = adminApi(t);
  });
  afterAll(async () => {
    await anonymous?.close();
    await t?.close();
    await cleanup();
  });
  /** Whether the store still holds the publication's bytes. */
  const holdsBytes = async (id: string): Promise<boolean> => {
    const record = await t.dip.publications.get(id);
    try {
      for await (const piece of t.dip.publications.read(record!)) if (piece.length > 0) return true;
      return false;
    } catch {
      return false;
    }
  };

  const publish = async (query: Record<string, string>): Promise<{ status: number; id: string; help: string }> => {
    const answer = await vas.client.publish('REP-002', query, CSV, sha(CSV));
    const body = answer.body as unknown as { publication?: { publicationID: string }; messageArray: Array<{ help: string }> };
    return { status: answer.status, id: body.publication?.publicationID ?? '', help: body.messageArray[0]?.help ?? '' };
  };
  const help = async (body: AsyncIterable<Buffer> & { json?: () => Promise<unknown> }): Promise<string> => {
    const parts: Buffer[] = [];
    for await (const p of body) parts.push(Buffer.from(p));
    return (JSON.parse(Buffer.concat(parts).toString('utf8')) as { messageArray: Array<{ help: string }> }).messageArray[0]!.help;
  };
  const anonymousGet = (path: string) => request(`https://localhost:${t.dip.publicPort}${path}`, { dispatcher: anonymous });
  /** What the participant's notices on REP-002 say (their additionalInformation), oldest first: pulled, not acknowledged. */
  const notices = async (p: TestParticipant): Promise<Array<{ publicationID: string; withdrawn?: { at: string; by: string; reason: string } }>> => {
    const pulled = (await p.client.pull('REP-002', p.dipId, 100)).body as Array<{ payload: { CustomBlock: { P02List: Array<{ additionalInformation: string }> } } }>;
    return pulled.map((n) => JSON.parse(n.payload.CustomBlock.P02List[0]!.additionalInformation) as { publicationID: string; withdrawn?: { at: string; by: string; reason: string } });
  };
  const withdrawalsOf = async (p: TestParticipant, id: string) => (await notices(p)).filter((n) => n.publicationID === id && n.withdrawn);
  const listed = async (): Promise<string[]> => {
    const list = await sup.client.call<{ publications: Array<{ publicationID: string }> }>('GET', '/dip-channel/REP-002/publications', '');
    return list.body.publications.map((p) => p.publicationID);
  };

  it('removes its bytes, lists it nowhere, answers 410 with the reason to whoever could read it, journals it, and keeps its version from reuse', async () => {
    const wrong = await publish({ type: 'Volumes', version: '1', format: 'csv', public: 'true' });
    expect(wrong.status).toBe(201);
    const content = `/dip-channel/REP-002/publications/${wrong.id}/content`;
    expect((await sup.client.download(content)).status).toBe(200);
    expect(await listed()).toContain(wrong.id);
    expect(await holdsBytes(wrong.id)).toBe(true);

    // Refused: no reason, an unknown ID.
    expect((await admin('POST', `/admin/publications/${wrong.id}/withdraw`, {})).status).toBe(400);
    expect((await admin('POST', '/admin/publications/no-such-publication/withdraw', { reason: 'x' })).status).toBe(404);

    const reason = 'published to REP-002 by mistake; it belongs on REP-003';
    const withdrawn = await admin('POST', `/admin/publications/${wrong.id}/withdraw`, { reason });
    expect([withdrawn.status, withdrawn.body.publicationID, withdrawn.body.withdrawn]).toEqual([200, wrong.id, { at: expect.any(String), by: 'bootstrap', reason }]);
    expect((await admin('POST', `/admin/publications/${wrong.id}/withdraw`, { reason })).status).toBe(409);

    // Its bytes are gone, and nothing lists it.
    expect(await holdsBytes(wrong.id)).toBe(false);
    expect(await listed()).not.toContain(wrong.id);
    const anonymousList = await anonymousGet('/publications?channel=REP-002');
    expect(((await anonymousList.body.json()) as { publications: Array<{ publicationID: string }> }).publications.map((p) => p.publicationID)).not.toContain(wrong.id);

    // Whoever could read it is told it is gone, and why: the participant (download, metadata), anyone (it was public).
    for (const answer of [await sup.client.download(content), await sup.client.download(`/dip-channel/REP-002/publications/${wrong.id}`)]) {
      expect([answer.status, await help(answer.body)]).toEqual([410, expect.stringContaining(reason)]);
    }
    const anon = await anonymousGet(`/publications/${wrong.id}/content`);
    expect([anon.statusCode, await help(anon.body)]).toEqual([410, expect.stringContaining(reason)]);

    // Journalled, with who, before and after.
    const journal = await admin('GET', `/admin/journal?action=publication.withdraw&target=${wrong.id}`);
    expect(journal.body).toEqual([expect.objectContaining({ actor: 'bootstrap', action: 'publication.withdraw', target: wrong.id, after: expect.objectContaining({ withdrawn: expect.objectContaining({ reason }) }) })]);

    // The version is not reused (its notice and URI went out); a new version is published as usual.
    const again = await publish({ type: 'Volumes', version: '1', format: 'csv', public: 'true' });
    expect([again.status, again.help]).toEqual([409, expect.stringContaining('withdrawn')]);
    // Refused before the upload is read (as for any version that exists): an upload that never ends is answered.
    let release: () => void = () => {};
    const never = (async function* () {
      yield CSV;
      await new Promise<void>((resolve) => (release = resolve));
    })();
    try {
      const early = await vas.client.publish('REP-002', { type: 'Volumes', version: '1', format: 'csv', public: 'true' }, never, sha(CSV));
      expect(early.status).toBe(409);
    } finally {
      release();
    }
    const next = await publish({ type: 'Volumes', version: '2', format: 'csv', public: 'true' });
    expect(next.status).toBe(201);
    expect(await listed()).toContain(next.id);
  });

  it('tells a restricted publication withdrawn only to those who could read it: anonymously it is unknown', async () => {
    const restricted = await publish({ type: 'Private', version: '1', format: 'csv' });
    expect(restricted.status).toBe(201);
    expect((await admin('POST', `/admin/publications/${restricted.id}/withdraw`, { reason: 'held personal data' })).status).toBe(200);
    const anon = await anonymousGet(`/publications/${restricted.id}/content`);
    expect([anon.statusCode, await help(anon.body)]).toEqual([404, expect.stringContaining(`no public publication ${restricted.id}`)]);
    const bySup = await sup.client.download(`/dip-channel/REP-002/publications/${restricted.id}/content`);
    expect([bySup.status, await help(bySup.body)]).toEqual([410, expect.stringContaining('held personal data')]);
  });

  it('tells a publication for named recipients withdrawn to those named alone: to another participant of the channel it is unknown', async () => {
    const other = await t.participant('SUP0000002', ['SUP']);
    const named = await publish({ type: 'ForOne', version: '1', format: 'csv', recipients: sup.dipId });
    expect(named.status).toBe(201);
    expect((await admin('POST', `/admin/publications/${named.id}/withdraw`, { reason: 'the wrong supplier named' })).status).toBe(200);
    for (const path of ['/content', '']) {
      const bySup = await sup.client.download(`/dip-channel/REP-002/publications/${named.id}${path}`);
      expect([bySup.status, await help(bySup.body)]).toEqual([410, expect.stringContaining('the wrong supplier named')]);
      const byOther = await other.client.download(`/dip-channel/REP-002/publications/${named.id}${path}`);
      expect([byOther.status, await help(byOther.body)]).toEqual([404, `no publication ${named.id} on REP-002`]);
    }
    // Told of the withdrawal as it was told of the publication: the one named, not the other.
    await waitFor(async () => (await withdrawalsOf(sup, named.id)).length === 1, 10_000, "the named supplier's withdrawal notice");
    expect((await withdrawalsOf(sup, named.id))[0]!.withdrawn).toEqual({ at: expect.any(String), by: 'operator', reason: 'the wrong supplier named' });
    expect(await notices(other)).toEqual([]);
  });

  it('tells a withdrawal to the recipients told of the publication: not to one that joined the channel since, and still to one that left it', async () => {
    const leaver = await t.participant('SUP0000008', ['SUP']);
    // Known to the DIP before the publication (on PostgreSQL the registry reaches it by LISTEN/NOTIFY, after
    // the onboarding's commit): otherwise it is not among the recipients told (clean-clone CI, under load).
    await waitFor(async () => (await leaver.client.pull('REP-002', leaver.dipId, 100)).status === 200, 30_000, 'the DIP to know the leaver');
    const published = await publish({ type: 'Membership', version: '1', format: 'csv' });
    expect(published.status).toBe(201);
    await waitFor(async () => (await notices(leaver)).some((n) => n.publicationID === published.id), 30_000, "the leaver's availability notice");
    // Taken by the leaver: what it holds is that notice (and perhaps the bytes it named).
    const taken = await leaver.client.pull('REP-002', leaver.dipId, 100);
    expect((await leaver.client.ack('REP-002', leaver.dipId, taken.lastSeq!)).status).toBe(200);
    // After the availability notice: one participant joins the channel, another leaves it (its role revoked).
    const joiner = await t.participant('SUP0000009', ['SUP']);
    const row = (await t.dip.backend.registry.participants()).find((r) => r.participant.dipId === leaver.dipId)!;
    await t.dip.backend.registry.upsertParticipant({ ...row.participant, roles: ['ADS'] }, null);
    await waitFor(async () => (await leaver.client.pull('REP-002', leaver.dipId, 1)).status === 403, 10_000, 'the leaver no longer receiving on REP-002');

    expect((await admin('POST', `/admin/publications/${published.id}/withdraw`, { reason: 'the wrong month' })).status).toBe(200);
    await waitFor(async () => (await withdrawalsOf(sup, published.id)).length === 1, 10_000, "a recipient's withdrawal notice");
    // Never to the one that joined after it (its notices are appended with SUP's, in one batch): it was told of no such publication.
    expect(await notices(joiner)).toEqual([]);
    // Sent to the one that left, as it holds the availability notice: it can no longer be delivered there, so
    // delivery dead-letters it (as every message queued for a participant that left a channel) and the
    // publisher learns by a status message who could not be told.
    const deadLetters = async () => ((await admin('GET', `/admin/dead-letters?recipient=${leaver.dipId}`)).body as Array<{ queue: { channel: string }; senderUniqueReference: string; detail: string }>).filter((d) => d.queue.channel === 'REP-002');
    await waitFor(async () => (await deadLetters()).length === 1, 10_000, "the leaver's withdrawal notice, dead-lettered");
    expect((await deadLetters()).map((d) => [d.senderUniqueReference, d.detail])).toEqual([[expect.stringMatching(new RegExp(`^S-IF-047-[0-9a-f]{10}-DIP-\\d{8}-WDN${published.id.replace(/-/g, '')}$`)), expect.stringMatching(/no longer receives on REP-002/)]]);
  });

  it('lets the publisher withdraw its own publication on the participant API: the same withdrawal, journalled as the publisher, its recipients told; to anyone else it is an unknown ID', async () => {
    const vas2 = await t.participant('VAS0000002', ['VAS']);
    const mine = await publish({ type: 'WrongFile', version: '1', format: 'csv' });
    expect(mine.status).toBe(201);
    await waitFor(async () => (await notices(sup)).some((n) => n.publicationID === mine.id && !n.withdrawn), 10_000, "the publication's notice");
    const withdraw = (p: TestParticipant, id: string, body: unknown) => p.client.call('POST', `/dip-channel/REP-002/publications/${id}/withdraw`, JSON.stringify(body), { 'content-type': 'application/json' });
    const answer = async (p: TestParticipant, id: string, body: unknown = { reason: 'x' }) => {
      const a = await withdraw(p, id, body);
      return [a.status, a.body.messageArray[0]!.message, (a.body.messageArray[0]!.help ?? '').replace(id, '{id}')];
    };

    // Another publisher of the channel, a recipient: answered exactly as for an unknown ID.
    const unknownId = mine.id.replace(/.$/, (ch) => (ch === '0' ? '1' : '0'));
    const unknown = await answer(vas, unknownId);
    expect(unknown).toEqual([404, MSG.processingFailed, 'no publication {id} on REP-002']);
    expect(await answer(vas2, mine.id)).toEqual(unknown);
    expect(await answer(sup, mine.id)).toEqual(unknown);
    // A reason is required (the route's schema).
    expect((await withdraw(vas, mine.id, {})).status).toBe(400);
    expect((await sup.client.download(`/dip-channel/REP-002/publications/${mine.id}/content`)).status).toBe(200);

    const reason = 'uploaded the wrong file';
    const done = await withdraw(vas, mine.id, { reason });
    const body = done.body as unknown as { messageArray: Array<{ message: string; help: string }>; publication: { publicationID: string; withdrawn: { at: string; by: string; reason: string } } };
    expect([done.status, body.messageArray[0]!.message, body.publication.publicationID, body.publication.withdrawn]).toEqual([200, MSG.success, mine.id, { at: expect.any(String), by: `participant:${vas.dipId}`, reason }]);
    expect((await answer(vas, mine.id))[0]).toBe(409);

    // The same state as the operator's withdrawal: bytes gone, listed nowhere, 410 with the reason to whoever could read it.
    expect(await holdsBytes(mine.id)).toBe(false);
    expect(await listed()).not.toContain(mine.id);
    const gone = await sup.client.download(`/dip-channel/REP-002/publications/${mine.id}/content`);
    expect([gone.status, await help(gone.body)]).toEqual([410, expect.stringMatching(new RegExp(`withdrawn by its publisher .*${reason}`))]);

    // Journalled as one withdrawal, naming the publisher.
    const journal = await admin('GET', `/admin/journal?action=publication.withdraw&target=${mine.id}`);
    expect(journal.body).toEqual([expect.objectContaining({ actor: `participant:${vas.dipId}`, action: 'publication.withdraw', target: mine.id, after: expect.objectContaining({ withdrawn: expect.objectContaining({ reason }) }) })]);

    // Its recipients are told, once, as they were told of it.
    await waitFor(async () => (await withdrawalsOf(sup, mine.id)).length === 1, 10_000, 'the withdrawal notice');
    expect((await withdrawalsOf(sup, mine.id))[0]!.withdrawn).toEqual({ at: expect.any(String), by: 'publisher', reason });
  });
});
