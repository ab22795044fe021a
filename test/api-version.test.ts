/**
 * API version control on the participant API (spec 5.13.4, src/domain/api-version.ts): every answer names the
 * version served (X-DIP-API-Version: 2.1.0), refusals too; a request naming a 2.x version, or none, is served as
 * before; one naming another major version, or no version at all, is refused 400 (MSG1001) saying what is served.
 * The served OpenAPI document states the same version.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_VERSION_HEADER, DIP_API_VERSION, versionRefusal } from '../src/domain/api-version.js';
import { MSG } from '../src/domain/response-codes.js';
import type { Client } from 'undici';
import { loadConfig } from '../src/config.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { forgeCertificate, keptAliveConnection, rawAnswerOf, rawTls, tlsOf } from './hostile/helpers.js';

describe('versionRefusal', () => {
  it('serves no header and any 2.x; refuses another major version and what is no version, saying what is served', () => {
    for (const v of [undefined, '2', '2.0', '2.1', '2.1.0', ' 2.1.0 ', '2.9.9']) expect([v, versionRefusal(v)]).toEqual([v, null]);
    expect(versionRefusal('3')).toBe("x-dip-api-version '3' is not served: this DIP serves DIP API 2.1.0 (any 2.x request is answered as 2.1.0); its document is at /api/docs/json");
    expect(versionRefusal('1.0.0')).toContain("'1.0.0' is not served");
    expect(versionRefusal('v2')).toBe("x-dip-api-version 'v2' is not a version (MAJOR, MAJOR.MINOR or MAJOR.MINOR.PATCH): this DIP serves DIP API 2.1.0");
    expect(versionRefusal(['2', '3'])).toContain("'3' is not served");
  });

  // Node joins a header sent twice with ', ' (a proxy adding it again, a client library and the caller both):
  // '2.1.0, 2.1.0' was refused 400 as no version. A list is served when every version in it is.
  it('serves a header sent twice, or a comma-joined list, when every version in it is served', () => {
    for (const v of ['2.1.0, 2.1.0', '2,2.1', ['2.1.0', '2.1.0']]) expect([v, versionRefusal(v)]).toEqual([v, null]);
    expect(versionRefusal('2.1.0, 3.0.0')).toContain("'3.0.0' is not served");
    expect(versionRefusal('2.1.0, 3')).toContain("'3' is not served");
  });

  // Some client libraries send a header for an unset variable with an empty value: that was refused 400
  // ("'' is not a version"). An empty value, or an empty one beside a version, is a version not given.
  it('takes an empty value (or an empty member of a list) as no version given', () => {
    for (const v of ['', '  ', ['', ''], ', ', '2.1.0, ', ['', '2.1']]) expect([v, versionRefusal(v)]).toEqual([v, null]);
    expect(versionRefusal(', 3')).toContain("'3' is not served");
  });
});

describe('the participant listener and API versions', () => {
  let t: TestDip;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip();
    sup = await t.participant('1000000005', ['SUP']);
  });
  afterAll(async () => t?.close());

  const pull = (headers: Record<string, string> = {}) => sup.client.call<{ messageArray?: Array<{ message: string; help: string | null }> }>('GET', `/dip-channel/IF-021/pull/${sup.dipId}?maxMessageCount=1`, '', headers);

  it('names the version served on every answer; serves a request naming 2.x as one naming none', async () => {
    const plain = await pull();
    expect(plain.status).toBeLessThan(300);
    expect(plain.headers[API_VERSION_HEADER]).toBe(DIP_API_VERSION);
    for (const v of ['2', '2.1.0']) {
      const named = await pull({ [API_VERSION_HEADER]: v });
      expect([v, named.status]).toEqual([v, plain.status]);
    }
  });

  it('refuses a request naming another major version 400 (MSG1001), saying which is served, the header on the refusal too', async () => {
    const refused = await pull({ [API_VERSION_HEADER]: '3.0' });
    expect(refused.status).toBe(400);
    expect(refused.headers[API_VERSION_HEADER]).toBe(DIP_API_VERSION);
    expect(refused.body.messageArray?.[0]?.message).toBe(MSG.schemaFailure);
    expect(refused.body.messageArray?.[0]?.help).toContain('this DIP serves DIP API 2.1.0');
  });

  it('states the version in the served OpenAPI document; a path not served is refused with the header too', async () => {
    const docs = await sup.client.call<{ info: { version: string; description: string } }>('GET', '/api/docs/json', '');
    expect(docs.body.info.version).toBe(DIP_API_VERSION);
    expect(docs.body.info.description).toContain(`X-DIP-API-Version: ${DIP_API_VERSION}`);
    const missing = await sup.client.call('GET', '/no-such-path', '');
    expect(missing.status).toBe(404);
    expect(missing.headers[API_VERSION_HEADER]).toBe(DIP_API_VERSION);
  });
});

// The answers written before the hook that set the header (the connection cap's, a refused certificate's) or
// without Fastify at all (on the socket, on the raw response) went without it.
describe('refusals before the routes, and on the socket, name the version too', () => {
  let t: TestDip;
  let sup: TestParticipant;
  const opened: Client[] = [];
  beforeAll(async () => {
    t = await startTestDip({ http: { ...loadConfig({}).http, maxConnectionsPerClient: 1 } });
    sup = await t.participant('1000000005', ['SUP']);
  });
  afterAll(async () => {
    for (const c of opened) await c.destroy();
    await t?.close();
  });

  const ofRaw = async (o: Parameters<typeof rawTls>[1]) => rawAnswerOf(await rawTls(t, { ...tlsOf(sup), ...o }));

  it('over the connection cap (429)', async () => {
    const { cert, key } = tlsOf(sup);
    await keptAliveConnection(t.dip.url, { ca: t.dip.pki.ca.certPem, cert, key, servername: 'localhost' }, '/health', opened);
    const over = await ofRaw({ write: 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n' });
    expect(over.status).toBe(429);
    expect(over.header(API_VERSION_HEADER)).toBe(DIP_API_VERSION);
    for (const c of opened.splice(0)) await c.destroy();
  });

  it('a refused (expired) client certificate (401)', async () => {
    const expired = await forgeCertificate({ dipId: sup.dipId, ca: t.dip.pki.ca, notBefore: new Date(Date.now() - 2 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    const refused = rawAnswerOf(await rawTls(t, { cert: expired.certPem, key: expired.keyPem, write: 'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n' }));
    expect(refused.status).toBe(401);
    expect(refused.header(API_VERSION_HEADER)).toBe(DIP_API_VERSION);
  });

  it('a method Node does not know (501), an Expect not understood (417): answered without Fastify', async () => {
    const garbage = await ofRaw({ write: 'NOT HTTP AT ALL\r\n\r\n' });
    expect(garbage.status).toBe(501);
    expect(garbage.header(API_VERSION_HEADER)).toBe(DIP_API_VERSION);
    const expect417 = await ofRaw({ write: 'GET /health HTTP/1.1\r\nHost: localhost\r\nExpect: teapot\r\n\r\n' });
    expect(expect417.status).toBe(417);
    expect(expect417.header(API_VERSION_HEADER)).toBe(DIP_API_VERSION);
  });
});
