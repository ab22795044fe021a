import { describe, expect, it } from 'vitest';
import { DipClient } from '../src/client/dip-client.js';
import { dipWithSupplier } from './helpers/dip-harness.js';

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
