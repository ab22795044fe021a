import { createHash, randomBytes } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { totpCode } from '../src/security/portal-credentials.js';
import { adminApi } from './helpers/admin.js';
import { ShiftableClock } from './helpers/clocks.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

// A publication download (Pattern B) may take as long as the client keeps taking bytes; a client that
// stops reading is cut off once it has taken none for http.downloadIdleTimeoutMs, on the participant
// listener, on the anonymous one (where anyone may ask) and on the user portal. Time moves by the DIP's clock, not by waiting.
const IDLE_MS = 30_000;
// Larger than what the sockets' buffers on both sides hold, so that a client that reads nothing leaves
// the DIP with bytes waiting.
const SIZE = 24 * 1024 * 1024;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('base64');

describe('download deadlines: a publication download is bounded by the client taking bytes, not by its length', () => {
  const clock = new ShiftableClock();
  let t: TestDip;
  let vas: TestParticipant;
  let sup: TestParticipant;
  let data: Buffer;
  let id: string;
  /** What the DIP logged when it cut a download off. */
  const cuts: Array<Record<string, unknown>> = [];
  const logger = { info() {}, error() {}, warn: (o: Record<string, unknown>, m?: string) => void (m?.includes('download cut off') && cuts.push(o)) };

  beforeAll(async () => {
    t = await startTestDip(
      {
        http: { ...DEFAULTS.http, downloadIdleTimeoutMs: IDLE_MS },
        publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0, rateLimit: { requestsPerSecond: 50, burst: 50 } } },
      },
      undefined,
      { clock, logger },
    );
    vas = await t.participant('VAS0000001', ['VAS']);
    sup = await t.participant('SUP0000001', ['SUP']);
    data = randomBytes(SIZE);
    const answer = await vas.client.publish('REP-002', { type: 'OpenVolumes', version: '1', format: 'csv', public: 'true' }, data, sha(data));
    expect(answer.status).toBe(201);
    id = (answer.body as unknown as { publication: { publicationID: string } }).publication.publicationID;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('cuts off an anonymous client that asks for a download and stops reading it, once it has taken nothing for the idle timeout', async () => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port: t.dip.publicPort!, ca: t.dip.pki.ca.certPem, servername: 'localhost' });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    let received = 0;
    socket.on('data', (piece: Buffer) => (received += piece.length));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write(`GET /publications/${id}/content HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    // Reads nothing: the DIP's answer fills the sockets' buffers and waits.
    socket.pause();
    // Less than the idle timeout at a time: the first jumps may still see bytes going out. The operator's
    // log says when the DIP gave up (a paused client cannot see the connection close until it reads).
    await waitFor(() => {
      if (cuts.length === 0) clock.jump(IDLE_MS / 3);
      return cuts.length > 0;
    }, 15_000, 'the stalled download to be cut off');
    expect(cuts[0]).toMatchObject({ url: `/publications/${id}/content`, idleMs: IDLE_MS });
    // Reading again, the client finds the transfer cut short (it may resume it with Range).
    socket.resume();
    await closed;
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(SIZE);
  });

  it('lets a client that keeps reading take far longer than the idle timeout, and gives it every byte', async () => {
    const answer = await sup.client.download(`/dip-channel/REP-002/publications/${id}/content`);
    expect(answer.status).toBe(200);
    const hash = createHash('sha256');
    let received = 0;
    let next = 2 * 1024 * 1024;
    for await (const piece of answer.body) {
      hash.update(piece as Buffer);
      received += (piece as Buffer).length;
      // Half the idle timeout passes between every two MiB taken: twelve times the timeout in all.
      if (received >= next) {
        clock.jump(IDLE_MS / 2);
        next += 2 * 1024 * 1024;
      }
    }
    expect(received).toBe(SIZE);
    expect(hash.digest('base64')).toBe(sha(data));
  });

  it("cuts off a user portal download that the browser stops reading, as the API's", async () => {
    // A supplier's user, signed in (the first sign-in sets up the TOTP; codes on the DIP's clock).
    const made = (await adminApi(t)('POST', '/admin/portal/accounts', { username: 'sam.sup', displayName: 'Sam', participantDipId: sup.dipId, admin: true })).body as { password: string };
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    const post = async (path: string, form: Record<string, string>) => {
      const res = await request(`${t.dip.portalUrl}${path}`, { method: 'POST', dispatcher: agent, headers: { 'content-type': 'application/x-www-form-urlencoded', origin: t.dip.portalUrl }, body: new URLSearchParams(form).toString() });
      return { headers: res.headers, text: await res.body.text() };
    };
    const first = await post('/portal/sign-in', { username: 'sam.sup', password: made.password, code: '' });
    const secret = /id="totp-secret">([A-Z2-7]+)</.exec(first.text)![1]!;
    const token = /name="token" value="([^"]+)"/.exec(first.text)![1]!;
    const signedIn = await post('/portal/sign-in/enrolment', { token, choose: 'yes', code: totpCode(secret, clock.now()), next: 'sam chose this one', repeat: 'sam chose this one' });
    const cookie = String(signedIn.headers['set-cookie']).split(';')[0]!;
    await agent.close();

    const socket: TLSSocket = connect({ host: '127.0.0.1', port: Number(new URL(t.dip.portalUrl).port), ca: t.dip.pki.ca.certPem, servername: 'localhost' });
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    let received = 0;
    socket.on('data', (piece: Buffer) => (received += piece.length));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const path = `/portal/publications/REP-002/${id}`;
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nCookie: ${cookie}\r\n\r\n`);
    socket.pause();
    const cut = () => cuts.some((c) => c['url'] === path);
    await waitFor(() => {
      if (!cut()) clock.jump(IDLE_MS / 3);
      return cut();
    }, 15_000, 'the stalled portal download to be cut off');
    socket.resume();
    await closed;
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(SIZE);
  });
});
