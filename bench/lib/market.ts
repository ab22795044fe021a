import { onboardParticipant } from '../../src/pipeline/participants.js';
import { openBackend } from '../../src/adapters/backend.js';
import { loadConfig } from '../../src/config.js';
import { DipClient } from '../../src/client/dip-client.js';
import { issueParticipantCertificate, type KeyAndCert } from '../../src/security/pki.js';
import type { DipProcess } from './dip-process.js';

export interface Credentials {
  dipId: string;
  role: string;
  apiKey: string;
  keyPem: string;
  certPem: string;
}

/**
 * The test market: SENDER_COUNT data services sending IF-021 (DIP IDs 2000000001…, 10 hex digits as the
 * sender unique reference requires), and the four parties that receive it.
 */
export const SENDER_COUNT = 16;
export const SENDERS = Array.from({ length: SENDER_COUNT }, (_, i) => ({ dipId: `20000000${(i + 1).toString(16).padStart(2, '0')}`, role: 'SDS' }));
export const SENDER = SENDERS[0]!;
/** Order matters: the receivers child numbers its endpoints the same way. SUP and LDSO are primary recipients; MDS and LSS get every IF-021 by "always" routing. */
export const RECIPIENTS = [
  { dipId: '1000000001', role: 'SUP' },
  { dipId: '3000000001', role: 'LDSO' },
  { dipId: '4000000001', role: 'MDS' },
  { dipId: '5000000001', role: 'LSS' },
] as const;
export const PRIMARY = [RECIPIENTS[0].dipId, RECIPIENTS[1].dipId];

export interface Market {
  senders: Credentials[];
  recipients: Credentials[];
}

export interface Identity {
  dipId: string;
  role: string;
  keyPem: string;
  certPem: string;
}

/** Keys and certificates for the whole market, from the run's CA (RSA key generation is the slow part: done once). */
export async function issueMarketIdentities(ca: KeyAndCert): Promise<Identity[]> {
  const parties = [...SENDERS, ...RECIPIENTS];
  const certs = await Promise.all(
    parties.map((p) => issueParticipantCertificate(ca, { organisation: `Bench ${p.role}`, dipIds: [p.dipId], environment: 'DEV', validDays: 2 })),
  );
  return parties.map((p, i) => ({ dipId: p.dipId, role: p.role, keyPem: certs[i]!.keyPem, certPem: certs[i]!.certPem }));
}

/**
 * Onboards the market the way an operator does (`dip participant add`): participants written to the
 * DIP's SQLite file while the DIP runs (it notices on the first call with an unknown API key, or within
 * its 500 ms registry poll). Each DIP gets fresh API keys.
 */
export async function onboardMarket(dip: DipProcess, identities: Identity[]): Promise<Market> {
  const { backend } = await openBackend(loadConfig({}, { dataDir: dip.dataDir }));
  const out: Credentials[] = [];
  try {
    for (const p of identities) {
      const { apiKey } = await onboardParticipant(backend.registry, { dipId: p.dipId, roles: [p.role], certificatePem: p.certPem });
      out.push({ ...p, apiKey });
    }
  } finally {
    await backend.close();
  }
  return { senders: out.filter((c) => c.role === 'SDS'), recipients: out.filter((c) => c.role !== 'SDS') };
}

export function clientFor(dip: DipProcess, c: Credentials, connections = 1): DipClient {
  return new DipClient({ baseUrl: dip.url, apiKey: c.apiKey, keyPem: c.keyPem, certPem: c.certPem, caPem: dip.ca.certPem, connections });
}

/** Registers each recipient's IF-021 webhook through the API (pubconfig), as a participant would. */
export async function registerWebhooks(dip: DipProcess, market: Market, urls: string[], maxMessageCount = 500): Promise<void> {
  for (const [i, r] of market.recipients.entries()) {
    const client = clientFor(dip, r);
    try {
      const answer = await client.setWebhook('IF-021', r.dipId, { callbackURL: urls[i]!, maxMessageCount });
      if (answer.status !== 201) throw new Error(`setWebhook for ${r.role} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    } finally {
      await client.close();
    }
  }
}

export async function deleteWebhook(dip: DipProcess, r: Credentials): Promise<void> {
  const client = clientFor(dip, r);
  try {
    const answer = await client.deleteWebhook('IF-021', r.dipId);
    if (answer.status !== 204) throw new Error(`deleteWebhook for ${r.role} answered ${answer.status}`);
  } finally {
    await client.close();
  }
}
