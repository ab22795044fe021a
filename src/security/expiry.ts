/**
 * Certificates about to expire: participants' registered certificates and the DIP's own (CA, TLS
 * server, signing, encryption, and any trusted CA files). A running DIP logs them as warnings at start
 * and once a day (src/app.ts); `dip pki expiring` lists them on demand.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Participant } from '../domain/participant.js';
import { ENCRYPTION_CERT_FILE } from './dip-encryption-key.js';
import { PKI_FILES } from './pki.js';
import { certificateInfo, splitPemBundle } from './signature.js';

/** Warn this many days ahead: time to issue, register and roll out a new certificate. */
export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;

/** A certificate and whose it is ('participant 1000000001', 'DIP signing', …). */
export interface OwnedCertificate {
  owner: string;
  certPem: string;
}

export interface ExpiringCertificate {
  owner: string;
  subject: string;
  serialNumber: string;
  fingerprint256: string;
  /** ISO-8601. */
  notAfter: string;
  /** Whole days left, rounded down; negative once expired. */
  daysLeft: number;
}

/** The DIP's own certificates in its PKI directory (those that exist). */
export function dipCertificates(pkiDir: string, trustedCaFiles: readonly string[] = []): OwnedCertificate[] {
  const files: Array<[string, string]> = [
    ['DIP CA', join(pkiDir, PKI_FILES.caCert)],
    ['DIP server (TLS)', join(pkiDir, PKI_FILES.serverCert)],
    ['DIP signing', join(pkiDir, PKI_FILES.signingCert)],
    ['DIP encryption', join(pkiDir, ENCRYPTION_CERT_FILE)],
    ...trustedCaFiles.map((f): [string, string] => [`trusted CA (${f})`, f]),
  ];
  return files.flatMap(([owner, file]) => (existsSync(file) ? [{ owner, certPem: readFileSync(file, 'utf8') }] : []));
}

/** Every registered participant's current certificate. */
export function participantCertificates(participants: readonly Participant[]): OwnedCertificate[] {
  return participants.map((p) => ({ owner: `participant ${p.dipId}`, certPem: p.certificatePem }));
}

/**
 * The certificates that expire within `withinDays` of `now` (or have expired), soonest first. A file
 * holding a bundle counts each certificate in it; anything unreadable is skipped.
 */
export function expiringCertificates(certificates: readonly OwnedCertificate[], withinDays = EXPIRY_WARNING_DAYS, now: Date = new Date()): ExpiringCertificate[] {
  const limit = now.getTime() + withinDays * DAY_MS;
  const found: ExpiringCertificate[] = [];
  for (const { owner, certPem } of certificates) {
    for (const pem of splitPemBundle(certPem)) {
      let info;
      try {
        info = certificateInfo(pem);
      } catch {
        continue;
      }
      const notAfter = info.notAfter.getTime();
      if (notAfter > limit) continue;
      found.push({
        owner,
        subject: info.subject,
        serialNumber: info.serialNumber,
        fingerprint256: info.fingerprint256,
        notAfter: info.notAfter.toISOString(),
        daysLeft: Math.floor((notAfter - now.getTime()) / DAY_MS),
      });
    }
  }
  return found.sort((a, b) => Date.parse(a.notAfter) - Date.parse(b.notAfter));
}

/** Everything the DIP answers for: its own certificates, the trusted CAs, and the participants'. */
export function expiringAll(pkiDir: string, trustedCaFiles: readonly string[], participants: readonly Participant[], withinDays = EXPIRY_WARNING_DAYS): ExpiringCertificate[] {
  return expiringCertificates([...dipCertificates(pkiDir, trustedCaFiles), ...participantCertificates(participants)], withinDays);
}
