/**
 * The TLS key and certificate the DIP's listeners serve (participant, anonymous, portals), replaced without
 * a restart. Whoever renews them (an operator's tooling, or ensurePki at a start of another process over the
 * same folder) writes <dataDir>/pki/server.key.pem and server.cert.pem; once the two are a usable pair the
 * watcher switches, and each listener installs them for its next handshakes (tls.Server.setSecureContext:
 * connections already open keep the one they began with). A pair that is not usable keeps the one in force,
 * and the log says why (KeyFileWatcher).
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { KeyFileWatcher } from './key-file-watcher.js';
import { PKI_FILES, type KeyAndCert } from './pki.js';
import { LISTENER_TLS } from './tls-policy.js';

/** What a listener serves: the pair in force now, and word when it is replaced. */
export interface ListenerCertificate {
  inForce(): KeyAndCert;
  onChange(listener: () => void): void;
}

export class ServerCertificateWatcher extends KeyFileWatcher<KeyAndCert> {
  constructor(pkiDir: string, ca: KeyAndCert, initial: KeyAndCert, clock: Clock, logger: Logger) {
    const keyFile = join(pkiDir, PKI_FILES.serverKey);
    const certFile = join(pkiDir, PKI_FILES.serverCert);
    super(
      {
        // Both: an operator may replace either first, and a pair is re-read when the second one lands.
        files: [keyFile, certFile],
        what: 'TLS server key or certificate',
        read: (held) => {
          const pair = { keyPem: readFileSync(keyFile, 'utf8'), certPem: readFileSync(certFile, 'utf8') };
          if (pair.keyPem === held.keyPem && pair.certPem === held.certPem) return null;
          const cert = usableServerPair(pair, new X509Certificate(ca.certPem), clock.now());
          logger.info(
            { previousSerial: new X509Certificate(held.certPem).serialNumber, serial: cert.serialNumber, notAfter: cert.validTo },
            'DIP TLS server certificate renewed: every listener serves it from the next handshake',
          );
          return pair;
        },
      },
      initial,
      clock,
      logger,
    );
  }
}

/** The pair's certificate if the listeners may serve it; throws saying why not (participants would refuse it, or TLS could not use it). */
function usableServerPair(pair: KeyAndCert, ca: X509Certificate, now: number): X509Certificate {
  const cert = new X509Certificate(pair.certPem);
  if (!cert.checkPrivateKey(createPrivateKey(pair.keyPem))) throw new Error(`the key is not the certificate's (serial ${cert.serialNumber})`);
  // Participants trust the environment's CA only: they would refuse the handshake (and ensurePki replaces one at the next start).
  if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) throw new Error(`the certificate (serial ${cert.serialNumber}, issuer ${cert.issuer}) is not issued by the environment's CA`);
  if (now < Date.parse(cert.validFrom) || now >= Date.parse(cert.validTo)) throw new Error(`the certificate (serial ${cert.serialNumber}) is not valid now: ${cert.validFrom} to ${cert.validTo}`);
  return cert;
}

/** A listener's secure context for a pair: the DIP's TLS policy with it (the participant listener adds its CAs and CRL). */
export const listenerContext = (pair: KeyAndCert) => ({ key: pair.keyPem, cert: pair.certPem, ...LISTENER_TLS });

/**
 * Installs the pair in force in `server` whenever it is replaced, for the next handshakes. `context` is the
 * listener's whole secure context for a pair: setSecureContext replaces every option (ciphers, CAs, CRL),
 * not only the key and certificate.
 */
export function serveRenewedCertificate(
  server: { setSecureContext(options: SecureContextOptions): void },
  certificate: ListenerCertificate,
  context: (pair: KeyAndCert) => SecureContextOptions,
  listener: string,
  logger: Logger,
): void {
  certificate.onChange(() => {
    try {
      server.setSecureContext(context(certificate.inForce()));
    } catch (err) {
      logger.error({ err, listener }, 'the renewed TLS certificate could not be installed in this listener; it serves the one before until restarted');
    }
  });
}
