/**
 * A publication upload refused while its body is still coming (a version that exists, a caller that may
 * not publish, metadata that is wrong) must reach its sender as the refusal, not as a broken connection.
 * Over a real TLS listener, as a client sends it: with Expect: 100-continue the refusal comes instead of
 * the go-ahead (RFC 9110 10.1.1); without it, the DIP answers and then reads and drops the rest of the
 * body for a bounded time and number of bytes before it closes (RFC 9112 9.6, a lingering close), so a
 * client that writes its whole body before it reads (Python requests, `curl -H 'Expect:'`) reads the answer.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { rawAnswerOf, rawTls, signerFor, tlsOf } from './hostile/helpers.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

const FIVE_MB = Buffer.alloc(5 * 1024 * 1024, 'a');
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

/** The signed head of an upload of `body` to `path` as `who` (its lines, ending with the blank line). */
async function uploadHead(t: TestDip, who: TestParticipant, path: string, body: Buffer, extra: string[] = []): Promise<string> {
  const signature = await signerFor(who).signHash('POST', `${t.dip.url}${path}`, sha(body));
  return [
    `POST ${path} HTTP/1.1`,
    `Host: localhost:${t.dip.port}`,
    'Content-Type: application/octet-stream',
    `X-API-Key: ${who.apiKey}`,
    ...Object.entries(signature).map(([k, v]) => `${k}: ${v}`),
    `Content-Length: ${body.length}`,
    ...extra,
    '',
    '',
  ].join('\r\n');
}

const uploadPath = (query: string): string => `/dip-channel/REP-003/publications?${query}`;

describe('a refused publication upload reaches its sender as the refusal', () => {
  let t: TestDip;
  let vas: TestParticipant;
  let sup: TestParticipant;

  beforeAll(async () => {
    t = await startTestDip({ http: { ...DEFAULTS.http, refusedUploadLingerMs: 5_000, refusedUploadLingerBytes: 8 * 1024 * 1024 } });
    vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
    const first = Buffer.from('MPAN,Volume\n1,2\n');
    expect((await vas.client.publish('REP-003', { type: 'AllocatedVolumes', version: '1', format: 'csv' }, first, sha(first))).status).toBe(201);
  });
  afterAll(async () => {
    await t?.close();
  });

  const refusals: Array<[string, () => TestParticipant, string, number, RegExp]> = [
    ['a version that exists', () => vas, 'type=AllocatedVolumes&version=1&format=csv', 409, /version 1 .*exists|published already/i],
    ['a caller that may not publish', () => sup, 'type=AllocatedVolumes&version=2&format=csv', 403, /may publish/],
    ['an unknown query name', () => vas, 'type=AllocatedVolumes&version=2&format=csv&typo=1', 400, /typo is not publication metadata/],
  ];

  // Before: the DIP answered and closed with megabytes still arriving; the close reset the connection and
  // the sender, still writing, lost the answer (EPIPE / ECONNRESET here, SSLEOFError in Python, curl 55).
  it.each(refusals)('answers %s to a sender that writes all 5 MB before reading (no Expect): the answer is read, no reset', async (_name, who, query, status, help) => {
    const path = uploadPath(query);
    for (let attempt = 0; attempt < 3; attempt++) {
      const head = await uploadHead(t, who(), path, FIVE_MB);
      const r = await rawTls(t, { ...tlsOf(who()), write: Buffer.concat([Buffer.from(head), FIVE_MB]), timeoutMs: 15_000 });
      expect({ attempt, status: r.status, error: r.error, closedByServer: r.closedByServer }).toEqual({ attempt, status, error: null, closedByServer: true });
      const answer = rawAnswerOf(r);
      expect(answer.header('connection')).toBe('close');
      expect(JSON.stringify(answer.json)).toMatch(help);
    }
  });

  // Before: 100 Continue went out as the body was about to be parsed, before the route judged the upload;
  // the refusal came after it, and the sender, told to go on, sent its body into a closing connection.
  it.each(refusals)('answers %s instead of 100 Continue to a sender that waits for it, and closes', async (_name, who, query, status, help) => {
    const head = await uploadHead(t, who(), uploadPath(query), FIVE_MB, ['Expect: 100-continue']);
    const r = await rawTls(t, { ...tlsOf(who()), write: head, timeoutMs: 10_000 });
    expect({ status: r.status, continued: r.text.includes('100 Continue'), closedByServer: r.closedByServer, error: r.error }).toEqual({ status, continued: false, closedByServer: true, error: null });
    expect(rawAnswerOf(r).header('connection')).toBe('close');
    expect(JSON.stringify(rawAnswerOf(r).json)).toMatch(help);
  });

  it('answers a version that exists to a sender that asks for 100 Continue but sends its body at once: no reset', async () => {
    const head = await uploadHead(t, vas, uploadPath('type=AllocatedVolumes&version=1&format=csv'), FIVE_MB, ['Expect: 100-continue']);
    const r = await rawTls(t, { ...tlsOf(vas), write: Buffer.concat([Buffer.from(head), FIVE_MB]), timeoutMs: 15_000 });
    expect({ status: r.status, continued: r.text.includes('100 Continue'), error: r.error }).toEqual({ status: 409, continued: false, error: null });
  });

  it('still tells a sender whose upload it takes to continue, and stores it (201)', async () => {
    const body = Buffer.from('MPAN,Volume\n3,4\n');
    const head = await uploadHead(t, vas, uploadPath('type=AllocatedVolumes&version=3&format=csv'), body, ['Expect: 100-continue', 'Connection: close']);
    const r = await rawTls(t, { ...tlsOf(vas), write: head, dribble: [body], dribbleMs: 300, timeoutMs: 10_000 });
    expect(r.text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
  });
});

describe('the lingering close after a refused upload is bounded', () => {
  let t: TestDip;
  let vas: TestParticipant;
  const LINGER_MS = 5_000;

  beforeAll(async () => {
    t = await startTestDip({ http: { ...DEFAULTS.http, refusedUploadLingerMs: LINGER_MS, refusedUploadLingerBytes: 1024 * 1024 } });
    vas = await t.participant('VAS0000001', ['VAS']);
  });
  afterAll(async () => {
    await t?.close();
  });

  /** 100 bytes every 50 ms for 8 s: never idle, never near a byte bound on its own, longer than the time bound. */
  const trickle = (): Buffer[] => Array.from({ length: 160 }, () => Buffer.alloc(100, 'a'));
  const refusedHead = (body: Buffer): Promise<string> => uploadHead(t, vas, uploadPath('type=AllocatedVolumes&version=1&format=csv&typo=1'), body);

  // Before: a chunked upload past the channel's limit was refused part-way (BlobTooLarge) with the connection
  // closed at once, the rest of the body still arriving: the sender, still writing, got a reset, not the 413.
  it('answers 413 part-way through a chunked upload past the limit to a sender that writes it all: the answer is read, no reset', async () => {
    const small = await startTestDip({ http: { ...DEFAULTS.http, refusedUploadLingerMs: 5_000, refusedUploadLingerBytes: 8 * 1024 * 1024 }, publications: { ...DEFAULTS.publications, channels: { 'REP-003': { maxBytes: 1024 * 1024 } } } });
    try {
      const publisher = await small.participant('VAS0000001', ['VAS']);
      const path = uploadPath('type=AllocatedVolumes&version=9&format=csv');
      const chunks: Buffer[] = [];
      for (let at = 0; at < FIVE_MB.length; at += 64 * 1024) {
        const piece = FIVE_MB.subarray(at, at + 64 * 1024);
        chunks.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
      }
      chunks.push(Buffer.from('0\r\n\r\n'));
      for (let attempt = 0; attempt < 3; attempt++) {
        // Signed afresh each time (a signature is used once).
        const head = (await uploadHead(small, publisher, path, FIVE_MB)).replace(`Content-Length: ${FIVE_MB.length}\r\n`, 'Transfer-Encoding: chunked\r\n');
        const r = await rawTls(small, { ...tlsOf(publisher), write: Buffer.concat([Buffer.from(head), ...chunks]), timeoutMs: 15_000 });
        expect({ attempt, status: r.status, error: r.error, closedByServer: r.closedByServer }).toEqual({ attempt, status: 413, error: null, closedByServer: true });
        expect(rawAnswerOf(r).header('connection')).toBe('close');
        expect(JSON.stringify(rawAnswerOf(r).json)).toMatch(/larger than the limit of 1048576 bytes/);
      }
    } finally {
      await small.close();
    }
  });

  it('in bytes: a sender that goes on past refusedUploadLingerBytes is closed then, not at the time bound', async () => {
    const start = Buffer.alloc(4 * 1024 * 1024, 'a');
    const head = await refusedHead(Buffer.concat([start, ...trickle()]));
    const r = await rawTls(t, { ...tlsOf(vas), write: Buffer.concat([Buffer.from(head), start]), dribble: trickle(), dribbleMs: 50, timeoutMs: 15_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.ms).toBeLessThan(LINGER_MS - 1_000);
  });

  it('in time: a sender that trickles its body is closed once refusedUploadLingerMs have passed since the answer', async () => {
    const body = Buffer.concat(trickle());
    const r = await rawTls(t, { ...tlsOf(vas), write: await refusedHead(body), dribble: trickle(), dribbleMs: 50, timeoutMs: 15_000 });
    expect({ status: r.status, closedByServer: r.closedByServer }).toEqual({ status: 400, closedByServer: true });
    expect(r.ms).toBeGreaterThanOrEqual(LINGER_MS - 500);
    expect(r.ms).toBeLessThan(LINGER_MS + 2_000);
  });
});
