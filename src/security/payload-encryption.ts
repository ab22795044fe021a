import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';

/**
 * Payload encryption for security patterns 2 and 3 (spec 5.2.2): the CustomBlock travels as a JWE in
 * compact serialisation, RSA-OAEP-256 key transport and A256GCM content encryption, to the holder of
 * an X.509 certificate. Standard JOSE (RFC 7516), so a participant's own stack can read and write it.
 */
export const JWE_ALG = 'RSA-OAEP-256';
export const JWE_ENC = 'A256GCM';

/**
 * The protected header's certificate thumbprint (RFC 7516 4.1.8, `x5t#S256`): which of its certificates a
 * recipient holding more than one (a rotation's overlap) decrypts with. A header field a decryptor that
 * does not look for it passes over.
 */
export const JWE_THUMBPRINT = 'x5t#S256';

/** An X.509 certificate's `x5t#S256`: the base64url SHA-256 of its DER. */
export function certificateThumbprint(certificatePem: string): string {
  return createHash('sha256').update(new X509Certificate(certificatePem).raw).digest('base64url');
}

/** What a payload is encrypted to: the certificate's public key and, to name it in the header, its thumbprint. */
export interface EncryptionTarget {
  key: KeyObject;
  /** certificateThumbprint() of the certificate; absent: the header names none. */
  thumbprint?: string;
}

export async function encryptTo(to: KeyObject | EncryptionTarget, plaintext: string): Promise<string> {
  const { key, thumbprint } = 'key' in to ? to : { key: to, thumbprint: undefined };
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg: JWE_ALG, enc: JWE_ENC, cty: 'json', ...(thumbprint === undefined ? {} : { [JWE_THUMBPRINT]: thumbprint }) })
    .encrypt(key);
}

/**
 * Decrypts with whichever of `keys` the JWE is for: the one its header's `x5t#S256` names, or, when it
 * names none, each in turn (the first is the current one). Throws when none opens it.
 */
export async function decryptWithAny(keys: readonly DecryptionKey[], jwe: string): Promise<string> {
  const named = thumbprintOf(jwe);
  const candidates = named === undefined ? keys : keys.filter((k) => k.thumbprint === named);
  if (candidates.length === 0) throw new Error(`its header names the certificate x5t#S256 ${named}, which is not one this DIP decrypts with (GET /certificates/dip gives the one to use)`);
  let failure: unknown;
  for (const k of candidates) {
    try {
      return await decryptWith(k.key, jwe);
    } catch (e) {
      failure = e;
    }
  }
  throw failure;
}

/** A private key to decrypt with, and its certificate's thumbprint (as a JWE header may name it). */
export interface DecryptionKey {
  key: KeyObject;
  thumbprint: string;
}

/** The `x5t#S256` a JWE's protected header names, if any (read without decrypting; not authenticated until it is). */
export function thumbprintOf(jwe: string): string | undefined {
  const value = decodeProtectedHeader(jwe)[JWE_THUMBPRINT];
  return typeof value === 'string' ? value : undefined;
}

export async function decryptWith(key: KeyObject, jwe: string): Promise<string> {
  const { plaintext } = await compactDecrypt(jwe, key, { keyManagementAlgorithms: [JWE_ALG], contentEncryptionAlgorithms: [JWE_ENC] });
  return new TextDecoder().decode(plaintext);
}

/** encryptionKeyOf() with the certificate's thumbprint, for the header. */
export function encryptionTargetOf(certificatePem: string): EncryptionTarget | undefined {
  const key = encryptionKeyOf(certificatePem);
  return key && { key, thumbprint: certificateThumbprint(certificatePem) };
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
