/**
 * Expiry warnings (src/security/expiry.ts): the list, the running DIP's warnings at start, and
 * `dip pki expiring`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { openBackend } from '../src/adapters/backend.js';
import { pkiDir, startDip, type RunningDip } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import type { Logger } from '../src/ports/logger.js';
import { ensureEncryptionKey } from '../src/security/dip-encryption-key.js';
import { dipCertificates, expiringCertificates, participantCertificates, type ExpiringCertificate } from '../src/security/expiry.js';
import { ensurePki, issueParticipantCertificate, type KeyAndCert, type PkiMaterial } from '../src/security/pki.js';
import { certificateInfo } from '../src/security/signature.js';
import { cliRuns } from './helpers/cli-budget.js';

const DAY = 86_400_000;

describe('certificates expiring within 30 days', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-expiry-'));
  const config = loadConfig({}, { dataDir, port: 0, adminPort: 0, host: '127.0.0.1', warmCatalogue: false });
  let pki: PkiMaterial;
  let shortLived: KeyAndCert;
  let longLived: KeyAndCert;

  beforeAll(async () => {
    pki = await ensurePki(pkiDir(config), { environment: 'DEV', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    await ensureEncryptionKey(pkiDir(config), pki.ca);
    [shortLived, longLived] = await Promise.all([
      issueParticipantCertificate(pki.ca, { organisation: 'Short', dipIds: ['1000000001'], environment: 'DEV', validDays: 10 }),
      issueParticipantCertificate(pki.ca, { organisation: 'Long', dipIds: ['1000000002'], environment: 'DEV', validDays: 365 }),
    ]);
    // Registered as the operator does, before the DIP starts.
    const { backend } = await openBackend(config);
    await onboardParticipant(backend.registry, { dipId: '1000000001', roles: ['SUP'], certificatePem: shortLived.certPem });
    await onboardParticipant(backend.registry, { dipId: '1000000002', roles: ['SUP'], certificatePem: longLived.certPem });
    await backend.close();
  });

  it("lists a participant's 10-day certificate, not the 365-day one nor the DIP's own (825 days and more)", async () => {
    const { backend } = await openBackend(config);
    const participants = (await backend.registry.participants()).map((r) => r.participant);
    await backend.close();
    const owned = [...dipCertificates(pkiDir(config)), ...participantCertificates(participants)];
    expect(owned.map((o) => o.owner)).toEqual(['DIP CA', 'DIP server (TLS)', 'DIP signing', 'DIP encryption', 'participant 1000000001', 'participant 1000000002']);

    const found = expiringCertificates(owned);
    const info = certificateInfo(shortLived.certPem);
    expect(found).toEqual([{ owner: 'participant 1000000001', subject: info.subject, serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, notAfter: info.notAfter.toISOString(), daysLeft: 9 }]);
    // A shorter horizon leaves it out; a longer one takes in the 365-day certificate; later, it has expired.
    expect(expiringCertificates(owned, 5)).toEqual([]);
    expect(expiringCertificates(owned, 400).map((c) => c.owner)).toEqual(['participant 1000000001', 'participant 1000000002']);
    // Twelve days on it expired two days and some seconds ago: whole days left, rounded down.
    const later = expiringCertificates(owned, 30, new Date(Date.now() + 12 * DAY));
    expect(later[0]).toMatchObject({ owner: 'participant 1000000001', daysLeft: -3 });
    // The DIP's own certificates are listed too when they come close (server and signing: 825 days).
    expect(expiringCertificates(owned, 830).map((c) => c.owner)).toEqual(expect.arrayContaining(['DIP server (TLS)', 'DIP signing', 'DIP encryption']));
  });

  it('a running DIP logs each as a warning at start', async () => {
    const warnings: Array<{ obj: { certificate?: ExpiringCertificate }; msg: string }> = [];
    const logger: Logger = { info() {}, error() {}, warn: (obj, msg = '') => warnings.push({ obj, msg }) };
    let dip: RunningDip | undefined;
    try {
      dip = await startDip(config, logger);
      const expiring = warnings.filter((w) => w.obj.certificate);
      expect(expiring).toHaveLength(1);
      expect(expiring[0]!.msg).toBe('certificate of participant 1000000001 expires in 9 days');
      expect(expiring[0]!.obj.certificate?.serialNumber).toBe(certificateInfo(shortLived.certPem).serialNumber);
    } finally {
      await dip?.close();
    }
  });

  it('`dip pki expiring` prints them, as text or JSON', cliRuns(3), async () => {
    const run = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pki', 'expiring', ...args], { env: { ...process.env, DIP_DATA_DIR: dataDir } }, (err, stdout, stderr) =>
          resolve({ code: err ? 1 : 0, stdout, stderr }),
        );
      });
    const [json, text, none] = await Promise.all([run('--json'), run(), run('--days', '5')]);
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as ExpiringCertificate[]).map((c) => [c.owner, c.daysLeft])).toEqual([['participant 1000000001', 9]]);
    expect(text.stdout).toMatch(/^\d{4}-\d{2}-\d{2}T\S+Z {2}9 days +participant 1000000001 +serial [0-9A-F]+\n$/);
    expect(none.stdout).toBe('no certificate expires within 5 days\n');
  });
});
