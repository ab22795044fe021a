/**
 * A participant's HTTPS webhook receiver (README "For recipients"): a self-signed certificate is retried
 * and its TLS error is in the attempt the participant and operator read (not only in the DIP's log);
 * `dip pki issue-server` makes a serverAuth certificate from the environment's CA that the DIP trusts;
 * and the DIP presents its client certificate on the call (mutual TLS, spec 5.5.10).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { execFile } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority } from '../src/security/pki.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';
import { cliRuns } from './helpers/cli-budget.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

interface Received {
  clientCertSubject: string | null;
  authorized: boolean;
}

/** An HTTPS receiver that asks for the caller's certificate and notes what it got; answers 200. */
async function httpsReceiver(key: string, cert: string): Promise<{ server: Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer({ key, cert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const socket = req.socket as TLSSocket;
    const peer = socket.getPeerCertificate();
    received.push({ clientCertSubject: peer.subject ? JSON.stringify(peer.subject) : null, authorized: socket.authorized });
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, url: `https://localhost:${(server.address() as AddressInfo).port}/dip`, received };
}

describe('an HTTPS webhook receiver', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let token: string;
  const servers: Server[] = [];
  beforeAll(async () => {
    t = await startTestDip();
    token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => {
    for (const s of servers) s.close();
    await t?.close();
  });

  const attempts = async (until: (a: Array<{ verdict: string; error: string | null; status: number | null }>) => boolean) => {
    let list: Array<{ verdict: string; error: string | null; status: number | null }> = [];
    // The harness's one polling helper (the calls are real retries over real TLS sockets).
    await waitFor(async () => {
      const res = await request(`http://127.0.0.1:${t.dip.adminPort}/admin/attempts?recipient=${sup.dipId}&channel=IF-021`, { headers: { authorization: `Bearer ${token}` } });
      list = (await res.body.json()) as typeof list;
      return until(list);
    }, 10_000, 'the attempts to be recorded');
    return list;
  };

  it("with a self-signed certificate: pubconfig says 201, every call fails the handshake and is retried, and the attempt's error names the TLS failure", async () => {
    const self = await createCertificateAuthority({ commonName: 'localhost', environment: 'DEV', validDays: 1 });
    const r = await httpsReceiver(self.keyPem, self.certPem);
    servers.push(r.server);
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url })).status).toBe(201);
    expect((await sds.client.submit('IF-021', [buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId] })])).status).toBe(201);
    const list = await attempts((a) => a.length >= 2);
    expect(list.length).toBeGreaterThanOrEqual(2);
    for (const a of list) {
      expect(a.verdict).toBe('retry');
      expect(a.error).toMatch(/^DEPTH_ZERO_SELF_SIGNED_CERT: self-signed certificate \(the DIP does not trust the webhook receiver's TLS certificate: it trusts public certificate authorities and this environment's CA; .*dip pki issue-server/);
    }
    expect(r.received).toEqual([]);
  });

  it('with a certificate from `dip pki issue-server`: the DIP trusts it, delivers, and presents its client certificate', cliRuns(2), async () => {
    const out = mkdtempSync(join(tmpdir(), 'receiver-tls-'));
    const stderr = await new Promise<string>((done, fail) =>
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pki', 'issue-server', '--dns', 'localhost', '--ip', '127.0.0.1', '--out', out, '--days', '2'], { env: { ...process.env, DIP_DATA_DIR: t.config.dataDir } }, (err, _stdout, e) =>
        err ? fail(new Error(`${err.message}: ${e}`)) : done(e),
      ),
    );
    expect(stderr).toMatch(/serverAuth for localhost, 127\.0\.0\.1/);
    const cert = new x509.X509Certificate(readFileSync(join(out, 'cert.pem'), 'utf8'));
    expect(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages).toEqual([x509.ExtendedKeyUsage.serverAuth]);
    expect(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON()).toEqual([
      { type: 'dns', value: 'localhost' },
      { type: 'ip', value: '127.0.0.1' },
    ]);
    expect(await cert.verify({ publicKey: new x509.X509Certificate(t.dip.pki.ca.certPem).publicKey, signatureOnly: true })).toBe(true);

    const r = await httpsReceiver(readFileSync(join(out, 'key.pem'), 'utf8'), readFileSync(join(out, 'cert.pem'), 'utf8'));
    servers.push(r.server);
    // The queue retrying the self-signed receiver goes on to the new URL at its next attempt.
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: r.url })).status).toBe(201);
    const list = await attempts((a) => a.some((x) => x.verdict === 'delivered'));
    expect(list.find((a) => a.verdict === 'delivered'), JSON.stringify(list)).toMatchObject({ status: 200, error: null });
    expect(r.received.length).toBeGreaterThanOrEqual(1);
    expect(r.received[0]!.clientCertSubject).not.toBeNull();

    const refused = await new Promise<string>((done) =>
      execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'pki', 'issue-server', '--out', out], { env: { ...process.env, DIP_DATA_DIR: t.config.dataDir } }, (_err, _o, e) => done(e)),
    );
    expect(refused).toMatch(/--dns HOST and\/or --ip ADDRESS/);
  });
});
