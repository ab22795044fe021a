/**
 * Hostile connection counts on the anonymous listener (public publications, no client certificate): one
 * address opening more kept-alive TLS connections than its cap (publications.anonymous.maxConnectionsPerAddress)
 * is answered 429 on each one over, in the StandardResponse shape, and that connection is closed; its
 * connections within the cap, and other addresses', are served. The listener is dual-stack (::), so an
 * IPv4 client arrives as ::ffff:127.0.0.1, and is counted and named as 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'undici';
import { DEFAULTS } from '../../src/config.js';
import { clientAddress } from '../../src/api/connection-cap.js';
import { addressCapCases, expectRefusal, keptAliveConnection, rawAnswerOf, rawTls, startHostileDip, type HostileDip } from './helpers.js';

const CAP = 3;

let h: HostileDip;
let port: number;
const clients: Client[] = [];

beforeAll(async () => {
  h = await startHostileDip({
    publications: {
      ...DEFAULTS.publications,
      // The request rate is not what is tested here: off.
      anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '::', port: 0, rateLimit: { requestsPerSecond: 0, burst: 1 }, maxConnectionsPerAddress: CAP },
    },
  });
  port = h.t.dip.publicPort!;
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.destroy()));
  await h?.close();
});

/** One kept-alive connection from 127.0.0.1 without a certificate, already answered once: 200. */
const openConnection = (): Promise<Client> => keptAliveConnection(`https://127.0.0.1:${port}`, { ca: h.t.dip.pki.ca.certPem, servername: 'localhost' }, '/publications', clients);

const KEEP_ALIVE_LIST = 'GET /publications HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n';

describe('concurrent connections per address on the anonymous listener (publications.anonymous.maxConnectionsPerAddress)', () => {
  addressCapCases({
    dip: () => h,
    listener: 'anonymous',
    port: () => port,
    cap: CAP,
    path: '/publications',
    write: KEEP_ALIVE_LIST,
    open: openConnection,
    refused: 1,
    refusals: () => {
      it('answers a request on one more 429 with Retry-After and a StandardResponse naming the limit and the address (IPv4, not IPv4-mapped), then closes it', async () => {
        const r = await rawTls(h.t, { port, write: KEEP_ALIVE_LIST, timeoutMs: 5_000 });
        expect(r.closedByServer, r.text).toBe(true);
        const a = rawAnswerOf(r);
        expectRefusal(a, 429, new RegExp(`^too many connections: ${CAP} connections from the address 127\\.0\\.0\\.1 are open; at most ${CAP} at once: reuse them \\(keep-alive\\)$`), 'one connection over the cap');
        expect(a.header('retry-after')).toBe('1');
        expect(a.header('connection')).toBe('close');
        expect((a.json as { messageArray: Array<{ recipientID: string | null }> }).messageArray[0]!.recipientID).toBeNull();
      });
    },
  });
});

describe('clientAddress', () => {
  it('names an IPv4-mapped IPv6 address by its IPv4 address, and leaves others as they are', () => {
    expect(clientAddress({ remoteAddress: '::ffff:192.0.2.7' })).toBe('192.0.2.7');
    expect(clientAddress({ remoteAddress: '::FFFF:192.0.2.7' })).toBe('192.0.2.7');
    expect(clientAddress({ remoteAddress: '192.0.2.7' })).toBe('192.0.2.7');
    expect(clientAddress({ remoteAddress: '2001:db8::ffff:192.0.2.7' })).toBe('2001:db8::ffff:192.0.2.7');
    expect(clientAddress({ remoteAddress: '::1' })).toBe('::1');
  });
});
