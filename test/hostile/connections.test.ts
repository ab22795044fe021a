/**
 * Hostile connection counts: one participant's certificate opening more kept-alive TLS connections than
 * its cap (http.maxConnectionsPerClient) is answered 429 on each one over, in the StandardResponse shape,
 * and that connection is closed; its connections within the cap, and everyone else's, are served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'undici';
import { waitFor, type TestParticipant } from '../helpers/dip-harness.js';
import { expectRefusal, keptAliveConnection, expectStillServing, HOSTILE_HTTP, messageCount, metricOf, rawAnswerOf, rawSignedRequest, rawTls, startHostileDip, tlsOf, validItem, type HostileDip } from './helpers.js';

const CAP = 3;

let h: HostileDip;
const metric = (name: string): Promise<number> => metricOf(h.t, name);
const clients: Client[] = [];
beforeAll(async () => {
  h = await startHostileDip({ http: { ...HOSTILE_HTTP, maxConnectionsPerClient: CAP } });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.destroy()));
  await h?.close();
});

/** One kept-alive connection of `who`'s, already answered once: 200. */
const openConnection = (who: TestParticipant): Promise<Client> => keptAliveConnection(h.t.dip.url, { ca: h.t.dip.pki.ca.certPem, ...tlsOf(who) }, '/health', clients);

const KEEP_ALIVE_HEALTH = 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n';

describe('concurrent connections per client (http.maxConnectionsPerClient)', () => {
  const mine: Client[] = [];

  it(`serves a participant's first ${CAP} connections, kept open`, async () => {
    for (let i = 0; i < CAP; i++) mine.push(await openConnection(h.sds));
    expect(await metric('dip_participant_connections')).toBe(CAP);
  });

  it('answers a request on one more 429 with Retry-After and a StandardResponse naming the limit, then closes it', async () => {
    // Asked to keep the connection alive: the server closes it all the same (rawTls waits for that).
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: KEEP_ALIVE_HEALTH, timeoutMs: 5_000 });
    expect(r.closedByServer, r.text).toBe(true);
    const a = rawAnswerOf(r);
    expectRefusal(a, 429, new RegExp(`${CAP} connections from ${h.sds.dipId} are open; at most ${CAP} at once: reuse them \\(keep-alive\\)`), 'one connection over the cap');
    expect(a.header('retry-after')).toBe('1');
    expect(a.header('connection')).toBe('close');
    expect((a.json as { messageArray: Array<{ recipientID: string | null }> }).messageArray[0]!.recipientID).toBe(h.sds.dipId);
  });

  it('refuses a signed submission on a connection over the cap without storing it', async () => {
    const before = messageCount(h.t);
    const raw = await rawSignedRequest(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem()]), connection: 'keep-alive' });
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: raw, timeoutMs: 5_000 });
    expect(r.closedByServer, r.text).toBe(true);
    expectRefusal(rawAnswerOf(r), 429, /at most 3 at once/, 'a submission over the cap');
    expect(messageCount(h.t)).toBe(before);
  });

  it('reads a body still arriving on a connection over the cap before it answers and closes: no reset, the 429 arrives whole', async () => {
    const chunk = 'x'.repeat(64 * 1024);
    const head = `POST /dip-channel/IF-021 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${4 * chunk.length}\r\n\r\n`;
    // The body follows the head over 400 ms: answered and closed at once, the socket would be closed with
    // these bytes unread, and the reset it sends is what the sender sees (ECONNRESET or EPIPE).
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: head, dribble: [chunk, chunk, chunk, chunk], dribbleMs: 100, timeoutMs: 5_000 });
    expect(r.error, r.text.slice(0, 200)).toBeNull();
    expect(r.closedByServer).toBe(true);
    expectRefusal(rawAnswerOf(r), 429, /at most 3 at once/, 'a body over the cap');
  });

  it('answers a request over the cap that waits for 100 Continue at once, with no go-ahead: it has no body to drain', async () => {
    const head = `POST /dip-channel/IF-021 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n`;
    // The sender sends nothing until told to continue. Before, the refusal waited for that body for the
    // drain's 2 s idle pause: this times out first (1 s), and the 429 came late.
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: head, timeoutMs: 1_000 });
    expect(r.closedByServer, r.text).toBe(true);
    expect(r.text).not.toContain('100 Continue');
    expectRefusal(rawAnswerOf(r), 429, /at most 3 at once/, 'a request over the cap waiting for 100 Continue');
  });

  // An over-cap connection that sends nothing holds a descriptor until the header deadline (1 s here), as
  // any silent connection does: closed any sooner, it would lose the 429 of a request that comes late
  // (src/api/connection-cap.ts says why no earlier close is lossless).
  it('answers a request that comes late on a connection over the cap (0.7 s after the handshake, within the header deadline) 429, not a closed connection', async () => {
    const r = await rawTls(h.t, { ...tlsOf(h.sds), dribble: [KEEP_ALIVE_HEALTH], dribbleMs: 700, timeoutMs: 5_000 });
    expect({ closedByServer: r.closedByServer, error: r.error }).toEqual({ closedByServer: true, error: null });
    expectRefusal(rawAnswerOf(r), 429, /at most 3 at once/, 'a request that came late on a connection over the cap');
  });

  it("serves the participant's connections within the cap, and another participant's, meanwhile", async () => {
    for (const c of mine) {
      const res = await c.request({ path: '/health', method: 'GET' });
      await res.body.text();
      expect(res.statusCode).toBe(200);
    }
    for (let i = 0; i < CAP; i++) await openConnection(h.sup);
    expect(await metric('dip_participant_connections')).toBe(2 * CAP);
  });

  it('serves a new connection once one of the participant\'s closes', async () => {
    await mine.shift()!.close();
    // The server counts the connection down when it sees it close, a moment after the client does.
    await waitFor(async () => (await metric('dip_participant_connections')) === 2 * CAP - 1, 5_000, 'the closed connection counted down');
    mine.push(await openConnection(h.sds));
    // And the cap holds again with it.
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: KEEP_ALIVE_HEALTH, timeoutMs: 5_000 });
    expect(r.status, r.text).toBe(429);
  });

  it('counts each connection refused in dip_connections_refused_total', async () => {
    expect(await metric('dip_connections_refused_total{listener="participant"}')).toBe(6);
  });

  it('still accepts a valid message (201) once the participant has closed its connections', async () => {
    await Promise.all(mine.splice(0).map((c) => c.close()));
    await waitFor(async () => (await metric('dip_participant_connections')) === CAP, 5_000, "the participant's connections counted down");
    await expectStillServing(h);
  });
});
