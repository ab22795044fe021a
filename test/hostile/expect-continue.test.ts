/**
 * Expect: 100-continue from a caller whose API key (or client certificate) is refused: the refusal comes
 * at once, before any go-ahead, so the sender uploads nothing; and it is the very answer the route gives
 * the same request sent with its body (status, StandardResponse, Content-Type), with the connection
 * closed, since the body the request announced never comes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config.js';
import { rawAnswerOf, rawSignedRequest, rawTls, startHostileDip, SUP_ID, tlsOf, validItem, type HostileDip } from './helpers.js';

let h: HostileDip;
beforeAll(async () => {
  h = await startHostileDip();
});
afterAll(async () => {
  await h?.close();
});

/** A body of about 1 MB (within bodyLimitBytes): what a refused sender would otherwise upload. */
const bigBatch = (): string => {
  const batch = JSON.stringify([validItem()]);
  return batch + ' '.repeat(1024 * 1024 - batch.length);
};

/**
 * The request the data service signs for `path` and `body`, with `key` as its X-API-Key (null: none) and
 * its Content-Type: its head's lines (without the blank line that ends them) and its body, to send with
 * or without Expect.
 */
async function signed(d: HostileDip, path: string, body: string, key: string | null, contentType = 'application/json'): Promise<{ head: string; body: string }> {
  const raw = await rawSignedRequest(d.t, d.sds, { path, body });
  const end = raw.indexOf('\r\n\r\n') + 2;
  const head = raw
    .slice(0, end)
    .replace(/^Content-Type: .*\r\n/m, `Content-Type: ${contentType}\r\n`)
    .replace(/^X-API-Key: .*\r\n/m, key === null ? '' : `X-API-Key: ${key}\r\n`);
  return { head, body: raw.slice(end + 2) };
}

/** What the answer says, without what differs between any two answers (its timestamps, its Date header). */
function said(r: Awaited<ReturnType<typeof rawTls>>) {
  const a = rawAnswerOf(r);
  let body = a.json;
  if (typeof body === 'object' && body !== null) {
    const { timestamp: _t, messageArray = [], ...rest } = body as { timestamp?: string; messageArray?: Array<Record<string, unknown>> };
    body = { ...rest, messageArray: messageArray.map(({ sentTimestamp: _s, ...entry }) => entry) };
  }
  return { status: a.status, contentType: a.header('content-type'), contentLength: a.header('content-length'), body };
}

/**
 * `path` sent by the data service with `key`, once with its 1 MB body and once with Expect: 100-continue
 * and nothing more: refused `status` (help like `help`) at once the second time, as the first time.
 */
async function expectRefusedBeforeContinue(d: HostileDip, path: string, key: string | null, contentType: string, status: number, help: RegExp): Promise<void> {
  const { head, body } = await signed(d, path, bigBatch(), key, contentType);
  // With its body (no Expect): the route's own answer.
  const after = await rawTls(d.t, { ...tlsOf(d.sds), write: `${head}\r\n${body}`, timeoutMs: 10_000 });
  expect(after.status, after.text.slice(0, 300)).toBe(status);
  expect(JSON.stringify(said(after).body)).toMatch(help);
  // Expecting 100 Continue, sending nothing more: before, the DIP sent 100 Continue and waited for the
  // body (status 100, and the connection still open when this gives up).
  const early = await rawTls(d.t, { ...tlsOf(d.sds), write: `${head}Expect: 100-continue\r\n\r\n`, timeoutMs: 2_000 });
  expect({ status: early.status, continued: early.text.includes('100 Continue'), closedByServer: early.closedByServer, error: early.error }).toEqual({
    status,
    continued: false,
    closedByServer: true,
    error: null,
  });
  expect(said(early)).toEqual(said(after));
  expect(rawAnswerOf(early).header('connection')).toBe('close');
}

const refusals: Array<[string, string, string | null, string, number, RegExp]> = [
  ['a submission with an unknown key', '/dip-channel/IF-021', 'not-a-key-of-anyone', 'application/json', 401, /X-API-Key is not recognised/],
  ['a submission with no key', '/dip-channel/IF-021', null, 'application/json', 401, /X-API-Key header is missing/],
  // The supplier's key over the data service's certificate: the key is known, but not the certificate's.
  ["a submission with another participant's key", '/dip-channel/IF-021', 'sup', 'application/json', 403, /bound to 2000000001, not to the participant of this API key/],
  ['a validation (/validate) with an unknown key', '/validate/IF-021/x', 'not-a-key-of-anyone', 'application/json', 401, /X-API-Key is not recognised/],
  // A control operation takes at most controlBodyLimitBytes (64 KiB): the 1 MB body is refused by its length first, whoever sends it.
  ['a guarded call (ack) with an unknown key and a body over its 64 KiB limit', `/dip-channel/IF-021/ack/${SUP_ID}`, 'not-a-key-of-anyone', 'application/json', 413, /limit of 65536 bytes/],
  [
    'a publication upload (streamed) with an unknown key',
    '/dip-channel/IF-021/publications?type=t&version=1&format=csv',
    'not-a-key-of-anyone',
    'application/octet-stream',
    401,
    /X-API-Key is not recognised/,
  ],
];

describe('Expect: 100-continue from a caller whose key is refused', () => {
  it.each(refusals)('refuses %s at once, without 100 Continue, as it refuses it after its body', async (_name, path, key, contentType, status, help) => {
    await expectRefusedBeforeContinue(h, path, key === 'sup' ? h.sup.apiKey : key, contentType, status, help);
  });

  // Asked for 100 Continue, then sent its body at once all the same (as a client may, and curl does after
  // waiting 1 s): answered at once and closed with those bytes arriving, the connection was reset (EPIPE
  // here; a client that reads only after it has written loses the answer to it). Read, then refused.
  it('reads the body of a sender that asks for 100 Continue but sends it without waiting, then refuses it: no reset', async () => {
    const batch = JSON.stringify([validItem()]);
    const { head, body } = await signed(h, '/dip-channel/IF-021', batch + ' '.repeat(4 * 1024 * 1024 - batch.length), 'not-a-key-of-anyone');
    for (let attempt = 0; attempt < 3; attempt++) {
      const r = await rawTls(h.t, { ...tlsOf(h.sds), write: `${head}Expect: 100-continue\r\n\r\n${body}`, timeoutMs: 10_000 });
      expect({ attempt, status: r.status, error: r.error, closedByServer: r.closedByServer }).toEqual({ attempt, status: 401, error: null, closedByServer: true });
      expect(JSON.stringify(said(r).body)).toMatch(/X-API-Key is not recognised/);
    }
  });

  it('still tells a caller whose key is accepted to continue, and takes its submission (201)', async () => {
    const { head, body } = await signed(h, '/dip-channel/IF-021', JSON.stringify([validItem()]), h.sds.apiKey);
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: `${head}Expect: 100-continue\r\n\r\n`, dribble: [body], dribbleMs: 300, timeoutMs: 10_000 });
    expect(r.text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
  });
});

// The refusal before 100 Continue is the route's own answer, in whatever form the route gives it.
describe("Expect: 100-continue to /validate answering in the published string form (api.validateAnswer 'text')", () => {
  let t: HostileDip;
  beforeAll(async () => {
    t = await startHostileDip({ api: { ...DEFAULTS.api, validateAnswer: 'text' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses an unknown key at once, without 100 Continue, in the string form it answers after a body', async () => {
    await expectRefusedBeforeContinue(t, '/validate/IF-021/x', 'not-a-key-of-anyone', 'application/json', 401, /^"MSG1000 - Message Processing Failed: X-API-Key is not recognised"$/);
  });
});
