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

  /**
   * A pull whose signature is good for the URL `host` names: only the Host check can refuse it. Sent with
   * node:https, which (unlike undici) checks the certificate against `servername`, not the Host header.
   */
  async function pullAs(host: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: { messageArray?: Array<{ message: string; help: string | null }> } }> {
    const path = `/dip-channel/IF-021/pull/${sup.dipId}?maxMessageCount=1`;
    const url = requestedUrl(`https://${host}${path}`) ?? '';
    const signature = await new Signer(sup.credentials.keyPem, sup.credentials.certPem).sign('GET', url, '');
    const { keyPem, certPem } = sup.credentials;
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        { host: '127.0.0.1', port: t.dip.port, path, method: 'GET', servername: 'localhost', key: keyPem, cert: certPem, ca: t.dip.pki.ca.certPem, setHost: false, agent: false, headers: { host, 'x-api-key': sup.apiKey, ...signature } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') as never }));
        },
      );
      req.on('error', reject).end();
    });
  }

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

  it("answers the certificate's names, the loopback names and allowedHosts, on any port", async () => {
    const port = t.dip.port;
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'LocalHost.', `dip.internal.example:${port}`, 'DIP.internal.example']) {
      const answer = await pullAs(host);
      expect([host, answer.status]).toEqual([host, 200]);
    }
  });
});

describe('listenerHostNames', () => {
  it("takes the certificate's DNS and IP names (a wildcard one label deep), publicUrl's host, the loopback names and the configured ones", async () => {
    const ca = await createCertificateAuthority({ commonName: 'test CA', environment: 'DEV', validDays: 1 });
    const server = await issueServerCertificate(ca, { hostnames: ['DIP.example', '*.nodes.example'], ipAddresses: ['10.0.0.5', '2001:db8:0:0:0:0:0:1'], validDays: 1 });
    const names = listenerHostNames({ certificatePem: server.certPem, publicUrl: 'https://proxy.example:8443/dip', allowed: ['Behind.Proxy.example'], setting: 'allowedHosts' });
    const known = ['dip.example', 'DIP.example.:8443', 'a.nodes.example', '10.0.0.5:9', '[2001:db8::1]', 'proxy.example', 'behind.proxy.example', 'localhost', '127.0.0.1', '[::1]:1'];
    const unknown = ['nodes.example', 'a.b.nodes.example', 'x.dip.example', 'victim.example', '10.0.0.6', '[2001:db8::2]', 'example', '*.nodes.example', 'dip.example/x', 'u@dip.example'];
    expect(known.filter((h) => !hostKnown(h, names))).toEqual([]);
    expect(unknown.filter((h) => hostKnown(h, names))).toEqual([]);
  });

  it('names a configured entry that is no host name', () => {
    expect(() => listenerHostNames({ certificatePem: null, publicUrl: null, allowed: ['https://dip.example'], setting: 'allowedHosts' })).toThrow("allowedHosts 'https://dip.example' is not a host name");
  });
});
