import { createHash } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

// Downloads of one publication as its readers make them (README "Large publications (Pattern B)"): the
// same participant several at once, and a client that already holds the bytes asking whether they changed.
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');
const bytes = async (body: AsyncIterable<Buffer>): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const p of body) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
};

describe('downloads of one publication', () => {
  let t: TestDip;
  let sup: TestParticipant;
  let anonymous: Agent;
  let id: string;
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => `row ${i}\n`).join(''));

  beforeAll(async () => {
    const anonymousSettings = { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 };
    t = await startTestDip({ publications: { ...DEFAULTS.publications, anonymous: anonymousSettings } });
    const vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
    anonymous = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    const answer = await vas.client.publish('REP-002', { type: 'OpenVolumes', version: '1', format: 'csv', public: 'true' }, data, sha(data));
    expect(answer.status).toBe(201);
    id = (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
  });
  afterAll(async () => {
    await anonymous.close();
    await t?.close();
  });

  const content = (): string => `/dip-channel/REP-002/publications/${id}/content`;

  it('serves one participant several downloads of it at once (whole and ranges), each signed afresh', async () => {
    // Started together, the client's requests were signed in the same millisecond: the same GET, the same
    // date, the same (deterministic) RSA signature, and all but one refused as replays (401).
    const ranges = [undefined, undefined, undefined, 'bytes=0-999', 'bytes=1000-', undefined];
    const answers = await Promise.all(ranges.map((range) => sup.client.download(content(), range ? { range } : {})));
    const got = await Promise.all(answers.map(async (a) => [a.status, (await bytes(a.body)).length]));
    expect(got).toEqual(ranges.map((range) => (range === undefined ? [200, data.length] : range === 'bytes=0-999' ? [206, 1000] : [206, data.length - 1000])));
  });

  it('answers If-None-Match on its ETag with 304 and no bytes, on both listeners; another ETag gets the bytes', async () => {
    const whole = await sup.client.download(content());
    const etag = whole.headers.etag!;
    expect((await bytes(whole.body)).equals(data)).toBe(true);
    const anonymousGet = async (headers: Record<string, string>) => {
      const r = await request(`https://localhost:${t.dip.publicPort}/publications/${id}/content`, { dispatcher: anonymous, headers });
      return { status: r.statusCode, headers: r.headers as Record<string, string | undefined>, body: r.body };
    };
    for (const [who, get] of [['participant', (h: Record<string, string>) => sup.client.download(content(), h)], ['anonymous', anonymousGet]] as const) {
      const conditions: Array<Record<string, string>> = [{ 'if-none-match': etag }, { 'if-none-match': `"other", W/${etag}` }, { 'if-none-match': '*' }, { 'if-none-match': etag, range: 'bytes=0-9' }];
      for (const headers of conditions) {
        const unchanged = await get(headers);
        const body = await bytes(unchanged.body);
        expect([who, headers, unchanged.status, body.length, unchanged.headers.etag]).toEqual([who, headers, 304, 0, etag]);
      }
      const changed = await get({ 'if-none-match': '"another"' });
      expect([who, changed.status, (await bytes(changed.body)).length]).toEqual([who, 200, data.length]);
    }
  });
});
