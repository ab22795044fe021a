import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

// A publication download cut part-way after its 200 (the idle deadline, or the stored bytes failing to
// read) must reach the client as an error, never as a body that ends as if it were whole: a download of
// the stored bytes has a Content-Length the cut body falls short of, a decompressed or filtered one is
// chunked and never gets its last (empty) chunk. Either way an HTTP client fails the body, and the
// client resumes with Range and If-Range (README "Large publications"). Time moves by the DIP's clock.
const IDLE_MS = 30_000;
// Larger than what the sockets' buffers on both sides hold, so that a client that reads nothing leaves
// the DIP with bytes waiting.
const SIZE = 24 * 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

/** Reads the body to its end: how many bytes came, and the error it ended with (null: it ended whole). */
async function drain(body: Readable): Promise<{ received: number; error: Error | null }> {
  let received = 0;
  try {
    for await (const piece of body) received += (piece as Buffer).length;
    return { received, error: null };
  } catch (err) {
    return { received, error: err as Error };
  }
}

describe('a publication download cut part-way is an error at the client', () => {
  const clock = new ShiftableClock();
  let t: TestDip;
  let sup: TestParticipant;
  let id: string;
  const cuts: string[] = [];
  const logger = { info() {}, error() {}, warn: (o: Record<string, unknown>, m?: string) => void (m?.includes('download cut off') && cuts.push(String(o['url']))) };

  beforeAll(async () => {
    t = await startTestDip({ http: { ...DEFAULTS.http, downloadIdleTimeoutMs: IDLE_MS } }, undefined, { clock, logger });
    const vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
    const data = randomBytes(SIZE);
    const answer = await vas.client.publish('REP-002', { type: 'OpenVolumes', version: '1', format: 'csv' }, data, sha(data));
    expect(answer.status).toBe(201);
    id = (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
  });
  afterAll(async () => {
    await t?.close();
  });

  const content = () => `/dip-channel/REP-002/publications/${id}/content`;
  /** The three ways a download is sent: its stored bytes (Content-Length), a range of them (206), its content decompressed (chunked). */
  const ways: Array<{ name: string; query: string; headers: Record<string, string>; status: number; length: number | null }> = [
    { name: 'whole', query: '', headers: {}, status: 200, length: SIZE },
    { name: 'a range', query: '', headers: { range: 'bytes=1000-' }, status: 206, length: SIZE - 1000 },
    { name: 'decompressed (chunked)', query: '?decompress=true', headers: {}, status: 200, length: null },
  ];

  it.each(ways)('the stored bytes failing to read part-way: $name', async (way) => {
    // The blob store gives the first 2 MiB, then fails (a disk error, a blob gone underneath).
    const real = t.dip.publications.read.bind(t.dip.publications);
    const failing = vi.spyOn(t.dip.publications, 'read').mockImplementation((record, range) =>
      (async function* () {
        let given = 0;
        for await (const piece of real(record, range)) {
          yield piece;
          given += piece.length;
          if (given >= 2 * 1024 * 1024) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' });
        }
      })(),
    );
    try {
      const answer = await sup.client.download(`${content()}${way.query}`, way.headers);
      expect(answer.status).toBe(way.status);
      expect(answer.headers['content-length']).toBe(way.length === null ? undefined : String(way.length));
      if (way.length === null) expect(answer.headers['transfer-encoding']).toBe('chunked');
      const { received, error } = await drain(answer.body);
      expect(received).toBeGreaterThan(0);
      expect(received).toBeLessThan(way.length ?? SIZE);
      // Not a short body taken as the whole file: the client's read of it fails.
      expect(error, `${way.name}: ${received} bytes ended as if whole`).not.toBeNull();
    } finally {
      failing.mockRestore();
    }
  });

  it.each(ways)('cut off for the idle deadline: $name', async (way) => {
    const answer = await sup.client.download(`${content()}${way.query}`, way.headers);
    expect(answer.status).toBe(way.status);
    // The client takes one piece, then stops reading; the DIP's clock moves until it cuts the download.
    const reader = answer.body[Symbol.asyncIterator]();
    const first = await reader.next();
    expect(first.done).toBe(false);
    const before = cuts.length;
    await waitFor(() => {
      if (cuts.length === before) clock.jump(IDLE_MS / 3);
      return cuts.length > before;
    }, 15_000, 'the stalled download to be cut off');
    let received = (first.value as Buffer).length;
    let error: Error | null = null;
    try {
      for (let next = await reader.next(); !next.done; next = await reader.next()) received += (next.value as Buffer).length;
    } catch (err) {
      error = err as Error;
    }
    expect(received).toBeLessThan(way.length ?? SIZE);
    expect(error, `${way.name}: ${received} bytes ended as if whole`).not.toBeNull();
  });
});
