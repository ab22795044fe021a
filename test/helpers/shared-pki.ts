import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onboardParticipant } from '../../src/pipeline/participants.js';
import { pkiDir } from '../../src/app.js';
import { DipClient } from '../../src/client/dip-client.js';
import { loadConfig, type DipConfig } from '../../src/config.js';
import { ensurePki, issueParticipantCertificate, type KeyAndCert, type PkiMaterial } from '../../src/security/pki.js';
import { startTestDip, type TestDip, type TestParticipant } from './dip-harness.js';

/**
 * RSA key generation dominates a test DIP's start (CA, server and signing keys) and each participant's
 * onboarding. Suites that start several DIPs can share one PKI: it is made once per test file and copied
 * into every new data directory, and each participant's certificate is issued once and reused by every
 * DIP (all trust the same CA). Everything else (SQLite, queues, admin token) is per DIP, as before.
 */
const templateDir = mkdtempSync(join(tmpdir(), 'opendip-pki-'));
let template: Promise<PkiMaterial> | undefined;
const credentials = new Map<string, Promise<KeyAndCert>>();

function templatePki(): Promise<PkiMaterial> {
  const config = loadConfig({}, { dataDir: templateDir });
  template ??= ensurePki(pkiDir(config), { environment: config.environment, hostnames: config.hostnames, ipAddresses: config.ipAddresses });
  return template;
}

/** The participant's key and certificate under the shared CA: issued on first use, then reused. */
export async function credentialsFor(dipId: string): Promise<KeyAndCert> {
  const ca = (await templatePki()).ca;
  let found = credentials.get(dipId);
  if (!found) {
    found = issueParticipantCertificate(ca, { organisation: `Org ${dipId}`, dipIds: [dipId], environment: loadConfig({}).environment, validDays: 30 });
    credentials.set(dipId, found);
  }
  return found;
}

export interface SharedPkiDip extends TestDip {
  /** Onboards a participant with its shared credentials and a fresh API key; the client is closed with the DIP. */
  join(dipId: string, roles: string[]): Promise<TestParticipant>;
  /** A client for an already onboarded participant (after a restart on the same data directory). */
  clientFor(p: TestParticipant): DipClient;
}

/** startTestDip over the shared PKI. Pass `dataDir` to restart on an existing data directory. */
export async function startSharedPkiDip(overrides: Partial<DipConfig> = {}, dataDir?: string): Promise<SharedPkiDip> {
  let dir = dataDir;
  if (dir === undefined) {
    await templatePki();
    dir = mkdtempSync(join(tmpdir(), 'opendip-'));
    cpSync(pkiDir(loadConfig({}, { dataDir: templateDir })), join(dir, 'pki'), { recursive: true });
  }
  const t = await startTestDip(overrides, dir);
  const clients: DipClient[] = [];
  const clientFor = (p: Pick<TestParticipant, 'apiKey' | 'credentials'>): DipClient => {
    const client = new DipClient({ baseUrl: t.dip.url, apiKey: p.apiKey, keyPem: p.credentials.keyPem, certPem: p.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    clients.push(client);
    return client;
  };
  return {
    ...t,
    async join(dipId, roles) {
      const creds = await credentialsFor(dipId);
      const { apiKey } = await onboardParticipant(t.dip.backend.registry, { dipId, roles, certificatePem: creds.certPem });
      return { dipId, roles, apiKey, credentials: creds, client: clientFor({ apiKey, credentials: creds }) };
    },
    clientFor,
    async close() {
      for (const c of clients.splice(0)) await c.close();
      await t.close();
    },
  };
}
