/**
 * TLS 1.2 on every listener the DIP opens to the network (participant, anonymous, portals) takes only
 * forward-secret (ECDHE) key exchange with AEAD ciphers (NCSC TLS guidance): a captured session cannot be
 * read later with the server's key, and no CBC/SHA-1 suite is offered. Node's default list also takes RSA
 * key exchange (AES256-GCM-SHA384, AES256-SHA) and ECDHE with CBC-SHA1. TLS 1.3 is unchanged.
 */
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { startTestDip, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/** The cipher the listener chose, or the handshake's error code. */
function handshake(port: number, o: { ciphers?: string; maxVersion: tls.SecureVersion; who?: TestParticipant; ca: string }): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: o.ca,
      maxVersion: o.maxVersion,
      ...(o.ciphers ? { ciphers: o.ciphers } : {}),
      ...(o.who ? { cert: o.who.credentials.certPem, key: o.who.credentials.keyPem } : {}),
    });
    socket.once('secureConnect', () => {
      const chosen = `${socket.getProtocol() ?? ''} ${socket.getCipher().standardName}`;
      socket.destroy();
      resolve(chosen);
    });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(`refused ${e.code ?? e.message}`));
  });
}

describe('TLS cipher suites of the listeners', () => {
  let t: TestDip;
  let sup: TestParticipant;
  beforeAll(async () => {
    t = await startTestDip({ publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, enabled: true, host: '127.0.0.1', port: 0 } } });
    sup = await t.participant('1000000001', ['SUP']);
  });
  afterAll(async () => t?.close());

  const listeners = () => [
    { name: 'participant', port: Number(new URL(t.dip.url).port), who: sup },
    { name: 'anonymous', port: t.dip.publicPort!, who: undefined },
    { name: 'portal', port: Number(new URL(t.dip.portalUrl).port), who: undefined },
  ];

  it.each([['AES256-GCM-SHA384'], ['AES128-GCM-SHA256'], ['AES256-SHA'], ['ECDHE-RSA-AES256-SHA'], ['ECDHE-RSA-AES128-SHA256']])('refuses a TLS 1.2 client offering only %s', async (cipher) => {
    for (const l of listeners()) {
      expect(await handshake(l.port, { ciphers: cipher, maxVersion: 'TLSv1.2', who: l.who, ca: t.dip.pki.ca.certPem }), l.name).toMatch(/^refused /);
    }
  });

  it('refuses a TLS 1.2 renegotiation the client starts, on every listener', async () => {
    for (const l of listeners()) {
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect(
          { host: '127.0.0.1', port: l.port, servername: 'localhost', ca: t.dip.pki.ca.certPem, maxVersion: 'TLSv1.2', ...(l.who ? { cert: l.who.credentials.certPem, key: l.who.credentials.keyPem } : {}) },
          () => socket.renegotiate({ rejectUnauthorized: true }, (err) => resolve(err ? `refused ${(err as NodeJS.ErrnoException).code ?? err.message}` : 'renegotiated')),
        );
        socket.once('error', (e: NodeJS.ErrnoException) => resolve(`refused ${e.code ?? e.message}`));
      });
      expect(outcome, l.name).toBe('refused ERR_SSL_NO_RENEGOTIATION');
    }
  });

  it('takes TLS 1.2 with ECDHE and AES-GCM or ChaCha20-Poly1305, and TLS 1.3', async () => {
    for (const l of listeners()) {
      const ca = t.dip.pki.ca.certPem;
      expect(await handshake(l.port, { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256', maxVersion: 'TLSv1.2', who: l.who, ca }), l.name).toBe('TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256');
      expect(await handshake(l.port, { ciphers: 'ECDHE-RSA-CHACHA20-POLY1305', maxVersion: 'TLSv1.2', who: l.who, ca }), l.name).toBe('TLSv1.2 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256');
      expect(await handshake(l.port, { maxVersion: 'TLSv1.3', who: l.who, ca }), l.name).toMatch(/^TLSv1\.3 TLS_/);
    }
  });
});
