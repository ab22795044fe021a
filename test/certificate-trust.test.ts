/**
 * The trust store per environment (src/security/trust-store.ts) over real TLS sockets, and the CLI's
 * `dip pki ca create` and `dip pki issue --csr`.
 */
import 'reflect-metadata'; // before @peculiar/x509
import * as x509 from '@peculiar/x509';
import { execFile } from 'node:child_process';
import { X509Certificate, webcrypto } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { loadConfig } from '../src/config.js';
import { createCertificateAuthority, issueParticipantCertificate, type KeyAndCert } from '../src/security/pki.js';
import { certificateInfo, verifyChain } from '../src/security/signature.js';
import { clientTrustStore } from '../src/security/trust-store.js';
import { submitAs } from './helpers/submit-as.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';
import { cliRuns } from './helpers/cli-budget.js';



describe("a certificate from another environment's CA", () => {
  let t: TestDip;
  beforeAll(async () => {
    t = await startTestDip();
    await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is refused at the TLS handshake, and by `participant add` with the reason (spec 5.13.3: certificates differ per environment)', async () => {
    // Same organisation names, same DIP ID, but issued by the SIT environment's CA (OU=SIT).
    const sitCa = await createCertificateAuthority({ commonName: 'OpenDIP SIT CA', environment: 'SIT', validDays: 30 });
    const sit = await issueParticipantCertificate(sitCa, { organisation: 'Org 2000000001', dipIds: ['2000000001'], environment: 'SIT', validDays: 30 });
    expect(certificateInfo(sit.certPem).subject).toContain('OU=SIT');

    await expect(onboardParticipant(t.dip.backend.registry, { dipId: '2000000001', roles: ['SDS'], certificatePem: sit.certPem, trustedCaPems: [t.dip.pki.ca.certPem] })).rejects.toThrow(
      /not issued by a CA this environment trusts.*certificates differ per environment/,
    );
    // Even registered behind the check's back, the listener drops the connection before any HTTP.
    const { apiKey } = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000001', roles: ['SDS'], certificatePem: sit.certPem });
    expect(await submitAs(t, apiKey, sit, '2000000001', 'sit1')).toBe('handshake refused');

    // The same DIP ID with a certificate from this (DEV) environment's CA is fine.
    const dev = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 2000000001', dipIds: ['2000000001'], environment: 'DEV', validDays: 30 });
    const again = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000001', roles: ['SDS'], certificatePem: dev.certPem, trustedCaPems: [t.dip.pki.ca.certPem] });
    expect(await submitAs(t, again.apiKey, dev, '2000000001', 'dev1')).toBe(201);
  });
});

describe('trustedCaFiles replaces the built-in CA for client certificates', () => {
  let t: TestDip;
  let commercial: KeyAndCert;
  let bundle: string;
  beforeAll(async () => {
    // A commercial CA for PRD, in a bundle with another CA (e.g. its previous generation).
    const [a, b] = await Promise.all([
      createCertificateAuthority({ commonName: 'Commercial Root G2', environment: 'PRD', validDays: 30 }),
      createCertificateAuthority({ commonName: 'Commercial Root G1', environment: 'PRD', validDays: 30 }),
    ]);
    commercial = a;
    bundle = join(mkdtempSync(join(tmpdir(), 'opendip-trust-')), 'trusted.pem');
    writeFileSync(bundle, `${b.certPem}${a.certPem}`);
    t = await startTestDip({ trustedCaFiles: [bundle] });
    await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('accepts a certificate from the configured CA and refuses one from the built-in CA at the handshake', async () => {
    const prd = await issueParticipantCertificate(commercial, { organisation: 'Org 2000000002', dipIds: ['2000000002'], environment: 'PRD', validDays: 30 });
    const trusted = clientTrustStore([bundle], t.dip.pki.ca.certPem);
    expect(trusted.builtIn).toBe(false);
    expect(trusted.cas).toHaveLength(2);
    const ok = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000002', roles: ['SDS'], certificatePem: prd.certPem, trustedCaPems: trusted.cas });
    expect(await submitAs(t, ok.apiKey, prd, '2000000002', 'prd1')).toBe(201);

    const builtIn = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 2000000003', dipIds: ['2000000003'], environment: 'DEV', validDays: 30 });
    await expect(onboardParticipant(t.dip.backend.registry, { dipId: '2000000003', roles: ['SDS'], certificatePem: builtIn.certPem, trustedCaPems: trusted.cas })).rejects.toThrow(/not issued by a CA this environment trusts/);
    const refused = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000003', roles: ['SDS'], certificatePem: builtIn.certPem });
    expect(await submitAs(t, refused.apiKey, builtIn, '2000000003', 'dev2')).toBe('handshake refused');
  });

  it('is a configuration-file setting; a file that is not a bundle of CA certificates stops the start with the reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'opendip-trust-config-'));
    writeFileSync(join(dir, 'dip.config.yaml'), `trustedCaFiles:\n  - ${bundle}\n`);
    expect(loadConfig({ DIP_DATA_DIR: dir }).trustedCaFiles).toEqual([bundle]);

    const leaf = join(dir, 'leaf.pem');
    writeFileSync(leaf, (await issueParticipantCertificate(commercial, { organisation: 'X', dipIds: ['2000000009'], environment: 'PRD', validDays: 5 })).certPem);
    expect(() => clientTrustStore([leaf], t.dip.pki.ca.certPem)).toThrow(/certificate 1 in .*leaf\.pem .* is not a CA certificate/);
    expect(() => clientTrustStore([join(dir, 'missing.pem')], t.dip.pki.ca.certPem)).toThrow(/cannot read .*missing\.pem/);
    writeFileSync(join(dir, 'empty.pem'), 'nothing here\n');
    expect(() => clientTrustStore([join(dir, 'empty.pem')], t.dip.pki.ca.certPem)).toThrow(/holds no PEM certificate/);
    await expect(startTestDip({ trustedCaFiles: [leaf] }, mkdtempSync(join(tmpdir(), 'opendip-')))).rejects.toThrow(/is not a CA certificate/);
  });
});

/** Runs the `dip` command line in its own process, as an operator would. */
function dip(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('dip pki ca create and dip pki issue --csr', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'opendip-ca-'));
  const env = { DIP_DATA_DIR: dataDir, DIP_ENV: 'SIT' };
  const pki = (f: string) => readFileSync(join(dataDir, 'pki', f), 'utf8');

  it('creates the environment CA and the DIP certificates from it, refuses to overwrite it without --force', cliRuns(4), async () => {
    const wrongEnv = await dip(env, 'pki', 'ca', 'create', '--env', 'UIT');
    expect(wrongEnv.code).toBe(1);
    expect(wrongEnv.stderr).toMatch(/--env UIT is not this DIP's environment \(SIT\)/);
    expect(existsSync(join(dataDir, 'pki', 'ca.cert.pem'))).toBe(false);

    const created = await dip(env, 'pki', 'ca', 'create', '--env', 'SIT');
    expect(created.code, created.stderr).toBe(0);
    const first = pki('ca.cert.pem');
    expect(certificateInfo(first).subject).toBe('CN=OpenDIP SIT CA, O=OpenDIP, OU=SIT');
    for (const leaf of ['server.cert.pem', 'dip-signing.cert.pem', 'dip-encryption.cert.pem']) expect(verifyChain(pki(leaf), [first]), leaf).toBe(true);

    const refused = await dip(env, 'pki', 'ca', 'create', '--env', 'SIT');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already holds a CA \(CN=OpenDIP SIT CA.*pass --force/);
    expect(pki('ca.cert.pem')).toBe(first);

    const forced = await dip(env, 'pki', 'ca', 'create', '--env', 'sit', '--force');
    expect(forced.code, forced.stderr).toBe(0);
    const second = pki('ca.cert.pem');
    expect(second).not.toBe(first);
    // The DIP's own certificates were re-issued from the new CA at once.
    for (const leaf of ['server.cert.pem', 'dip-signing.cert.pem', 'dip-encryption.cert.pem']) {
      expect(verifyChain(pki(leaf), [second]), leaf).toBe(true);
      expect(verifyChain(pki(leaf), [first]), leaf).toBe(false);
    }
  });

  it("issues a certificate for a participant's CSR: only cert.pem is written, bound to --dip-id, the key stays with the participant", cliRuns(2), async () => {
    const keys = (await webcrypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
      true,
      ['sign', 'verify'],
    ));
    // The CSR asks for another name: the binding is the operator's --dip-id, never the CSR's subject.
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: 'CN=9999999999, O=Participant', keys, signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } });
    const csrFile = join(dataDir, 'participant.csr');
    writeFileSync(csrFile, csr.toString('pem'));
    const out = join(dataDir, 'sds');
    const issued = await dip(env, 'pki', 'issue', '--dip-id', '2000000001', '--csr', csrFile, '--out', out, '--org', 'Participant Ltd');
    expect(issued.code, issued.stderr).toBe(0);
    expect(existsSync(join(out, 'key.pem'))).toBe(false);
    const certPem = readFileSync(join(out, 'cert.pem'), 'utf8');
    const info = certificateInfo(certPem);
    expect(info.dipIds).toEqual(['2000000001']);
    expect(info.subject).toBe('CN=2000000001, O=Participant Ltd, OU=SIT');
    expect(verifyChain(certPem, [pki('ca.cert.pem')])).toBe(true);
    const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey));
    expect(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true);

    const garbage = join(dataDir, 'garbage.csr');
    writeFileSync(garbage, '-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n');
    const bad = await dip(env, 'pki', 'issue', '--dip-id', '2000000001', '--csr', garbage, '--out', join(dataDir, 'bad'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^dip: /);
  });
});
