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
  /** The participant's (signed) and the anonymous listener's download, as one shape. */
  const getters = () => {
    const anonymousGet = async (headers: Record<string, string>) => {
      const r = await request(`https://localhost:${t.dip.publicPort}/publications/${id}/content`, { dispatcher: anonymous, headers });
      return { status: r.statusCode, headers: r.headers as Record<string, string | undefined>, body: r.body };
    };
    return [['participant', (h: Record<string, string>) => sup.client.download(content(), h)], ['anonymous', anonymousGet]] as const;
  };

  it('weighs If-Match, If-Unmodified-Since, If-Modified-Since and If-Range as RFC 9110 13.2.2 orders them, with Range, on both listeners', async () => {
    const whole = await sup.client.download(content());
    await bytes(whole.body);
    const etag = whole.headers.etag!;
    // The publication never changes: its Last-Modified is when it was published, to the second.
    const lastModified = whole.headers['last-modified']!;
    expect(Date.parse(lastModified)).toBeGreaterThan(0);
    const before = new Date(Date.parse(lastModified) - 1000).toUTCString();
    const after = new Date(Date.parse(lastModified) + 1000).toUTCString();
    const range = 'bytes=10-19';
    const cases: Array<[Record<string, string>, number, number]> = [
      // If-Match (strong comparison): a resumed download that asks for the rest of the same bytes.
      [{ 'if-match': etag }, 200, data.length],
      [{ 'if-match': `"other", ${etag}` }, 200, data.length],
      [{ 'if-match': '*' }, 200, data.length],
      [{ 'if-match': etag, range }, 206, 10],
      [{ 'if-match': '"other"' }, 412, -1],
      [{ 'if-match': `W/${etag}` }, 412, -1],
      [{ 'if-match': '"other"', range }, 412, -1],
      // If-Match is weighed before If-None-Match (13.2.2 step 1 before step 3).
      [{ 'if-match': '"other"', 'if-none-match': etag }, 412, -1],
      // If-Unmodified-Since, only without If-Match.
      [{ 'if-unmodified-since': before }, 412, -1],
      [{ 'if-unmodified-since': lastModified, range }, 206, 10],
      [{ 'if-match': etag, 'if-unmodified-since': before }, 200, data.length],
      // If-Modified-Since: 304 unless changed since; ignored with If-None-Match, or when not a date.
      [{ 'if-modified-since': lastModified }, 304, 0],
      [{ 'if-modified-since': after }, 304, 0],
      [{ 'if-modified-since': before }, 200, data.length],
      [{ 'if-modified-since': 'yesterday-ish' }, 200, data.length],
      [{ 'if-modified-since': lastModified, 'if-none-match': '"another"' }, 200, data.length],
      // If-Range: the range only when the validator is current (an ETag compared strongly, or the exact
      // Last-Modified date); otherwise the whole file.
      [{ 'if-range': etag, range }, 206, 10],
      [{ 'if-range': '"other"', range }, 200, data.length],
      [{ 'if-range': `W/${etag}`, range }, 200, data.length],
      [{ 'if-range': lastModified, range }, 206, 10],
      [{ 'if-range': before, range }, 200, data.length],
    ];
    for (const [who, get] of getters()) {
      for (const [headers, status, length] of cases) {
        const answer = await get(headers);
        const body = await bytes(answer.body);
        const got = [who, headers, answer.status, length === -1 ? -1 : body.length];
        expect(got).toEqual([who, headers, status, length]);
        if (status === 412) expect(JSON.parse(body.toString('utf8')).messageArray[0].help).toMatch(/precondition|has not changed|changed since/i);
        if (status === 206) expect(body.equals(data.subarray(10, 20))).toBe(true);
        if (status !== 412) expect(answer.headers['last-modified']).toBe(lastModified);
      }
    }
  });
});
