/**
 * Revocation (src/security/revocation.ts): the revocation list that `dip pki revoke` keeps in the store and the CRL it writes,
 * and a running DIP that honours them without a restart: per request at once, and at the TLS
 * handshake of every new connection.
 */
import 'reflect-metadata'; // before @peculiar/x509
import * as x509 from '@peculiar/x509';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onboardParticipant } from '../src/pipeline/participants.js';
import { pkiDir } from '../src/app.js';
import { DipClient } from '../src/client/dip-client.js';
import { createCertificateAuthority, ensurePki, issueParticipantCertificate, type KeyAndCert, type PkiMaterial } from '../src/security/pki.js';
import { openSqliteBackend } from '../src/adapters/sqlite/index.js';
import { systemClock } from '../src/adapters/clock.js';
import type { Backend } from '../src/ports/backend.js';
import type { Logger } from '../src/ports/logger.js';
import { crlFile, legacyRevocationListFile, readRevocationList, revokeCertificate, RevocationWatcher, type RevocationStore } from '../src/security/revocation.js';
import { certificateInfo } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { quietLogger, startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('revokeCertificate: the list in the store and a CRL signed by the CA', () => {
  let dir: string;
  let backend: Backend;
  let store: RevocationStore;
  let pki: PkiMaterial;
  let a: KeyAndCert;
  let b: KeyAndCert;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'opendip-revoke-'));
    backend = openSqliteBackend(join(dir, 'dip.db'), { clock: systemClock });
    store = backend.registry;
    pki = await ensurePki(dir, { environment: 'DEV', hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
    [a, b] = await Promise.all([
      issueParticipantCertificate(pki.ca, { organisation: 'A', dipIds: ['1000000001'], environment: 'DEV', validDays: 5 }),
      issueParticipantCertificate(pki.ca, { organisation: 'B', dipIds: ['1000000002'], environment: 'DEV', validDays: 5 }),
    ]);
  });
  afterAll(async () => {
    await backend?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('records serial, fingerprint, subject, DIP IDs, reason and time, and is idempotent', async () => {
    const at = new Date('2026-11-23T10:00:00.000Z');
    const first = await revokeCertificate(dir, store, a.certPem, 'keyCompromise', at);
    expect(first.alreadyRevoked).toBe(false);
    const info = certificateInfo(a.certPem);
    expect(first.entry).toEqual({ serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, subject: info.subject, dipIds: ['1000000001'], reason: 'keyCompromise', revokedAt: at.toISOString() });
    const again = await revokeCertificate(dir, store, a.certPem, 'superseded');
    expect(again.alreadyRevoked).toBe(true);
    expect(again.entry.reason).toBe('keyCompromise');
    const list = await readRevocationList(store);
    expect(list.entries).toHaveLength(1);
    expect(list.crlNumber).toBe(1);
  });

  it('writes an X.509 v2 CRL signed by the CA that lists every revoked serial with its reason', async () => {
    await revokeCertificate(dir, store, b.certPem, 'the organisation left the market');
    const pem = await readFile(crlFile(dir), 'utf8');
    expect(pem).toMatch(/^-----BEGIN X509 CRL-----\n/);
    const crl = new x509.X509Crl(pem);
    expect(await crl.verify({ publicKey: new x509.X509Certificate(pki.ca.certPem) })).toBe(true);
    expect(crl.issuer).toBe(new x509.X509Certificate(pki.ca.certPem).subject);
    const serials = crl.entries.map((e) => e.serialNumber.toUpperCase());
    expect(serials).toEqual([certificateInfo(a.certPem).serialNumber, certificateInfo(b.certPem).serialNumber]);
    expect(crl.entries[0]!.reason).toBe(x509.X509CrlReason.keyCompromise);
    expect(crl.entries[1]!.reason).toBeUndefined(); // free text → unspecified, which RFC 5280 says to omit
    expect(crl.nextUpdate?.getTime()).toBe(new x509.X509Certificate(pki.ca.certPem).notAfter.getTime());
    expect((await readRevocationList(store)).crlNumber).toBe(2);
  });

  it.runIf(hasOpenssl)('OpenSSL verifies the CRL against the CA and finds both serials', () => {
    const out = execFileSync('openssl', ['crl', '-in', crlFile(dir), '-CAfile', join(dir, 'ca.cert.pem'), '-noout', '-text'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toContain(certificateInfo(a.certPem).serialNumber);
    expect(out).toContain(certificateInfo(b.certPem).serialNumber);
    expect(out).toContain('Key Compromise');
    const verify = execFileSync('openssl', ['crl', '-in', crlFile(dir), '-CAfile', join(dir, 'ca.cert.pem'), '-noout'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(verify + '').toBe('');
  });

  it("refuses a certificate from another CA, the CA itself, and garbage", async () => {
    const other = await createCertificateAuthority({ commonName: 'OpenDIP DEV CA', environment: 'DEV', validDays: 5 });
    const foreign = await issueParticipantCertificate(other, { organisation: 'X', dipIds: ['1000000003'], environment: 'DEV', validDays: 5 });
    await expect(revokeCertificate(dir, store, foreign.certPem, 'x')).rejects.toThrow(/not issued by this environment's CA/);
    await expect(revokeCertificate(dir, store, pki.ca.certPem, 'x')).rejects.toThrow(/CA certificate itself/);
    await expect(revokeCertificate(dir, store, 'hello', 'x')).rejects.toThrow(/not a PEM certificate/);
    expect((await readRevocationList(store)).entries).toHaveLength(2);
  });

  it('serialises concurrent revocations: none is lost, and an older list is never written last', async () => {
    const many = await Promise.all(Array.from({ length: 5 }, (_, i) => issueParticipantCertificate(pki.ca, { organisation: `C${i}`, dipIds: [`300000000${i}`], environment: 'DEV', validDays: 5 })));
    // The first revocation reads the list after its own addition, then is held until the others have
    // written theirs: the list it read is older than the one in crl.pem by then.
    let held = false;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow: RevocationStore = {
      putRecord: (r, v) => store.putRecord(r, v),
      records: async (kind) => {
        const snapshot = await store.records(kind);
        if (!held) {
          held = true;
          await gate;
        }
        return snapshot;
      },
    };
    const first = revokeCertificate(dir, slow, many[0]!.certPem, 'cessationOfOperation');
    await waitFor(() => held, 5000, 'the first revocation to read the list');
    await Promise.all(many.slice(1).map((c) => revokeCertificate(dir, store, c.certPem, 'cessationOfOperation')));
    release();
    await first;
    const list = await readRevocationList(store);
    expect(list.entries).toHaveLength(7);
    expect(new x509.X509Crl(await readFile(crlFile(dir), 'utf8')).entries).toHaveLength(7);
  });

  it('a watcher keeps the list in force when the store cannot be read', async () => {
    let down = false;
    const flaky: RevocationStore = { putRecord: (r, v) => store.putRecord(r, v), records: (kind) => (down ? Promise.reject(new Error('store down')) : store.records(kind)) };
    const w = await RevocationWatcher.open(dir, flaky, pki.ca, quietLogger);
    expect(w.size).toBe(7);
    expect(w.revoked(certificateInfo(a.certPem).fingerprint256)?.reason).toBe('keyCompromise');
    expect(w.crlPem()).toMatch(/BEGIN X509 CRL/);
    down = true;
    await w.reload();
    expect(w.size).toBe(7);
  });

  it('refuses to open when the list cannot be read at start (fail closed)', async () => {
    const down: RevocationStore = { putRecord: (r, v) => store.putRecord(r, v), records: () => Promise.reject(new Error('store down')) };
    await expect(RevocationWatcher.open(dir, down, pki.ca, quietLogger)).rejects.toThrow(/revocation list could not be read from the store \(store down\)/);
  });

  it('logs a malformed revocation record by its key, once', async () => {
    const errors: Array<{ obj: object; msg?: string }> = [];
    const logger: Logger = { ...quietLogger, error: (obj, msg) => errors.push({ obj, msg }) };
    const broken: RevocationStore = {
      putRecord: (r, v) => store.putRecord(r, v),
      records: async (kind) => [...(await store.records(kind)), { kind, key: 'BROKEN-KEY', version: 1, doc: { serialNumber: 42 }, at: 0, by: 'hand' }],
    };
    const w = await RevocationWatcher.open(dir, broken, pki.ca, logger);
    await w.reload();
    expect(w.size).toBe(7);
    expect(errors).toEqual([{ obj: { kind: 'revoked-certificate', key: 'BROKEN-KEY' }, msg: expect.stringMatching(/not in force/i) as unknown }]);
  });

  it("imports an earlier version's revoked.json into the store once, keeping what is there", async () => {
    const c = await issueParticipantCertificate(pki.ca, { organisation: 'L', dipIds: ['4000000001'], environment: 'DEV', validDays: 5 });
    const info = certificateInfo(c.certPem);
    const legacy = { serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, subject: info.subject, dipIds: info.dipIds, reason: 'superseded', revokedAt: '2026-01-01T00:00:00.000Z' };
    const kept = (await readRevocationList(store)).entries[0]!;
    await writeFile(legacyRevocationListFile(dir), JSON.stringify({ version: 1, crlNumber: 2, updatedAt: null, entries: [legacy, { ...kept, reason: 'other' }] }));
    const w = await RevocationWatcher.open(dir, store, pki.ca, quietLogger);
    expect(w.revoked(info.fingerprint256)).toEqual(legacy);
    expect(w.revoked(kept.fingerprint256)?.reason).toBe(kept.reason);
    expect(w.size).toBe(8);
    await expect(readFile(legacyRevocationListFile(dir), 'utf8')).rejects.toThrow(/ENOENT/);
    expect(await readFile(`${legacyRevocationListFile(dir)}.imported`, 'utf8')).toContain(info.fingerprint256);
  });

  it('imports a revoked.json written after start (an earlier version\'s CLI) at the next read', async () => {
    const w = await RevocationWatcher.open(dir, store, pki.ca, quietLogger);
    const c = await issueParticipantCertificate(pki.ca, { organisation: 'M', dipIds: ['4000000002'], environment: 'DEV', validDays: 5 });
    const info = certificateInfo(c.certPem);
    const late = { serialNumber: info.serialNumber, fingerprint256: info.fingerprint256, subject: info.subject, dipIds: info.dipIds, reason: 'keyCompromise', revokedAt: '2026-02-01T00:00:00.000Z' };
    await writeFile(legacyRevocationListFile(dir), JSON.stringify({ version: 1, crlNumber: 1, updatedAt: null, entries: [late] }));
    await w.reload();
    expect(w.revoked(info.fingerprint256)).toEqual(late);
    expect(new x509.X509Crl(await readFile(crlFile(dir), 'utf8')).entries.map((e) => e.serialNumber.toUpperCase())).toContain(info.serialNumber);
  });

  it('a revoked.json that cannot be imported is logged and blocks no reload of the list', async () => {
    const errors: string[] = [];
    const w = await RevocationWatcher.open(dir, store, pki.ca, { ...quietLogger, error: (_o, msg) => void errors.push(msg ?? '') });
    await writeFile(legacyRevocationListFile(dir), '{"entries": "no"}');
    const c = await issueParticipantCertificate(pki.ca, { organisation: 'N', dipIds: ['4000000003'], environment: 'DEV', validDays: 5 });
    await revokeCertificate(dir, store, c.certPem, 'superseded');
    await w.reload();
    await w.reload();
    expect(w.revoked(certificateInfo(c.certPem).fingerprint256)?.reason).toBe('superseded');
    expect(errors).toEqual(['revoked.json could not be imported; its revocations are not in force']);
    await rm(legacyRevocationListFile(dir));
  });
});

describe('a running DIP honours a revocation without a restart', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let other: TestParticipant;

  beforeAll(async () => {
    t = await startTestDip({ revocationPollMs: 50 });
    sds = await t.participant('2000000001', ['SDS']);
    other = await t.participant('2000000002', ['SDS']);
    await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    await t?.close();
  });

  const item = (sender: string, suffix: string) => buildIF021({ senderDipId: sender, senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: suffix });

  it('refuses the revoked participant per request at once, and answers its next new connection 401 naming the revocation', async () => {
    const port = t.dip.port;
    // A kept-alive connection, established before the revocation.
    expect((await sds.client.submit('IF-021', [item(sds.dipId, 'rv1')])).status).toBe(201);

    const revoked = await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, sds.credentials.certPem, 'keyCompromise');
    expect(revoked.alreadyRevoked).toBe(false);

    // The connection that was already open: refused by authenticate(), naming the revocation, as soon
    // as the watcher (polling every 50 ms here) has read the new list.
    let tries = 0;
    let answer = await sds.client.submit('IF-021', [item(sds.dipId, 'rv2')]);
    await waitFor(async () => {
      if (answer.status !== 401) answer = await sds.client.submit('IF-021', [item(sds.dipId, `rv2x${tries++}`)]);
      return answer.status === 401;
    }, 10_000, 'the revocation to be read');
    expect(JSON.stringify(answer.body)).toMatch(/TLS client certificate \(serial [0-9A-F]+\) was revoked at .* \(keyCompromise\)/);

    // A new connection with the revoked certificate: its TLS handshake completes so that it can be told
    // why (src/api/certificate-answer.ts), and every request on it is answered 401 naming the revocation.
    const fresh = new DipClient({ baseUrl: t.dip.url, apiKey: sds.apiKey, keyPem: sds.credentials.keyPem, certPem: sds.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    try {
      const refused = await fresh.submit('IF-021', [item(sds.dipId, 'rv3')]);
      expect(refused.status).toBe(401);
      expect(JSON.stringify(refused.body)).toMatch(/TLS client certificate \(serial [0-9A-F]+\) was revoked at .* \(keyCompromise\)/);
    } finally {
      await fresh.close();
    }

    // Same server, same port: never restarted. Another participant's new connection is fine.
    expect(t.dip.port).toBe(port);
    const bystander = new DipClient({ baseUrl: t.dip.url, apiKey: other.apiKey, keyPem: other.credentials.keyPem, certPem: other.credentials.certPem, caPem: t.dip.pki.ca.certPem });
    try {
      expect((await bystander.submit('IF-021', [item(other.dipId, 'rv4')])).status).toBe(201);
    } finally {
      await bystander.close();
    }

    // The swapped TLS context still demands a client certificate from the environment's CA.
    const anonymous = new Agent({ connect: { ca: t.dip.pki.ca.certPem } });
    try {
      await expect(anonymous.request({ origin: t.dip.url, path: '/health', method: 'GET' }).then((r) => r.body.text())).rejects.toThrow();
    } finally {
      await anonymous.close();
    }
  });

  it('takes the participant back with a new certificate (re-registered), on a new connection', async () => {
    const renewed = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 2000000001', dipIds: ['2000000001'], environment: 'DEV', validDays: 30 });
    const { apiKey } = await onboardParticipant(t.dip.backend.registry, { dipId: '2000000001', roles: ['SDS'], certificatePem: renewed.certPem });
    const client = new DipClient({ baseUrl: t.dip.url, apiKey, keyPem: renewed.keyPem, certPem: renewed.certPem, caPem: t.dip.pki.ca.certPem });
    try {
      expect((await client.submit('IF-021', [item('2000000001', 'rv5')])).status).toBe(201);
    } finally {
      await client.close();
    }
  });

  it('the revoked certificate reaches nothing on a new connection, not even /health: 401 naming the revocation', async () => {
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem, cert: sds.credentials.certPem, key: sds.credentials.keyPem } });
    try {
      const r = await agent.request({ origin: t.dip.url, path: '/health', method: 'GET' });
      expect(r.statusCode).toBe(401);
      expect(await r.body.text()).toMatch(/was revoked at/);
    } finally {
      await agent.close();
    }
  });

  it('installs the CRL from the first handshake after a restart', async () => {
    const dataDir = t.config.dataDir;
    await t.close();
    t = await startTestDip({ revocationPollMs: 50 }, dataDir);
    const agent = (c: KeyAndCert) => new Agent({ connect: { ca: t.dip.pki.ca.certPem, cert: c.certPem, key: c.keyPem } });
    const revokedAgent = agent(sds.credentials);
    const fineAgent = agent(other.credentials);
    try {
      const refused = await revokedAgent.request({ origin: t.dip.url, path: '/health', method: 'GET' });
      expect(refused.statusCode).toBe(401);
      expect(await refused.body.text()).toMatch(/was revoked at/);
      const ok = await fineAgent.request({ origin: t.dip.url, path: '/health', method: 'GET' });
      expect(ok.statusCode).toBe(200);
      await ok.body.text();
    } finally {
      await revokedAgent.close();
      await fineAgent.close();
    }
  });

  it('refuses a revoked signing certificate even over a TLS connection made with another, valid certificate', async () => {
    // 2000000003 signs with its registered certificate and connects with a second one naming the same DIP ID.
    const p = await t.participant('2000000003', ['SDS']);
    const tlsOnly = await issueParticipantCertificate(t.dip.pki.ca, { organisation: 'Org 2000000003', dipIds: ['2000000003'], environment: 'DEV', validDays: 30 });
    const { Signer } = await import('../src/security/signature.js');
    const signer = new Signer(p.credentials.keyPem, p.credentials.certPem);
    const agent = new Agent({ connect: { ca: t.dip.pki.ca.certPem, cert: tlsOnly.certPem, key: tlsOnly.keyPem } });
    const post = async (suffix: string) => {
      const body = JSON.stringify([item('2000000003', suffix)]);
      const headers = { 'content-type': 'application/json', 'x-api-key': p.apiKey, ...(await signer.sign('POST', `${t.dip.url}/dip-channel/IF-021`, body)) };
      const res = await agent.request({ origin: t.dip.url, path: '/dip-channel/IF-021', method: 'POST', headers, body });
      return { status: res.statusCode, text: await res.body.text() };
    };
    try {
      expect((await post('sg1')).status).toBe(201);
      await revokeCertificate(pkiDir(t.config), t.dip.backend.registry, p.credentials.certPem, 'superseded');
      let tries = 0;
      let answer = await post('sg2');
      await waitFor(async () => {
        if (answer.status !== 401) answer = await post(`sg2x${tries++}`);
        return answer.status === 401;
      }, 10_000, 'the revocation to be read');
      expect(answer.text).toMatch(/signing certificate \(serial [0-9A-F]+\) was revoked at .* \(superseded\)/);
    } finally {
      await agent.close();
    }
  });
});
