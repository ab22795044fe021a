import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pkiDir } from '../src/app.js';
import { DEFAULTS } from '../src/config.js';
import type { Logger } from '../src/ports/logger.js';
import { writeAtomic } from '../src/security/files.js';
import { issueServerCertificate, PKI_FILES, type KeyAndCert } from '../src/security/pki.js';
import { certificateInfo } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/** The serial number of the certificate a new TLS handshake with `port` is shown (presenting `client`, for the mutual TLS listener). */
function servedSerial(port: number, client?: KeyAndCert): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(client ? { key: client.keyPem, cert: client.certPem } : {}) }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}

/** The status of an unsigned GET /health to the participant listener, sent with Host `host`. */
function statusWithHost(port: number, client: KeyAndCert, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/health', headers: { host }, key: client.keyPem, cert: client.certPem, rejectUnauthorized: false, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

const serialOf = (pem: string): string => certificateInfo(pem).serialNumber.toUpperCase();

/**
 * The DIP's TLS server certificate, renewed while it runs: every listener (participant, anonymous, portal)
 * serves the new one from its next handshake, no restart; files that are not a usable pair keep the one in
 * force, and the log says why.
 */
describe("the DIP's TLS server certificate is renewed without a restart", () => {
  let t: TestDip;
  let sds: TestParticipant;
  const errors: string[] = [];
  const logger: Logger = { info() {}, warn() {}, error: (o, msg) => void errors.push(`${msg ?? ''} ${(o as { err?: Error }).err?.message ?? ''}`) };
  beforeAll(async () => {
    t = await startTestDip({ signingKeyPollMs: 50, portalPort: 0, publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } }, undefined, { logger });
    sds = await t.participant('2000000001', ['SDS']);
  });
  afterAll(async () => {
    await t?.close();
  });

  const ports = () => [
    { name: 'participant', port: t.dip.port, client: sds.credentials },
    { name: 'anonymous', port: t.dip.publicPort! },
    { name: 'portal', port: Number(new URL(t.dip.portalUrl).port) },
  ];

  it('serves a renewed certificate from the next handshake on every listener; a bad pair keeps it and says why', async () => {
    const first = serialOf(t.dip.pki.server.certPem);
    for (const l of ports()) expect([l.name, await servedSerial(l.port, l.client)]).toEqual([l.name, first]);

    expect(await statusWithHost(t.dip.port, sds.credentials, 'renewed.example')).toBe(421);
    const renewed = await issueServerCertificate(t.dip.pki.ca, { hostnames: [...t.config.hostnames, 'renewed.example'], ipAddresses: t.config.ipAddresses, validDays: 30 });
    const dir = pkiDir(t.config);
    // As a renewal writes them: the key, then the certificate.
    await writeAtomic(join(dir, PKI_FILES.serverKey), renewed.keyPem, 0o600);
    await writeAtomic(join(dir, PKI_FILES.serverCert), renewed.certPem, 0o644);
    for (const l of ports()) await waitFor(async () => (await servedSerial(l.port, l.client)) === serialOf(renewed.certPem), 10_000, `the ${l.name} listener serving the renewed certificate`);
    // A name only the renewed certificate covers is one of the participant API's from then on, not 421 until a restart.
    expect(await statusWithHost(t.dip.port, sds.credentials, 'renewed.example')).not.toBe(421);
    // The participants' calls go on over it.
    expect((await sds.client.call('GET', '/certificates/dip', '')).status).toBe(200);

    // A certificate whose key is not the one beside it: kept out, the renewed one still served, the log says why.
    const stray = await issueServerCertificate(t.dip.pki.ca, { hostnames: t.config.hostnames, ipAddresses: t.config.ipAddresses, validDays: 30 });
    await writeAtomic(join(dir, PKI_FILES.serverCert), stray.certPem, 0o644);
    await waitFor(() => errors.some((e) => e.includes('TLS server key or certificate is unusable')), 10_000, 'the refusal logged');
    expect(errors.find((e) => e.includes('TLS server key or certificate is unusable'))).toMatch(/keeping the one in force .*key is not the certificate's/);
    for (const l of ports()) expect([l.name, await servedSerial(l.port, l.client)]).toEqual([l.name, serialOf(renewed.certPem)]);
  });

  it('presents the renewed certificate to webhook receivers that ask for one, from the next call', async () => {
    // A receiver asking for the caller's certificate, noting the serial of each call's.
    const serials: string[] = [];
    const own = await issueServerCertificate(t.dip.pki.ca, { hostnames: ['localhost'], ipAddresses: ['127.0.0.1'], validDays: 2 });
    const server: Server = createServer({ key: own.keyPem, cert: own.certPem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      serials.push((req.socket as TLSSocket).getPeerCertificate().serialNumber);
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const sup = await t.participant('1000000001', ['SUP']);
      expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `https://localhost:${(server.address() as AddressInfo).port}/dip` })).status).toBe(201);
      const submit = async (n: string) => expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: n })])).status).toBe(201);
      await submit('before');
      await waitFor(() => serials.length === 1, 10_000, 'the first call');
      // The pair the listeners serve now (renewed by the test before): the one webhook calls present too.
      expect(serials[0]).toBe(await servedSerial(t.dip.port, sds.credentials));

      const renewed = await issueServerCertificate(t.dip.pki.ca, { hostnames: t.config.hostnames, ipAddresses: t.config.ipAddresses, validDays: 30 });
      const dir = pkiDir(t.config);
      await writeAtomic(join(dir, PKI_FILES.serverKey), renewed.keyPem, 0o600);
      await writeAtomic(join(dir, PKI_FILES.serverCert), renewed.certPem, 0o644);
      await waitFor(async () => (await servedSerial(t.dip.port, sds.credentials)) === serialOf(renewed.certPem), 10_000, 'the renewal taken up');
      // The connection kept alive for the first call is not reused with the old certificate either.
      await submit('after');
      await waitFor(() => serials.length === 2, 10_000, 'the second call');
      expect(serials[1]).toBe(serialOf(renewed.certPem));
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});