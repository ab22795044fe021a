import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issueEncryptionCertificate, type KeyAndCert } from './pki.js';
import { verifyChain } from './signature.js';

const KEY = 'dip-encryption.key.pem';
const CERT = 'dip-encryption.cert.pem';
/** The certificate file, for the expiry report. */
export const ENCRYPTION_CERT_FILE = CERT;

/**
 * The DIP's encryption key pair for security pattern 2, made from the environment's CA on first use,
 * and made again when it no longer chains to the CA (the CA was replaced, or the certificate expired).
 */
export async function ensureEncryptionKey(pkiDir: string, ca: KeyAndCert): Promise<KeyAndCert> {
  const keyFile = join(pkiDir, KEY);
  const certFile = join(pkiDir, CERT);
  if (existsSync(keyFile) && existsSync(certFile)) {
    const existing = { keyPem: readFileSync(keyFile, 'utf8'), certPem: readFileSync(certFile, 'utf8') };
    if (verifyChain(existing.certPem, [ca.certPem])) return existing;
  }
  const issued = await issueEncryptionCertificate(ca, { commonName: 'OpenDIP encryption', validDays: 825 });
  writeFileSync(keyFile, issued.keyPem, { mode: 0o600 });
  writeFileSync(certFile, issued.certPem);
  return issued;
}
