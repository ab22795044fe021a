import { expect } from 'vitest';
import { DipClient } from '../../src/client/dip-client.js';
import type { KeyAndCert } from '../../src/security/pki.js';
import { buildIF021 } from '../../src/sim/messages.js';
import type { TestDip } from './dip-harness.js';

/** Submits one IF-021 as a participant with these credentials; 'handshake refused' when TLS drops the connection. */
export async function submitAs(t: TestDip, apiKey: string, creds: KeyAndCert, dipId: string, suffix: string): Promise<number | 'handshake refused'> {
  const client = new DipClient({ baseUrl: t.dip.url, apiKey, keyPem: creds.keyPem, certPem: creds.certPem, caPem: t.dip.pki.ca.certPem });
  try {
    const answer = await client.submit('IF-021', [buildIF021({ senderDipId: dipId, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: suffix })]);
    return answer.status;
  } catch (e) {
    const err = e as Error & { code?: string; cause?: { code?: string } };
    expect(`${err.message} ${err.code ?? ''} ${err.cause?.code ?? ''}`).toMatch(/socket|closed|ECONNRESET|EPIPE|alert|TLS|certificate/i);
    return 'handshake refused';
  } finally {
    await client.close();
  }
}
