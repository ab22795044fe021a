/**
 * The response headers of the two API listeners anyone's software (and a browser) may reach, over real
 * (mutual) TLS: OWASP's REST security guidance for every answer (nosniff, no framing, HSTS on a TLS
 * listener) and, on the participant listener, whose answers are a participant's own data (messages
 * pulled, reports, publications), no copy kept by a cache between it and the DIP, the refusals the
 * listener writes on the socket itself included. The portals' and the
 * operator API's are in test/portal-forms.test.ts and test/operators.test.ts.
 */
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { API_VERSION_HEADER, DIP_API_VERSION } from '../src/domain/api-version.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { agentFor, rawAnswerOf, rawTls, send, tlsOf } from './hostile/helpers.js';

describe('security headers of the participant and anonymous listeners', () => {
  let t: TestDip;
  let sup: TestParticipant;
  let anonymous: Agent;
  beforeAll(async () => {
    t = await startTestDip({ publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } });
    sup = await t.participant('1000000001', ['SUP']);
    anonymous = new Agent({ connect: { ca: t.dip.pki.ca.certPem, servername: 'localhost' } });
  });
  afterAll(async () => {
    await anonymous?.close();
    await t?.close();
  });

  const common = (what: string, headers: Record<string, string | string[] | undefined>) => {
    expect([what, headers['x-content-type-options']]).toEqual([what, 'nosniff']);
    expect([what, headers['strict-transport-security']]).toEqual([what, 'max-age=31536000']);
    expect([what, String(headers['content-security-policy'] ?? '')]).toEqual([what, expect.stringContaining("frame-ancestors 'none'")]);
    expect([what, headers['x-frame-options']]).toEqual([what, 'DENY']);
  };

  it('answers a participant, accepted or refused, with nosniff, no framing, HSTS and Cache-Control: no-store', async () => {
    const accepted = await send(t, sup, { method: 'GET', path: '/dip-channel/IF-021/pull/1000000001' });
    const refused = await send(t, sup, { method: 'GET', path: '/dip-channel/IF-021/pull/1000000001', apiKey: 'not-a-key' });
    const unknown = await agentFor(t, sup).request({ origin: t.dip.url, path: '/no/such/path', method: 'GET' });
    await unknown.body.text();
    for (const [what, a] of [['accepted', accepted], ['refused', refused], ['unknown path', { status: unknown.statusCode, headers: unknown.headers }]] as const) {
      expect([what, a.status < 500]).toEqual([what, true]);
      common(what, a.headers);
      expect([what, a.headers['cache-control']]).toEqual([what, 'no-store']);
    }
    expect([accepted.status, refused.status, unknown.statusCode]).toEqual([200, 401, 404]);
  });

  it('puts the same headers on the refusals written on the socket itself (parser errors, an unmet Expect)', async () => {
    const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;
    const base = ['POST /dip-channel/IF-021 HTTP/1.1', 'Host: localhost', 'Content-Type: application/json'];
    const cases: Array<[number, string]> = [
      [400, head([...base, 'X-API-Key: abc\rX-Injected: yes', 'Content-Length: 0'])],
      [431, head([...base, `X-Filler: ${'a'.repeat(20_000)}`, 'Content-Length: 0'])],
      [505, head(['GET /health HTTP/2.0', 'Host: localhost', 'Connection: close'])],
      [417, `${head([...base, 'Expect: 200-ok', 'Content-Length: 2'])}[]`],
    ];
    for (const [status, bytes] of cases) {
      const a = rawAnswerOf(await rawTls(t, { ...tlsOf(sup), write: bytes }));
      const what = `raw ${status}`;
      expect([what, a.status]).toEqual([what, status]);
      const headers = Object.fromEntries(['x-content-type-options', 'strict-transport-security', 'content-security-policy', 'x-frame-options', 'cache-control'].map((n) => [n, a.header(n)]));
      common(what, headers);
      expect([what, headers['content-security-policy']]).toEqual([what, "default-src 'none'; frame-ancestors 'none'"]);
      expect([what, headers['cache-control']]).toEqual([what, 'no-store']);
    }
  });

  it('answers anyone on the anonymous listener with nosniff, no framing and HSTS, the data portal keeping its own policy', async () => {
    for (const path of ['/catalogue', '/publications', '/no/such/path']) {
      const res = await request(`https://localhost:${t.dip.publicPort}${path}`, { dispatcher: anonymous });
      await res.body.text();
      common(path, res.headers);
    }
  });

  it('names the DIP API version on every anonymous answer, refusals included (README "API versions")', async () => {
    for (const path of ['/publications', '/no/such/path']) {
      const res = await request(`https://localhost:${t.dip.publicPort}${path}`, { dispatcher: anonymous });
      await res.body.text();
      expect([path, res.headers[API_VERSION_HEADER]]).toEqual([path, DIP_API_VERSION]);
    }
  });
});
