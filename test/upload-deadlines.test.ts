import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { rawSignedRequest, rawTls, tlsOf } from './hostile/helpers.js';

// A publication upload (Pattern B) may take as long as it keeps bytes coming; every other request must
// arrive whole within http.requestTimeoutMs. Time moves by the DIP's clock, not by waiting.
const REQUEST_MS = 1_000;
const IDLE_MS = 30_000;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

/** A body that sends its first part, then waits for the test to let the rest go. */
function gated(first: Buffer, rest: Buffer): { body: AsyncIterable<Uint8Array>; open: () => void } {
  let open = (): void => {};
  const gate = new Promise<void>((resolve) => (open = resolve));
  async function* body(): AsyncGenerator<Buffer> {
    yield first;
    await gate;
    yield rest;
  }
  return { body: body(), open: () => open() };
}

describe('request deadlines: a publication upload is bounded by its progress, everything else by its length', () => {
  const clock = new ShiftableClock();
  let t: TestDip;
  let vas: TestParticipant;
  let sds: TestParticipant;
  let n = 0;
  const partFiles = () => readdirSync(join(t.config.dataDir, 'publications')).filter((f) => f.endsWith('.part'));
  const publish = (body: AsyncIterable<Uint8Array>, hash: string) => vas.client.publish('REP-002', { type: 'DUoS', version: `u${(n += 1)}`, format: 'csv' }, body, hash);

  beforeAll(async () => {
    t = await startTestDip({ http: { ...DEFAULTS.http, requestTimeoutMs: REQUEST_MS, uploadIdleTimeoutMs: IDLE_MS } }, undefined, { clock });
    vas = await t.participant('VAS0000001', ['VAS']);
    sds = await t.participant('2000000001', ['SDS']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('a JSON body that stops arriving is answered 408 once the whole-request timeout has passed (slow clients)', async () => {
    const raw = await rawSignedRequest(t, sds, { path: '/dip-channel/IF-021', body: `[${' '.repeat(200)}]` });
    let closed = false;
    const answer = rawTls(t, { ...tlsOf(sds), write: raw.slice(0, raw.length - 100), timeoutMs: 20_000 }).finally(() => (closed = true));
    await waitFor(() => {
      if (!closed) clock.jump(REQUEST_MS);
      return closed;
    }, 15_000, 'the slow request to be cut off');
    const r = await answer;
    expect(r.closedByServer).toBe(true);
    expect(r.status).toBe(408);
    expect(r.text).toContain(`the whole request within ${REQUEST_MS} ms`);
  });

  it('an upload that keeps bytes coming may take far longer than the whole-request timeout, and is stored', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const { body, open } = gated(data.subarray(0, 1_500_000), data.subarray(1_500_000));
    const answer = publish(body, sha(data));
    await waitFor(() => partFiles().length === 1, 10_000, 'the upload to reach the store');
    // Twenty times the whole-request timeout, less than the idle timeout: the upload goes on.
    clock.jump(20 * REQUEST_MS);
    open();
    const done = await answer;
    expect(done.status, JSON.stringify(done.body)).toBe(201);
    const id = (done.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
    expect((await t.dip.publications.get(id))?.size).toBe(data.length);
  });

  it('an upload that stalls is cut off once no byte has come for the idle timeout, and nothing of it is kept', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const { body, open } = gated(data.subarray(0, 1_500_000), data.subarray(1_500_000));
    let settled = false;
    const answer = publish(body, sha(data)).then(
      (a) => a.status,
      (err: Error) => err,
    );
    void answer.finally(() => (settled = true));
    await waitFor(() => partFiles().length === 1, 10_000, 'the upload to reach the store');
    await waitFor(() => {
      if (!settled) clock.jump(IDLE_MS);
      return settled;
    }, 15_000, 'the stalled upload to be cut off');
    // The DIP answers 408 and closes; the client may see the answer, or only the connection closing
    // while it still had bytes to send.
    const outcome = await answer;
    if (typeof outcome === 'number') expect(outcome).toBe(408);
    else expect(outcome).toBeInstanceOf(Error);
    await waitFor(() => partFiles().length === 0, 10_000, 'the partial upload removed');
    expect(await t.dip.publications.find({ channel: 'REP-002', version: `u${n}`, limit: 10 })).toEqual([]);
    open();
  });
});
