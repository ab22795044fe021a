import { createHash, sign } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { requestedBaseUrl, requestedUrl } from '../src/domain/callback-url.js';
import { createCertificateAuthority, issueSigningCertificate } from '../src/security/pki.js';
import { Signer } from '../src/security/signature.js';
import { dipWithSupplier, startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/**
 * The participant client signs the URL undici requests, not the one it was given: the DIP verifies the
 * signature against the URL it rebuilds from the Host header and request target it receives.
 */
describe('the participant client signs the URL it requests', () => {
  const dip = dipWithSupplier();

  const hook = JSON.stringify({ callbackURL: 'http://sup.example/hook' });

  it('an empty query and dot segments in the path', async () => {
    for (const path of ['/dip-channel/IF-021/pubconfig/1000000001?', '/dip-channel/x/../IF-021/./pubconfig/1000000001']) {
      const answer = await dip.sup.client.call('POST', path, hook);
      expect(answer.status, `${path}: ${JSON.stringify(answer.body)}`).toBe(201);
    }
  });

  it('a base URL written with an upper-case scheme and host and a trailing slash', async () => {
    const { apiKey, credentials } = dip.sup;
    const client = new DipClient({ baseUrl: `${dip.t.dip.url.replace('https://127.0.0.1', 'HTTPS://LOCALHOST')}/`, apiKey, keyPem: credentials.keyPem, certPem: credentials.certPem, caPem: dip.t.dip.pki.ca.certPem });
    try {
      const answer = await client.call('POST', '/dip-channel/IF-021/pubconfig/1000000001?', hook);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    } finally {
      await client.close();
    }
  });
});

/**
 * Behind a proxy the DIP rebuilds the URL it checks signatures against from its publicUrl and the request
 * target. A client signs the URL it requests (WHATWG-serialised, as the participant client above does):
 * a publicUrl written with a default port, upper case or a trailing slash must still match it.
 */
describe('a DIP behind a proxy checks signatures against its publicUrl as clients request it', () => {
  let t: TestDip;
  let sup: TestParticipant;
  let agent: Agent;

  beforeAll(async () => {
    t = await startTestDip({ publicUrl: 'HTTPS://DIP.Example:443/' });
    sup = await t.participant('1000000001', ['SUP']);
    agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem, cert: sup.credentials.certPem, key: sup.credentials.keyPem } });
  });
  afterAll(async () => {
    await agent?.close();
    await t?.close();
  });

  /**
   * A request signed from the published scheme alone (node:crypto, not src/security): `POST;url
   * lower-cased;date;hash` over the URL the proxy is called at, sent over mutual TLS to the DIP itself
   * as the proxy forwards it (the Host header is then the DIP's own: with a publicUrl it is not read).
   */
  async function referenceCall(signedUrl: string, target: string): Promise<number> {
    const body = JSON.stringify({ callbackURL: 'http://sup.example/hook' });
    const hash = createHash('sha256').update(body).digest('base64');
    const date = new Date().toISOString();
    const signature = sign('sha256', Buffer.from(`POST;${signedUrl.toLowerCase()};${date};${hash}`, 'utf8'), sup.credentials.keyPem).toString('base64');
    const res = await request(`${t.dip.url}${target}`, {
      method: 'POST',
      dispatcher: agent,
      body,
      headers: {
        'content-type': 'application/json',
        'x-api-key': sup.apiKey,
        'x-dip-content-hash': hash,
        'x-dip-signature-date': date,
        'x-dip-signature': signature,
        'x-dip-signature-certificate': Buffer.from(sup.credentials.certPem).toString('base64'),
      },
    });
    await res.body.dump();
    return res.statusCode;
  }

  it('holds the publicUrl as requested: no default port, lower case, no trailing slash', () => {
    expect(t.config.publicUrl).toBe('https://dip.example');
    expect(t.config.publicUrl).toBe(requestedBaseUrl('HTTPS://DIP.Example:443/'));
  });

  it('verifies a request signed over the URL a client requests at that address, path and query included', async () => {
    const target = '/dip-channel/IF-021/pubconfig/1000000001?probe=1';
    // What an HTTP client requests for the address as the operator wrote it.
    const signedUrl = requestedUrl(`HTTPS://DIP.Example:443${target}`);
    expect(signedUrl).toBe(`https://dip.example${target}`);
    expect(await referenceCall(signedUrl!, target)).toBe(201);
  });

  it('still refuses a signature over another URL (the check is not loosened)', async () => {
    expect(await referenceCall('https://dip.example/dip-channel/IF-021/pubconfig/1000000002', '/dip-channel/IF-021/pubconfig/1000000001')).toBe(401);
  });
});

/** A recipient's receiver (dip listen) behind its own proxy compares the same way. */
describe('the webhook receiver checks signatures against its publicUrl as the DIP requests it', () => {
  it('a publicUrl written with a default port, upper case and a trailing slash', async () => {
    const ca = await createCertificateAuthority({ commonName: 'test CA', environment: 'TEST', validDays: 2 });
    const signing = await issueSigningCertificate(ca, { commonName: 'the DIP', validDays: 2 });
    const signer = new Signer(signing.keyPem, signing.certPem);
    const calls: ReceivedCall[] = [];
    const receiver = await startWebhookReceiver({ publicUrl: 'HTTPS://Sup.Example:443/', trustedCas: [ca.certPem], respond: (c) => (calls.push(c), c.signature.ok ? 200 : 401) });
    try {
      expect(receiver.url).toBe('https://sup.example/');
      const body = JSON.stringify([{ payload: {} }]);
      // The DIP signs the callback URL as it requests it (requestedUrl()), the request target appended.
      const headers = await signer.sign('POST', requestedUrl('https://Sup.Example:443/hook?x=1')!, body);
      const res = await request(`http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hook?x=1`, { method: 'POST', body, headers: { ...headers, 'content-type': 'application/json' } });
      await res.body.dump();
      expect(res.statusCode, JSON.stringify(calls[0]?.signature)).toBe(200);
    } finally {
      await receiver.close();
    }
  });
});
