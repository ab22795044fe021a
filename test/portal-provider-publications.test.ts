import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { portalUsers, type PortalUser } from './helpers/portal-user.js';

/**
 * The user portal's publication pages (Pattern B) for a DIP Connection Provider's users: they list and
 * download what a participant that nominated the provider may read, as the API serves the provider
 * (test/publications.test.ts), only while the nomination stands. The pages looked at the provider alone.
 */
const CSV = 'MPAN,Volume\n1000000000001,1.5\n';
const sha = (s: string): string => createHash('sha256').update(Buffer.from(s)).digest('base64');

describe("a connection provider's portal users, on the publication pages", () => {
  let t: TestDip;
  let http: ReturnType<typeof portalUsers>;
  let client: TestParticipant;
  let other: TestParticipant;
  let user: PortalUser;
  let forClient: string;
  let forOther: string;

  beforeAll(async () => {
    t = await startTestDip();
    http = portalUsers(t);
    const vas = await t.participant('VAS0000001', ['VAS']);
    client = await t.participant('SUP0000003', ['SUP']);
    other = await t.participant('SUP0000004', ['SUP']);
    const cp = await t.participant('DCP0000001', ['DCP']);
    expect((await client.client.call('PUT', `/participants/${client.dipId}/connection-provider`, JSON.stringify({ dipId: cp.dipId }), { 'content-type': 'application/json' })).status).toBe(200);
    const publish = async (version: string, recipients: string) => {
      const answer = await vas.client.publish('REP-002', { type: 'ClientReport', version, format: 'csv', recipients }, Buffer.from(CSV), sha(CSV));
      expect(answer.status).toBe(201);
      return (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
    };
    forClient = await publish('1', client.dipId);
    forOther = await publish('2', other.dipId);
    user = await http.signedIn('carl.cp', cp.dipId);
  });
  afterAll(async () => {
    await http?.close();
    await t?.close();
  });

  it("list and download the publications its clients may read, not another's; the nomination withdrawn, no longer", async () => {
    const listed = await http.page('GET', '/portal/publications', user);
    expect(listed.status).toBe(200);
    expect(listed.text).toContain(`/portal/publications/REP-002/${forClient}`);
    expect(listed.text).toContain(`for ${client.dipId}`);
    expect(listed.text).not.toContain(forOther);
    const got = await http.page('GET', `/portal/publications/REP-002/${forClient}`, user);
    expect([got.status, got.text]).toEqual([200, CSV]);
    expect((await http.page('GET', `/portal/publications/REP-002/${forOther}`, user)).status).toBe(404);

    expect((await client.client.call('DELETE', `/participants/${client.dipId}/connection-provider`, '')).status).toBe(200);
    expect((await http.page('GET', '/portal/publications', user)).text).not.toContain(forClient);
    expect((await http.page('GET', `/portal/publications/REP-002/${forClient}`, user)).status).toBe(404);
  });
});
