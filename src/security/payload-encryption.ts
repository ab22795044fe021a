import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, type KeyObject } from 'node:crypto';
import { CompactEncrypt, compactDecrypt } from 'jose';

/**
 * Payload encryption for security patterns 2 and 3 (spec 5.2.2): the CustomBlock travels as a JWE in
 * compact serialisation, RSA-OAEP-256 key transport and A256GCM content encryption, to the holder of
 * an X.509 certificate. Standard JOSE (RFC 7516), so a participant's own stack can read and write it.
 */
export const JWE_ALG = 'RSA-OAEP-256';
export const JWE_ENC = 'A256GCM';

export async function encryptTo(certificate: KeyObject, plaintext: string): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(plaintext)).setProtectedHeader({ alg: JWE_ALG, enc: JWE_ENC, cty: 'json' }).encrypt(certificate);
}

export async function decryptWith(key: KeyObject, jwe: string): Promise<string> {
  const { plaintext } = await compactDecrypt(jwe, key, { keyManagementAlgorithms: [JWE_ALG], contentEncryptionAlgorithms: [JWE_ENC] });
  return new TextDecoder().decode(plaintext);
}

/**
 * The public key to encrypt to, if the certificate may be used for it: RSA, and key usage (when the
 * certificate states one) allowing key encipherment. Undefined otherwise.
 */
export function encryptionKeyOf(certificatePem: string): KeyObject | undefined {
  const cert = new X509Certificate(certificatePem);
  if (cert.publicKey.asymmetricKeyType !== 'rsa') return undefined;
  const usage = new x509.X509Certificate(certificatePem).getExtension(x509.KeyUsagesExtension);
  if (usage && (usage.usages & x509.KeyUsageFlags.keyEncipherment) === 0) return undefined;
  return cert.publicKey;
}
