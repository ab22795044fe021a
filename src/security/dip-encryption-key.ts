/**
 * The DIP's encryption key for security pattern 2: senders encrypt the CustomBlock to its certificate
 * (GET /certificates/dip, `encryption`). Renewed by the rule of the DIP's other leaves (ensurePki: missing,
 * not chaining to the CA, or within RENEW_BEFORE_MS of expiry, at start) or on the operator's command
 * (`dip pki rotate-encryption`). A renewal keeps the key it replaces for decryption during an overlap:
 * a sender that fetched the old certificate, and messages already encrypted to it, still decrypt. A
 * running DIP picks up a rotation by polling the certificate file, as it does the signing key.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import { writeAtomic } from './files.js';
import { KeyFileWatcher } from './key-file-watcher.js';
import { certificateThumbprint, type DecryptionKey } from './payload-encryption.js';
import { issueEncryptionCertificate, LEAF_DAYS, leafUsable, RENEW_BEFORE_MS, type KeyAndCert } from './pki.js';

const KEY = 'dip-encryption.key.pem';
const CERT = 'dip-encryption.cert.pem';
/** The key and certificate a renewal replaced, and until when it still decrypts (JSON, mode 0600). */
const PREVIOUS = 'dip-encryption.previous.json';
/** The certificate file, for the expiry report. */
export const ENCRYPTION_CERT_FILE = CERT;
/** How long `dip pki rotate-encryption` keeps the previous key for decryption unless told. */
export const ENCRYPTION_OVERLAP_DAYS = 7;

export interface PreviousEncryptionKey extends KeyAndCert {
  /** End of the overlap, epoch ms: from then on it decrypts nothing. */
  validUntil: number;
}

export interface EncryptionKeys {
  current: KeyAndCert;
  previous: PreviousEncryptionKey | null;
}

function readPair(pkiDir: string): KeyAndCert | undefined {
  const keyFile = join(pkiDir, KEY);
  const certFile = join(pkiDir, CERT);
  if (!existsSync(keyFile) || !existsSync(certFile)) return undefined;
  return { keyPem: readFileSync(keyFile, 'utf8'), certPem: readFileSync(certFile, 'utf8') };
}

function readPrevious(pkiDir: string): PreviousEncryptionKey | null {
  const file = join(pkiDir, PREVIOUS);
  if (!existsSync(file)) return null;
  const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<PreviousEncryptionKey>;
  return typeof v.keyPem === 'string' && typeof v.certPem === 'string' && typeof v.validUntil === 'number' ? { keyPem: v.keyPem, certPem: v.certPem, validUntil: v.validUntil } : null;
}

/** The keys on disk: the current pair and the previous one (null once its overlap ended). */
export function readEncryptionKeys(pkiDir: string, now: number): EncryptionKeys | undefined {
  const current = readPair(pkiDir);
  if (!current) return undefined;
  const previous = readPrevious(pkiDir);
  return { current, previous: previous && previous.validUntil > now ? previous : null };
}

/**
 * Replaces the encryption key with a new one from the CA, keeping the one replaced (if any) for
 * decryption until `overlapUntil` (never past its own certificate's expiry). Written previous first and
 * the certificate last: a running DIP that sees the new certificate finds its key and the previous one.
 */
async function renew(pkiDir: string, ca: KeyAndCert, replaced: KeyAndCert | undefined, overlapUntil: number, validDays: number): Promise<EncryptionKeys> {
  const previous = replaced ? { ...replaced, validUntil: Math.min(overlapUntil, Date.parse(new X509Certificate(replaced.certPem).validTo)) } : null;
  const keys = { current: await issueEncryptionCertificate(ca, { commonName: 'OpenDIP encryption', validDays }), previous };
  await writeEncryptionKeys(pkiDir, keys);
  return keys;
}

/**
 * Writes the keys into the PKI directory: the previous first (or none: an earlier key still in its
 * overlap must not outlive a rotation that keeps none, a compromise) and the certificate last, so a
 * running DIP that sees the new certificate finds its key and the previous one.
 */
export async function writeEncryptionKeys(pkiDir: string, keys: EncryptionKeys): Promise<void> {
  if (keys.previous) await writeAtomic(join(pkiDir, PREVIOUS), `${JSON.stringify(keys.previous)}\n`, 0o600);
  else await rm(join(pkiDir, PREVIOUS), { force: true });
  await writeAtomic(join(pkiDir, KEY), keys.current.keyPem, 0o600);
  await writeAtomic(join(pkiDir, CERT), keys.current.certPem, 0o644);
}

/**
 * The DIP's encryption keys, made from the environment's CA on first use and renewed (at start) when the
 * certificate is missing, no longer chains to the CA, or expires within RENEW_BEFORE_MS: the rule of the
 * DIP's other leaves (ensurePki). A renewal ahead of expiry keeps the old key for decryption until its
 * certificate expires, so senders still encrypting to it are read; one that no longer chains (a new CA)
 * keeps nothing.
 */
export async function ensureEncryptionKey(pkiDir: string, ca: KeyAndCert, now: number = Date.now()): Promise<EncryptionKeys> {
  const keys = readEncryptionKeys(pkiDir, now);
  const caCert = new X509Certificate(ca.certPem);
  if (keys && leafUsable(keys.current, caCert, now)) return keys;
  // About to expire, but its key matches, it chains to this CA and has not expired (leafUsable with the
  // renewal window moved back): it decrypts for the rest of its life.
  const replaced = keys && leafUsable(keys.current, caCert, now - RENEW_BEFORE_MS) ? keys.current : undefined;
  return renew(pkiDir, ca, replaced, Infinity, LEAF_DAYS);
}

/**
 * `dip pki rotate-encryption`: a new encryption key now, the one it replaces decrypting for
 * `overlapDays` more (0: none, e.g. after a compromise).
 */
export async function rotateEncryptionKey(pkiDir: string, ca: KeyAndCert, opts: { validDays?: number; overlapDays?: number; now?: number } = {}): Promise<EncryptionKeys> {
  const now = opts.now ?? Date.now();
  const replaced = readPair(pkiDir);
  const overlapDays = opts.overlapDays ?? ENCRYPTION_OVERLAP_DAYS;
  return renew(pkiDir, ca, overlapDays > 0 ? replaced : undefined, now + overlapDays * 86_400_000, opts.validDays ?? LEAF_DAYS);
}

interface EncryptionKeysInForce {
  keys: EncryptionKeys;
  decryption: Array<DecryptionKey & { validUntil: number }>;
}

function inForce(keys: EncryptionKeys): EncryptionKeysInForce {
  const one = (kc: KeyAndCert, validUntil: number) => ({ key: createPrivateKey(kc.keyPem), thumbprint: certificateThumbprint(kc.certPem), validUntil });
  return { keys, decryption: [one(keys.current, Infinity), ...(keys.previous ? [one(keys.previous, keys.previous.validUntil)] : [])] };
}

/**
 * The encryption keys in force in a running DIP: re-read when the certificate file changes (polled), so
 * `dip pki rotate-encryption` needs no restart. The previous key decrypts until its overlap ends. Its
 * listeners are told after a switch (ingest threads are told to switch too).
 */
export class EncryptionKeyWatcher extends KeyFileWatcher<EncryptionKeysInForce> {
  constructor(pkiDir: string, initial: EncryptionKeys, private readonly clock: Clock, logger: Logger) {
    super(
      {
        files: [join(pkiDir, CERT)],
        what: 'encryption key or certificate',
        read: (held) => {
          const keys = readEncryptionKeys(pkiDir, clock.now());
          if (!keys || keys.current.certPem === held.keys.current.certPem) return null;
          const next = inForce(keys);
          logger.info({ previousUntil: keys.previous ? new Date(keys.previous.validUntil).toISOString() : null }, 'DIP encryption key rotated: senders are given the new certificate; the previous key decrypts until the overlap ends');
          return next;
        },
      },
      inForce(initial),
      clock,
      logger,
    );
  }

  /** The certificate senders encrypt to now (GET /certificates/dip). */
  certificatePem(): string {
    return this.inForce().keys.current.certPem;
  }

  /** The keys that decrypt now, the current first. */
  decryptionKeys(): DecryptionKey[] {
    const now = this.clock.now();
    return this.inForce().decryption.filter((k) => k.validUntil > now);
  }
}
