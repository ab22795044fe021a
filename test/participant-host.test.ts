/**
 * The participant listener answers only requests naming it (src/security/host-names.ts, src/api/server.ts):
 * with publicUrl unset the URL a signature is checked against, and the URLs in answers, are built from the
 * Host header, so a Host the DIP is not known by (`victim.example`) is refused 421 before authentication
 * reads the request. Its names: the DNS and IP subjectAltNames of its own server certificate (the names a
 * client that verifies TLS can call it by), the loopback names, publicUrl's host and `allowedHosts`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requestedUrl } from '../src/domain/callback-url.js';
import { MSG } from '../src/domain/response-codes.js';
import { listenerHostNames, hostKnown } from '../src/security/host-names.js';
import { createCertificateAuthority, issueServerCertificate } from '../src/security/pki.js';
import { Signer } from '../src/security/signature.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

type Answer = { status: number; headers: IncomingHttpHeaders; body: { messageArray?: Array<{ message: string; help: string | null }> } };

/**
 * A pull whose signature is good for the URL `host` names: only the Host check can refuse it. Sent with
 * node:https to 127.0.0.1, which (unlike undici) checks the certificate against `servername`, not the Host header.
 */
async function pullWithHost(t: TestDip, p: TestParticipant, host: string, servername: string): Promise<Answer> {
  const path = `/dip-channel/IF-021/pull/${p.dipId}?maxMessageCount=1`;
  const url = requestedUrl(`https://${host}${path}`) ?? '';
  const signature = await new Signer(p.credentials.keyPem, p.credentials.certPem).sign('GET', url, '');
  const { keyPem, certPem } = p.credentials;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port: t.dip.port, path, method: 'GET', servername, key: keyPem, cert: certPem, ca: t.dip.pki.ca.certPem, setHost: false, agent: false, headers: { host, 'x-api-key': p.apiKey, ...signature } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as never }));
      },
    );
    req.on('error', reject).end();
  });
}

describe('the participant listener refuses a Host that is not one of its names', () => {
  let t: TestDip;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip({ allowedHosts: ['DIP.Internal.Example'] });
    sup = await t.participant('1000000003', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  const pullAs = (host: string) => pullWithHost(t, sup, host, 'localhost');

  it('refuses Host victim.example 421 in the StandardResponse shape, though the signature is good for that URL', async () => {
    for (const host of ['victim.example', `victim.example:${t.dip.port}`, 'localhost.victim.example', '127.0.0.2']) {
      const answer = await pullAs(host);
      expect([host, answer.status]).toEqual([host, 421]);
      const refusal = answer.body.messageArray?.[0];
      expect(refusal?.message).toBe(MSG.processingFailed);
      expect(refusal?.help).toContain(`the Host '${host}' is not a name of this DIP`);
      // As on every other refusal of the listener.
      expect(answer.headers['x-content-type-options']).toBe('nosniff');
      expect(answer.headers['cache-control']).toContain('no-store');
      // The configured names are not listed (they may name internal hosts).
      expect(JSON.stringify(answer.body)).not.toContain('internal');
    }
  });

  it("answers the certificate's names, the loopback names (it is bound to 127.0.0.1) and allowedHosts, on any port", async () => {
    const port = t.dip.port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LocalHost.', `dip.internal.example:${port}`, 'DIP.internal.example']) {
      const answer = await pullAs(host);
      expect([host, answer.status]).toEqual([host, 200]);
    }
  });
});

/**
 * A request signed for `https://localhost/…` (or 127.0.0.1, [::1]) was good at every DIP within the skew
 * window: every participant listener took the loopback names as its own, wherever it listened. They are
 * its names only when it is bound to a loopback address, or allowedHosts lists them, or it has no other
 * name (a development DIP: `npm start` on the default configuration, whose certificate covers only them).
 */
describe('loopback names on a listener bound to every address', () => {
  const loopback = (port: number) => [`localhost:${port}`, 'localhost', `127.0.0.1:${port}`, '[::1]'];

  it('are refused 421 when its certificate names it otherwise, and its own name is answered', async () => {
    const t = await startTestDip({ host: '0.0.0.0', hostnames: ['dip.example'], ipAddresses: [] });
    try {
      const sup = await t.participant('1000000003', ['SUP']);
      for (const host of loopback(t.dip.port)) {
        const answer = await pullWithHost(t, sup, host, 'dip.example');
        expect([host, answer.status]).toEqual([host, 421]);
        expect(answer.body.messageArray?.[0]?.help).toContain(`the Host '${host}' is not a name of this DIP`);
        expect(answer.body.messageArray?.[0]?.help).toContain('a loopback name is one only on a listener bound to a loopback address, or listed in allowedHosts');
      }
      expect((await pullWithHost(t, sup, `dip.example:${t.dip.port}`, 'dip.example')).status).toBe(200);
    } finally {
      await t.close();
    }
  }, 120_000);

  it('are answered on the default configuration (npm start: the certificate covers only them)', async () => {
    const t = await startTestDip({ host: '0.0.0.0' });
    try {
      const sup = await t.participant('1000000003', ['SUP']);
      for (const host of loopback(t.dip.port)) expect([host, (await pullWithHost(t, sup, host, 'localhost')).status]).toEqual([host, 200]);
      // The DIP's own client, as the README's first steps use it.
      expect((await sup.client.pull('IF-021', sup.dipId)).status).toBe(200);
    } finally {
      await t.close();
    }
  }, 120_000);
});

describe('listenerHostNames', () => {
  it("takes the certificate's DNS and IP names (a wildcard one label deep), publicUrl's host, the loopback names (bound to loopback) and the configured ones", async () => {
    const ca = await createCertificateAuthority({ commonName: 'test CA', environment: 'DEV', validDays: 1 });
    const server = await issueServerCertificate(ca, { hostnames: ['DIP.example', '*.nodes.example'], ipAddresses: ['10.0.0.5', '2001:db8:0:0:0:0:0:1'], validDays: 1 });
    const names = listenerHostNames({ bound: '127.0.0.1', certificatePem: server.certPem, publicUrl: 'https://proxy.example:8443/dip', allowed: ['Behind.Proxy.example'], setting: 'allowedHosts' });
    const known = ['dip.example', 'DIP.example.:8443', 'a.nodes.example', '10.0.0.5:9', '[2001:db8::1]', 'proxy.example', 'behind.proxy.example', 'localhost', '127.0.0.1', '[::1]:1'];
    const unknown = ['nodes.example', 'a.b.nodes.example', 'x.dip.example', 'victim.example', '10.0.0.6', '[2001:db8::2]', 'example', '*.nodes.example', 'dip.example/x', 'u@dip.example'];
    expect(known.filter((h) => !hostKnown(h, names))).toEqual([]);
    expect(unknown.filter((h) => hostKnown(h, names))).toEqual([]);
  });

  it('takes the loopback names on a listener bound elsewhere only when listed, or when it has no other name', async () => {
    const ca = await createCertificateAuthority({ commonName: 'test CA', environment: 'DEV', validDays: 1 });
    // As the Kubernetes example issues it: its name, and the default ipAddresses (127.0.0.1, ::1).
    const named = await issueServerCertificate(ca, { hostnames: ['dip.example'], ipAddresses: ['127.0.0.1', '::1'], validDays: 1 });
    const loopback = ['localhost', '127.0.0.1', '[::1]', '127.0.0.2', 'localhost.'];
    const known = (names: ReadonlySet<string>) => loopback.filter((h) => hostKnown(h, names));
    for (const bound of ['0.0.0.0', '::', '192.0.2.7']) {
      expect([bound, known(listenerHostNames({ bound, certificatePem: named.certPem, publicUrl: null, allowed: [], setting: 'allowedHosts' }))]).toEqual([bound, []]);
      expect(hostKnown('dip.example', listenerHostNames({ bound, certificatePem: named.certPem, publicUrl: null, allowed: [], setting: 'allowedHosts' }))).toBe(true);
      // Listed, each name alone.
      expect(known(listenerHostNames({ bound, certificatePem: named.certPem, publicUrl: null, allowed: ['LocalHost'], setting: 'allowedHosts' }))).toEqual(['localhost', 'localhost.']);
      // publicUrl's host is a name of its own: with it the loopback names are not all the listener has.
      expect(known(listenerHostNames({ bound, certificatePem: null, publicUrl: 'https://dip.example', allowed: [], setting: 'allowedHosts' }))).toEqual([]);
    }
    // Bound to loopback: every loopback name, and its own address.
    expect(known(listenerHostNames({ bound: '127.0.0.2', certificatePem: named.certPem, publicUrl: null, allowed: [], setting: 'allowedHosts' }))).toEqual(loopback);
    // The development certificate (config hostnames/ipAddresses by default: localhost, 127.0.0.1, ::1), on every address.
    const dev = await issueServerCertificate(ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], validDays: 1 });
    expect(known(listenerHostNames({ bound: '0.0.0.0', certificatePem: dev.certPem, publicUrl: null, allowed: [], setting: 'allowedHosts' }))).toEqual(['localhost', '127.0.0.1', '[::1]', 'localhost.']);
  });

  it('names a configured entry that is no host name', () => {
    expect(() => listenerHostNames({ bound: '0.0.0.0', certificatePem: null, publicUrl: null, allowed: ['https://dip.example'], setting: 'allowedHosts' })).toThrow("allowedHosts 'https://dip.example' is not a host name");
  });
});
