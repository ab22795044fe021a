import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

// Downloads of one publication as its readers make them (README "Large publications (Pattern B)"): the
// same participant several at once.
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');
const bytes = async (body: AsyncIterable<Buffer>): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const p of body) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
};

describe('downloads of one publication', () => {
  let t: TestDip;
  let sup: TestParticipant;
  let id: string;
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => `row ${i}\n`).join(''));

  beforeAll(async () => {
    const anonymousSettings = { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 };
    t = await startTestDip({ publications: { ...DEFAULTS.publications, anonymous: anonymousSettings } });
    const vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
    const answer = await vas.client.publish('REP-002', { type: 'OpenVolumes', version: '1', format: 'csv', public: 'true' }, data, sha(data));
    expect(answer.status).toBe(201);
    id = (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
  });
  afterAll(async () => {
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
});
