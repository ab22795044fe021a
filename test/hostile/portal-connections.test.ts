/**
 * Hostile connection counts on the portal listener (the user and operator portals, for browsers, no
 * client certificate): one address opening more kept-alive TLS connections than its cap
 * (portal.maxConnectionsPerAddress) is answered 429 on each one over, with a portal page a person can
 * read (not the API's StandardResponse: the portals answer browsers), and that connection is closed; its
 * connections within the cap, and other addresses', are served. The listener is dual-stack (::), so an
 * IPv4 client arrives as ::ffff:127.0.0.1, and is counted and named as 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config.js';
import type { Client } from 'undici';
import { addressCapCases, keptAliveConnection, rawAnswerOf, rawTls, startHostileDip, type HostileDip, type RawResult } from './helpers.js';

const CAP = 3;

let h: HostileDip;
let port: number;
const clients: Client[] = [];

beforeAll(async () => {
  // Every listener on :: (the portal listens on `host`), so ::1 is another client address than 127.0.0.1.
  h = await startHostileDip({ host: '::', portal: { ...DEFAULTS.portal, maxConnectionsPerAddress: CAP } });
  port = Number(new URL(h.t.dip.portalUrl).port);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.destroy()));
  await h?.close();
});

/** One kept-alive connection from 127.0.0.1, already answered once: 200. */
const openConnection = (): Promise<Client> => keptAliveConnection(`https://127.0.0.1:${port}`, { ca: h.t.dip.pki.ca.certPem, servername: 'localhost' }, '/portal/sign-in', clients);

const KEEP_ALIVE_SIGN_IN = 'GET /portal/sign-in HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n';

/** The 429 page: HTML with the portal's headers, the limit and the address named, Retry-After, and the connection closed. */
function expectOverCapPage(r: RawResult, portal: string): void {
  expect(r.closedByServer, r.text).toBe(true);
  expect(r.error, r.text.slice(0, 300)).toBeNull();
  const a = rawAnswerOf(r);
  expect(a.status, r.text.slice(0, 300)).toBe(429);
  expect(a.header('content-type')).toBe('text/html; charset=utf-8');
  expect(a.header('retry-after')).toBe('1');
  expect(a.header('connection')).toBe('close');
  expect(a.header('content-security-policy')).toMatch(/default-src 'none'/);
  expect(a.header('cache-control')).toBe('no-store');
  // rawTls reads bytes as latin1; the page is UTF-8.
  const page = Buffer.from(r.text, 'latin1').toString('utf8');
  expect(page).toContain(`<title>Too many connections · ${portal}</title>`);
  expect(page).toContain(`too many connections: ${CAP} connections from the address 127.0.0.1 are open to the portal; at most ${CAP} at once`);
}

describe('concurrent connections per address on the portal listener (portal.maxConnectionsPerAddress)', () => {
  addressCapCases({
    dip: () => h,
    listener: 'portal',
    port: () => port,
    cap: CAP,
    path: '/operator/sign-in',
    write: KEEP_ALIVE_SIGN_IN,
    open: openConnection,
    refused: 2,
    refusals: () => {
      it('answers a page asked for on one more 429 with Retry-After and a page naming the limit and the address (IPv4, not IPv4-mapped), then closes it', async () => {
        const r = await rawTls(h.t, { port, write: KEEP_ALIVE_SIGN_IN, timeoutMs: 5_000 });
        expectOverCapPage(r, 'OpenDIP participant portal');
      });

      it("answers a form posted on one more with the page of the form's portal (the operator's), before the sign-in is tried", async () => {
        // Written whole with the head, as a browser posts a form: the cap drains it before answering and closing.
        const form = `username=someone&password=${'x'.repeat(200 * 1024)}`;
        const head = `POST /operator/sign-in HTTP/1.1\r\nHost: localhost\r\nOrigin: https://localhost:${port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${form.length}\r\nConnection: keep-alive\r\n\r\n`;
        const r = await rawTls(h.t, { port, write: head + form, timeoutMs: 5_000 });
        expectOverCapPage(r, 'OpenDIP operator portal');
      });
    },
  });
});
