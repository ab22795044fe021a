/**
 * Hostile transport: certificates the TLS handshake must refuse, malformed and oversized HTTP, and
 * clients that are too slow on purpose. After each class the DIP still accepts a valid message.
 */
import 'reflect-metadata'; // before @peculiar/x509
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config.js';
import { createCertificateAuthority, type KeyAndCert } from '../../src/security/pki.js';
import { closedWhenSilent, expectStillServing, forgeCertificate, rawSignedRequest, rawTls, signerFor, startHostileDip, tlsOf, validItem, type HostileDip } from './helpers.js';

let h: HostileDip;
beforeAll(async () => {
  // With the anonymous listener (public publications), the third listener anyone reaches without a client certificate.
  h = await startHostileDip({ publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0, rateLimit: { requestsPerSecond: 0, burst: 1 } } } });
});
afterAll(async () => {
  await h?.close();
});

const HEALTH = 'GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';

describe('certificates refused during the TLS handshake', () => {
  const cases: Array<[string, () => Promise<KeyAndCert | null>]> = [
    ['no client certificate', async () => null],
    ['a self-signed certificate naming a registered DIP ID', () => forgeCertificate({ dipId: '2000000001' })],
    [
      'a certificate from another CA with the same name as the DIP\'s CA',
      async () => {
        const other = await createCertificateAuthority({ commonName: 'OpenDIP DEV CA', environment: 'DEV', validDays: 30 });
        return forgeCertificate({ dipId: '2000000001', ca: other });
      },
    ],
    ['an expired certificate from another CA (OpenSSL reports the last error: expired)', async () => {
      const other = await createCertificateAuthority({ commonName: 'OpenDIP DEV CA', environment: 'DEV', validDays: 30 });
      return forgeCertificate({ dipId: '2000000001', ca: other, notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    }],
    ['a certificate from the DIP\'s CA for servers only (no clientAuth)', () => forgeCertificate({ dipId: '2000000001', ca: h.t.dip.pki.ca, eku: [x509.ExtendedKeyUsage.serverAuth] })],
    ['a certificate from the DIP\'s CA whose signature was altered', () => forgeCertificate({ dipId: '2000000001', ca: h.t.dip.pki.ca, breakSignature: true })],
  ];

  it.each(cases)('refuses %s', async (_name, make) => {
    const cred = await make();
    const r = await rawTls(h.t, { ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}), write: HEALTH, timeoutMs: 5_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.status, r.text).toBeNull(); // not one byte of HTTP came back
  });

  // From the DIP's CA and refused only for its dates: told why (src/api/certificate-answer.ts), and closed.
  it.each([
    ['an expired certificate from the DIP\'s CA', /expired at/, -10, -1],
    ['a not-yet-valid certificate from the DIP\'s CA', /is not valid before/, 1, 10],
  ] as const)('answers %s 401 naming why, and closes the connection', async (_name, why, fromDays, toDays) => {
    const cred = await forgeCertificate({ dipId: '2000000001', ca: h.t.dip.pki.ca, notBefore: new Date(Date.now() + fromDays * 86400_000), notAfter: new Date(Date.now() + toDays * 86400_000) });
    const r = await rawTls(h.t, { cert: cred.certPem, key: cred.keyPem, write: HEALTH, timeoutMs: 5_000 });
    expect(r.status, r.text).toBe(401);
    expect(r.text).toMatch(why);
    expect(r.closedByServer).toBe(true);
  });

  it('accepts the registered participant\'s own certificate (control)', async () => {
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: HEALTH });
    expect(r.status).toBe(200);
  });

  it('refuses a TLS 1.1 client', async () => {
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: HEALTH, maxVersion: 'TLSv1.1' });
    expect(r.secure).toBe(false);
    expect(r.status).toBeNull();
  });

  it('still accepts a valid message (201)', async () => {
    await expectStillServing(h);
  });
});

describe('malformed, smuggled and oversized HTTP', () => {
  const head = (lines: string[], body = '') => `${lines.join('\r\n')}\r\n\r\n${body}`;
  const base = ['POST /dip-channel/IF-021 HTTP/1.1', 'Host: localhost', 'Content-Type: application/json'];
  const cases: Array<[string, number, () => Promise<string>]> = [
    ['a header block over the 16 KiB limit (one huge header)', 431, async () => head([...base, `X-Filler: ${'a'.repeat(20_000)}`, 'Content-Length: 0'])],
    ['a header block over the limit (2 000 small headers)', 431, async () => head([...base, ...Array.from({ length: 2000 }, (_, i) => `X-F${i}: ${'b'.repeat(8)}`), 'Content-Length: 0'])],
    ['a request line over the limit (20 KB path)', 431, async () => head([`GET /dip-channel/${'A'.repeat(20_000)} HTTP/1.1`, 'Host: localhost'])],
    ['a bare CR inside a header value (header injection)', 400, async () => head([...base, 'X-API-Key: abc\rX-Injected: yes', 'Content-Length: 0'])],
    ['a NUL byte inside a header value', 400, async () => head([...base, 'X-API-Key: abc\u0000def', 'Content-Length: 0'])],
    ['an obsolete folded header line', 400, async () => head([...base, 'X-API-Key: abc', ' continued', 'Content-Length: 0'])],
    ['a space before the colon of a header name', 400, async () => head([...base, 'X-API-Key : abc', 'Content-Length: 0'])],
    ['Content-Length and Transfer-Encoding together (smuggling)', 400, async () => head([...base, 'Content-Length: 4', 'Transfer-Encoding: chunked'], '0\r\n\r\n')],
    ['two different Content-Length headers (smuggling)', 400, async () => head([...base, 'Content-Length: 2', 'Content-Length: 10'], '[]')],
    ['a malformed chunked body', 400, async () => head([...base, 'Transfer-Encoding: chunked'], 'zz\r\nabc\r\n0\r\n\r\n')],
    ['a negative Content-Length', 400, async () => head([...base, 'Content-Length: -1'])],
    ['an invalid method token', 400, async () => head(['P@ST /dip-channel/IF-021 HTTP/1.1', 'Host: localhost', 'Connection: close'])],
    ['an HTTP/2 preface on the HTTP/1.1 listener', 400, async () => 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
    ['HTTP/1.0 without a Host header', 200, async () => 'GET /health HTTP/1.0\r\n\r\n'],
    ['HTTP/1.1 without a Host header', 400, async () => 'GET /health HTTP/1.1\r\nConnection: close\r\n\r\n'],
    ['a request line claiming HTTP/2.0 in HTTP/1 framing', 505, async () => head(['GET /health HTTP/2.0', 'Host: localhost', 'Connection: close'])],
    ['an HTTP version that does not exist (HTTP/3.1)', 505, async () => head(['GET /health HTTP/3.1', 'Host: localhost', 'Connection: close'])],
    ['an Expect other than 100-continue', 417, async () => head([...base, 'Expect: 200-ok', 'Content-Length: 2'], '[]')],
    ['an absolute-form target naming another host, with it as Host (not a name of this DIP)', 421, async () => head(['GET https://evil.example/health HTTP/1.1', 'Host: evil.example', 'Connection: close'])],
    // RFC 9112 3.2.2: with an absolute-form target the server ignores Host; the target's authority is the name.
    ['an absolute-form target naming another host, with a Host of the DIP (Host is ignored)', 421, async () => head(['GET https://evil.example/health HTTP/1.1', 'Host: localhost', 'Connection: close'])],
    ['an absolute-form target naming the DIP, with another Host (Host is ignored)', 200, async () => head(['GET https://localhost/health HTTP/1.1', 'Host: evil.example', 'Connection: close'])],
    ['an absolute-form target with a user part', 421, async () => head(['GET https://u@localhost/health HTTP/1.1', 'Host: localhost', 'Connection: close'])],
    // Refused before the name is judged: the URL parser finds no path in it.
    ['an absolute-form target with no authority', 400, async () => head(['GET https:///health HTTP/1.1', 'Host: localhost', 'Connection: close'])],
  ];

  it.each(cases)('answers %s with %i (never a 5xx, never a crash)', async (_name, expected, make) => {
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: await make() });
    expect(r.status, r.text.slice(0, 300)).toBe(expected);
    if (expected >= 400) {
      // The parser's refusals are StandardResponses too.
      const body = r.text.slice(r.text.indexOf('\r\n\r\n') + 4);
      const json = JSON.parse(body) as { messageArray: Array<{ help: string }> };
      expect(json.messageArray[0]!.help).toBeTruthy();
      if (expected === 431) expect(json.messageArray[0]!.help).toContain('16384 bytes');
    }
  });

  it('answers a whole request before closing on the bytes after its body that are not HTTP (a Content-Length shorter than what was sent)', async () => {
    const body = JSON.stringify([validItem()]);
    const raw = await rawSignedRequest(h.t, h.sds, { path: '/dip-channel/IF-021', body });
    // The sender's own bug: its body runs on past the Content-Length it declared.
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: `${raw}, "left over"]`, timeoutMs: 15_000 });
    // The request as declared was whole: it is answered (201, durable), and the connection is closed after
    // it, with Connection: close (the leftover is no request: nothing more is parsed). It was a 400 alone.
    expect(r.text.match(/HTTP\/1\.1 \d{3}/g), r.text.slice(0, 300)).toEqual(['HTTP/1.1 201']);
    expect(r.text).toMatch(/\r\nConnection: close\r\n/i);
    expect(r.closedByServer).toBe(true);
    // Kept alive, the connection is still open after the answer: the leftover is refused then, once,
    // however many more bytes follow while the first is being answered.
    const kept = await rawSignedRequest(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem()]), connection: 'keep-alive' });
    const k = await rawTls(h.t, { ...tlsOf(h.sds), write: `${kept}, "left over"]`, dribble: Array.from({ length: 30 }, () => 'junk'), dribbleMs: 5, timeoutMs: 15_000 });
    expect(k.text.match(/HTTP\/1\.1 \d{3}/g), k.text.slice(0, 300)).toEqual(['HTTP/1.1 201', 'HTTP/1.1 400']);
    expect(k.closedByServer).toBe(true);
  });

  // The URL rebuilt for the signature put the Host before the whole target: https://localhost:PORThttps://localhost:PORT/dip-channel/if-021,
  // so an absolute-form request (RFC 9112 3.2.2, which a server must accept) could never authenticate.
  it('authenticates a signed submission sent with an absolute-form target (201)', async () => {
    const raw = await rawSignedRequest(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem()]) });
    const absolute = raw.replace('POST /dip-channel/IF-021 HTTP/1.1', `POST ${h.t.dip.url}/dip-channel/IF-021 HTTP/1.1`);
    expect(absolute).not.toBe(raw);
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: absolute });
    expect(r.status, r.text.slice(0, 600)).toBe(201);
  });

  // The signed URL took its authority from Host even when the target named one: a request signed for the
  // URL it targets was refused (401 when Host named another of the DIP's names, 421 when none), and what the
  // DIP verified was not the URL an intermediary following the RFC routed by.
  it.each([
    ['another of its names', (port: number) => `127.0.0.1:${port}`],
    ['no name of the DIP', () => 'evil.example'],
  ])('authenticates an absolute-form submission signed for its target, whose Host is %s (201)', async (_what, hostOf) => {
    const target = `${h.t.dip.url}/dip-channel/IF-021`;
    const body = JSON.stringify([validItem()]);
    const sig = await signerFor(h.sds).sign('POST', target, body);
    const lines = [`POST ${target} HTTP/1.1`, `Host: ${hostOf(h.t.dip.port)}`, 'Content-Type: application/json', `X-API-Key: ${h.sds.apiKey}`, ...Object.entries(sig).map(([k, v]) => `${k}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: `${lines.join('\r\n')}\r\n\r\n${body}` });
    expect(r.status, r.text.slice(0, 600)).toBe(201);
  });

  // A Host naming https's default port (`localhost:443`) was rebuilt as `https://localhost:443/…`, so a client
  // that signed the URL as URL parsers write it (`https://localhost/…`, no default port) was refused 401.
  it.each([
    ['without the default port, as URL parsers write it', 'https://localhost/dip-channel/if-021'],
    ['with the default port, as the Host says it', 'https://localhost:443/dip-channel/if-021'],
  ])('authenticates a submission whose Host names port 443, signed %s (201)', async (_how, signed) => {
    const body = JSON.stringify([validItem()]);
    const sig = await signerFor(h.sds).sign('POST', signed, body);
    const lines = ['POST /dip-channel/IF-021 HTTP/1.1', 'Host: localhost:443', 'Content-Type: application/json', `X-API-Key: ${h.sds.apiKey}`, ...Object.entries(sig).map(([k, v]) => `${k}: ${v}`), `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: `${lines.join('\r\n')}\r\n\r\n${body}` });
    expect(r.status, r.text.slice(0, 600)).toBe(201);
  });

  it('answers a signed request whose path tries CRLF injection without reflecting it into a header', async () => {
    const raw = await rawSignedRequest(h.t, h.sds, { method: 'GET', path: '/dip-channel/IF-021%0d%0aSet-Cookie:%20pwned=1/pull/2000000001' });
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: raw });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    const headerBlock = r.text.slice(0, r.text.indexOf('\r\n\r\n')).toLowerCase();
    expect(headerBlock).not.toContain('set-cookie');
    expect(headerBlock).not.toContain('pwned');
  });

  it('still accepts a valid message (201)', async () => {
    await expectStillServing(h);
  });
});

describe('slow clients are cut off', () => {
  it('slowloris: headers dribbled one line at a time get 408 after the headers deadline', async () => {
    const dribble = Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: a\r\n`);
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: 'POST /dip-channel/IF-021 HTTP/1.1\r\nHost: localhost\r\n', dribble, dribbleMs: 100, timeoutMs: 8_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.status).toBe(408);
    expect(r.ms).toBeLessThan(3_000); // deadline 1 s, checked every 100 ms
    expect(r.text).toContain('did not arrive in time');
  });

  it('a body dribbled byte by byte gets 408 after the request deadline', async () => {
    const raw = await rawSignedRequest(h.t, h.sds, { path: '/dip-channel/IF-021', body: '[' + ' '.repeat(200) + ']' });
    const cut = raw.length - 200;
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: raw.slice(0, cut), dribble: raw.slice(cut).split(''), dribbleMs: 50, timeoutMs: 8_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.status).toBe(408);
    expect(r.ms).toBeLessThan(4_000); // deadline 2 s
  });

  it('a connection that never starts the TLS handshake is dropped after the handshake deadline', async () => {
    expect(await closedWhenSilent(h.t.dip.port, 6_000)).toBeLessThan(3_000); // deadline 1 s
  });

  it('an idle connection after a complete handshake is dropped after the headers deadline', async () => {
    const r = await rawTls(h.t, { ...tlsOf(h.sds), write: 'P', timeoutMs: 6_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.ms).toBeLessThan(3_000);
  });

  it('still accepts a valid message (201)', async () => {
    await expectStillServing(h);
  });
});

describe.each([
  // The anonymous listener takes no POST: it answers 404 at once, and the connection is closed at the deadline all the same.
  ['portals', () => Number(new URL(h.t.dip.portalUrl).port), '/portal/sign-in', 408],
  ['anonymous', () => h.t.dip.publicPort!, '/publications', 404],
])("slow clients of the %s listener are cut off as on the participant listener", (_name, portal, page, bodyStatus) => {
  // These listeners take no client certificate: anyone on the network reaches them. Held longer than the
  // configured deadlines (or, for a body, for ever), a few thousand such connections would use up the
  // process's file descriptors, which every listener and the store share.

  it('slowloris: headers dribbled one line at a time get 408 after the headers deadline', async () => {
    const dribble = Array.from({ length: 60 }, (_, i) => `X-Slow-${i}: a\r\n`);
    const r = await rawTls(h.t, { port: portal(), write: `GET ${page} HTTP/1.1\r\nHost: localhost\r\n`, dribble, dribbleMs: 100, timeoutMs: 8_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.status).toBe(408);
    expect(r.ms).toBeLessThan(3_000); // deadline 1 s, checked every 100 ms
  });

  it('a form dribbled byte by byte gets 408 after the request deadline', async () => {
    const head = `POST ${page} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n`;
    const r = await rawTls(h.t, { port: portal(), write: head, dribble: 'username=a&password='.padEnd(200, 'x').split(''), dribbleMs: 50, timeoutMs: 8_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.status).toBe(bodyStatus);
    expect(r.ms).toBeLessThan(4_000); // deadline 2 s
  });

  it('a connection that never starts the TLS handshake is dropped after the handshake deadline', async () => {
    expect(await closedWhenSilent(portal(), 6_000)).toBeLessThan(3_000); // deadline 1 s
  });

  it('an idle connection after a complete handshake is dropped after the headers deadline', async () => {
    const r = await rawTls(h.t, { port: portal(), write: 'G', timeoutMs: 6_000 });
    expect(r.closedByServer).toBe(true);
    expect(r.ms).toBeLessThan(3_000);
  });

  it('still answers', async () => {
    const r = await rawTls(h.t, { port: portal(), write: `GET ${page} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, timeoutMs: 5_000 });
    expect(r.status).toBe(200);
  });
});
