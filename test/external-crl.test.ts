/**
 * CRLs of external CAs (`crlFiles`, next to `trustedCaFiles`): installed in the participant listener, so a
 * revoked certificate is refused at a real TLS handshake; re-read without a restart when the file changes;
 * a CRL past its nextUpdate refuses that CA's certificates (fail-closed, SECURITY.md).
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { loadConfig } from '../src/config.js';
import { readCrlFiles, revocationKey, staleCrls } from '../src/security/external-crl.js';
import { crlAlarms } from '../src/pipeline/alarm-sources.js';
import { alarmSeverity } from '../src/pipeline/alarm-actions.js';
import { OPERATOR_RULES } from '../src/ports/alarms.js';
import { createCertificateAuthority, issueCrl, issueParticipantCertificate, type KeyAndCert } from '../src/security/pki.js';
import { certificateInfo } from '../src/security/signature.js';
import { DipClient } from '../src/client/dip-client.js';
import { buildIF021 } from '../src/sim/messages.js';
import { submitAs } from './helpers/submit-as.js';
import { startTestDip, waitFor, type TestDip } from './helpers/dip-harness.js';


describe('crlFiles: the CRLs of the CAs in trustedCaFiles', () => {
  let t: TestDip;
  let external: KeyAndCert;
  let dir: string;
  let crlFile: string;
  let trusted: string;
  /** Replaces the CRL file as a fetch job does: written aside, renamed over. */
  const publish = (pem: string) => {
    writeFileSync(`${crlFile}.tmp`, pem);
    renameSync(`${crlFile}.tmp`, crlFile);
  };
  beforeAll(async () => {
    external = await createCertificateAuthority({ commonName: 'External Issuing CA', environment: 'PRD', validDays: 30 });
    dir = mkdtempSync(join(tmpdir(), 'opendip-crl-'));
    trusted = join(dir, 'trusted.pem');
    crlFile = join(dir, 'external.crl');
    writeFileSync(trusted, external.certPem);
    // DER, as SWIKI-style distribution points serve it.
    const pem = await issueCrl(external, [], { crlNumber: 1 });
    writeFileSync(crlFile, Buffer.from(pem.replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64'));
    t = await startTestDip({ trustedCaFiles: [trusted], crlFiles: [crlFile], revocationPollMs: 20 });
    await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses a revoked certificate (401 naming it) once the CA publishes it, without a restart; a CRL past its nextUpdate refuses all (fail-closed)', async () => {
    const issue = (dipId: string) => issueParticipantCertificate(external, { organisation: `Org ${dipId}`, dipIds: [dipId], environment: 'PRD', validDays: 30 });
    const [good, bad] = await Promise.all([issue('2000000001'), issue('2000000002')]);
    const a = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000001', roles: ['SDS'], certificatePem: good.certPem, trustedCaPems: [external.certPem] });
    const b = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000002', roles: ['SDS'], certificatePem: bad.certPem, trustedCaPems: [external.certPem] });
    expect(await submitAs(t, a.apiKey, good, '2000000001', 'g1')).toBe(201);
    expect(await submitAs(t, b.apiKey, bad, '2000000002', 'b1')).toBe(201);

    publish(await issueCrl(external, [{ serialNumber: certificateInfo(bad.certPem).serialNumber, revokedAt: new Date(), reason: 'keyCompromise' }], { crlNumber: 2 }));
    let n = 0;
    // Told why: the certificate chains to a trusted CA (src/api/certificate-answer.ts).
    await waitFor(async () => (await submitAs(t, b.apiKey, bad, '2000000002', `b${++n + 1}`)) === 401, 10_000, 'the revoked certificate refused');
    expect(await submitAs(t, a.apiKey, good, '2000000001', 'g2')).toBe(201);

    // The fetch job broke: the CRL in the file is past its nextUpdate. OpenSSL refuses every certificate of that CA.
    publish(await issueCrl(external, [], { crlNumber: 3, nextUpdate: new Date(Date.now() - 60_000) }));
    await waitFor(async () => (await submitAs(t, a.apiKey, good, '2000000001', `g${++n + 2}`)) === 'handshake refused', 10_000, 'every certificate refused under a stale CRL');
    // A current CRL fetched again lets them in again.
    publish(await issueCrl(external, [], { crlNumber: 4 }));
    await waitFor(async () => (await submitAs(t, a.apiKey, good, '2000000001', `g${++n + 3}`)) === 201, 10_000, 'certificates accepted again under a current CRL');
  });

  it('refuses, per request, a certificate the CA revokes while its kept-alive connection is open: as a certificate `dip pki revoke` lists', async () => {
    const creds = await issueParticipantCertificate(external, { organisation: 'Org 2000000003', dipIds: ['2000000003'], environment: 'PRD', validDays: 30 });
    const { apiKey } = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000003', roles: ['SDS'], certificatePem: creds.certPem, trustedCaPems: [external.certPem] });
    // One client, one kept-alive connection: its handshake was before the revocation.
    const client = new DipClient({ baseUrl: t.dip.url, apiKey, keyPem: creds.keyPem, certPem: creds.certPem, caPem: t.dip.pki.ca.certPem });
    const submit = (suffix: string) => client.submit('IF-021', [buildIF021({ senderDipId: '2000000003', senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: suffix })]);
    try {
      expect((await submit('k1')).status).toBe(201);
      const serial = certificateInfo(creds.certPem).serialNumber;
      publish(await issueCrl(external, [{ serialNumber: serial, revokedAt: new Date(), reason: 'keyCompromise' }], { crlNumber: 5 }));
      let n = 1;
      let answer = await submit(`k${++n}`);
      await waitFor(async () => {
        if (answer.status !== 401) answer = await submit(`k${++n}`);
        return answer.status === 401;
      }, 10_000, 'the open connection refused once the CRL is read', 5);
      // An answer, not a dropped connection, on the connection already open and on a new one.
      expect(JSON.stringify(answer.body)).toMatch(new RegExp(`TLS client certificate \\(serial 0*${serial.replace(/^0+/, '')}\\) was revoked at .* \\(keyCompromise`));
      expect(await submitAs(t, apiKey, creds, '2000000003', 'k-new')).toBe(401);
      // Serials are matched as numbers: node writes a certificate's to a whole byte, a CRL's DER integer may carry a sign byte.
      expect(revocationKey('CN=X', '00A1B2')).toBe(revocationKey('CN=X', '0a1b2'));
      expect(revocationKey('CN=X', 'A1B2')).not.toBe(revocationKey('CN=Y', 'A1B2'));
    } finally {
      await client.close();
    }
  });

  it('warns from three quarters of a CRL\'s validity, and reports it expired past nextUpdate', async () => {
    const now = Date.now();
    const crl = { file: 'x', issuer: 'CN=X', thisUpdate: now, nextUpdate: now + 4_000, entries: new Map(), pem: '' };
    expect(staleCrls([crl], now + 2_999)).toEqual([]);
    expect(staleCrls([crl], now + 3_000)).toEqual([{ issuer: 'CN=X', file: 'x', nextUpdate: now + 4_000, expired: false, since: now + 3_000 }]);
    expect(staleCrls([crl], now + 4_000)).toEqual([{ issuer: 'CN=X', file: 'x', nextUpdate: now + 4_000, expired: true, since: now + 3_000 }]);
    expect(staleCrls([{ ...crl, nextUpdate: null }], now + 10_000)).toEqual([]);
    // The alarm: critical, operators only, saying what is refused.
    const [alarm] = await crlAlarms(() => staleCrls([crl], now + 4_000), 'node-1')();
    expect(alarm).toMatchObject({ key: 'crl-stale:CN=X:node-1', rule: 'crl-stale', participant: null, since: now + 3_000 });
    expect(alarm?.summary).toMatch(/the CRL of CN=X \(x\) expired at .*: every certificate it issued is refused at the handshake/);
    expect(alarmSeverity({ rule: 'crl-stale' })).toBe('critical');
    expect(OPERATOR_RULES.has('crl-stale')).toBe(true);
  });

  it('is a configuration-file setting; a CRL from an untrusted CA, or a trusted CA without a CRL, stops the start with the reason', async () => {
    writeFileSync(join(dir, 'dip.config.yaml'), `trustedCaFiles:\n  - ${trusted}\ncrlFiles:\n  - ${crlFile}\n`);
    expect(loadConfig({ DIP_DATA_DIR: dir }).crlFiles).toEqual([crlFile]);
    const other = await createCertificateAuthority({ commonName: 'Other CA', environment: 'PRD', validDays: 30 });
    const otherCrl = join(dir, 'other.crl.pem');
    writeFileSync(otherCrl, await issueCrl(other, [], { crlNumber: 1 }));
    await expect(readCrlFiles([otherCrl], [external.certPem])).rejects.toThrow(/other\.crl\.pem \(issuer CN=Other CA.*\) is not signed by a CA in trustedCaFiles/);
    const bundle = join(dir, 'both.pem');
    writeFileSync(bundle, `${external.certPem}${other.certPem}`);
    await expect(readCrlFiles([crlFile], [external.certPem, other.certPem])).rejects.toThrow(/no CRL for the trusted CA CN=Other CA/);
    await expect(startTestDip({ trustedCaFiles: [bundle], crlFiles: [crlFile] }, mkdtempSync(join(tmpdir(), 'opendip-')))).rejects.toThrow(/no CRL for the trusted CA/);
    await expect(startTestDip({ crlFiles: [crlFile] }, mkdtempSync(join(tmpdir(), 'opendip-')))).rejects.toThrow(/crlFiles: set without trustedCaFiles/);
  });
});
