/**
 * Certificate revocation, honoured by a running DIP without a restart.
 *
 * The list of record is `<pki>/revoked.json` (serial number, SHA-256 fingerprint, subject, DIP IDs,
 * reason and time of each revoked certificate). `revokeCertificate()` (the `dip pki revoke` command)
 * adds to it and also writes `<pki>/crl.pem`, a real X.509 CRL signed by the environment's CA, for
 * anything else that terminates TLS for the DIP (a proxy, a load balancer).
 *
 * A running DIP polls revoked.json (`RevocationWatcher`). On a change it
 *  - refuses the revoked certificates in `authenticate()` at once (TLS client certificate or signing
 *    certificate, on every request, kept-alive connections included), and
 *  - issues a CRL from the list with the CA key it holds and installs it in the TLS listener
 *    (`server.setSecureContext()`), so that every NEW connection presenting a revoked certificate is
 *    refused during the handshake.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../ports/logger.js';
import { writeAtomic } from './files.js';
import { crlReasonName, issueCrl, readCertificateAuthority, type KeyAndCert } from './pki.js';
import { certificateInfo } from './signature.js';

export const revocationListFile = (pkiDir: string): string => join(pkiDir, 'revoked.json');
export const crlFile = (pkiDir: string): string => join(pkiDir, 'crl.pem');

export interface RevocationEntry {
  /** UPPER-case hex, no colons (as CertificateInfo.serialNumber). */
  serialNumber: string;
  /** SHA-256 of the DER certificate, UPPER-case hex, no colons (as CertificateInfo.fingerprint256). */
  fingerprint256: string;
  subject: string;
  dipIds: string[];
  /** Free text; an RFC 5280 reason name (keyCompromise, superseded, cessationOfOperation, …) also goes into the CRL. */
  reason: string;
  /** ISO-8601. */
  revokedAt: string;
}

export interface RevocationList {
  version: 1;
  /** Incremented on every change; the CRL number of crl.pem. */
  crlNumber: number;
  updatedAt: string | null;
  entries: RevocationEntry[];
}

const EMPTY: RevocationList = { version: 1, crlNumber: 0, updatedAt: null, entries: [] };

/** Parses revoked.json; throws with the reason when it is not a revocation list. */
export function parseRevocationList(text: string): RevocationList {
  const v = JSON.parse(text) as Partial<RevocationList>;
  if (typeof v !== 'object' || v === null || v.version !== 1 || !Array.isArray(v.entries)) {
    throw new Error('not an OpenDIP revocation list (expected {"version": 1, "entries": [...]})');
  }
  for (const e of v.entries) {
    if (typeof e?.fingerprint256 !== 'string' || typeof e.serialNumber !== 'string') {
      throw new Error('every entry needs serialNumber and fingerprint256');
    }
  }
  return { version: 1, crlNumber: Number(v.crlNumber) || 0, updatedAt: v.updatedAt ?? null, entries: v.entries };
}

/** The revocation list in `pkiDir` (empty when there is none yet). */
export async function readRevocationList(pkiDir: string): Promise<RevocationList> {
  let text: string;
  try {
    text = await readFile(revocationListFile(pkiDir), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY, entries: [] };
    throw e;
  }
  return parseRevocationList(text);
}

export interface RevokeResult {
  entry: RevocationEntry;
  /** true when the certificate was already on the list (nothing changed). */
  alreadyRevoked: boolean;
  listFile: string;
  crlFile: string;
}

/**
 * Revokes a certificate issued by the environment's CA (the files in `pkiDir`): adds it to
 * revoked.json and re-issues crl.pem. A running DIP refuses it within its poll interval.
 * Idempotent. Several `dip pki revoke` at once are serialised by a lock file.
 */
export async function revokeCertificate(pkiDir: string, certPem: string, reason = 'unspecified', now: Date = new Date()): Promise<RevokeResult> {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (e) {
    throw new Error(`not a PEM certificate: ${(e as Error).message}`, { cause: e });
  }
  const ca = await readCertificateAuthority(pkiDir);
  const caCert = new X509Certificate(ca.certPem);
  if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) {
    throw new Error(`the certificate (${oneLine(cert.subject)}) was not issued by this environment's CA (${oneLine(caCert.subject)}): there is nothing to revoke`);
  }
  if (cert.fingerprint256 === caCert.fingerprint256) throw new Error('that is the CA certificate itself: replace the PKI instead');
  const info = certificateInfo(certPem);
  return withLock(join(pkiDir, 'revoked.lock'), async () => {
    const list = await readRevocationList(pkiDir);
    const existing = list.entries.find((e) => e.fingerprint256 === info.fingerprint256);
    if (existing) {
      // Re-write the CRL anyway: it may have been lost or be out of date.
      await writeCrl(pkiDir, ca, list, now);
      return { entry: existing, alreadyRevoked: true, listFile: revocationListFile(pkiDir), crlFile: crlFile(pkiDir) };
    }
    const entry: RevocationEntry = {
      serialNumber: info.serialNumber,
      fingerprint256: info.fingerprint256,
      subject: info.subject,
      dipIds: info.dipIds,
      reason: reason.trim() || 'unspecified',
      revokedAt: now.toISOString(),
    };
    const next: RevocationList = { version: 1, crlNumber: list.crlNumber + 1, updatedAt: now.toISOString(), entries: [...list.entries, entry] };
    // The CRL first: a DIP that sees the new list may also look for the CRL.
    await writeCrl(pkiDir, ca, next, now);
    await writeAtomic(revocationListFile(pkiDir), `${JSON.stringify(next, null, 2)}\n`, 0o644);
    return { entry, alreadyRevoked: false, listFile: revocationListFile(pkiDir), crlFile: crlFile(pkiDir) };
  });
}

/** A CRL (PEM) for `list`, signed by `ca`. */
export function crlFor(ca: KeyAndCert, list: RevocationList, now: Date = new Date()): Promise<string> {
  return issueCrl(
    ca,
    list.entries.map((e) => ({ serialNumber: e.serialNumber, revokedAt: new Date(e.revokedAt), reason: crlReasonName(e.reason) })),
    { crlNumber: Math.max(1, list.crlNumber), now },
  );
}

async function writeCrl(pkiDir: string, ca: KeyAndCert, list: RevocationList, now: Date): Promise<void> {
  await writeAtomic(crlFile(pkiDir), await crlFor(ca, list, now), 0o644);
}


async function withLock<T>(lockFile: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  await mkdir(join(lockFile, '..'), { recursive: true });
  for (;;) {
    try {
      const fh = await open(lockFile, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      // A lock left by a crashed process is taken over after 30 s.
      const age = await stat(lockFile).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > 30_000) await rm(lockFile, { force: true });
      else if (Date.now() > deadline) throw new Error(`${lockFile} is held by another process`, { cause: e });
      else await new Promise((r) => setTimeout(r, 50));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lockFile, { force: true });
  }
}

function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

// ---------------------------------------------------------------------------------------------
// The running DIP's view

/**
 * The revocation list in force in a running DIP: re-read when revoked.json changes (polled), never
 * requiring a restart. A broken file is logged and the previous list stays in force.
 */
export class RevocationWatcher {
  private byFingerprint = new Map<string, RevocationEntry>();
  private list: RevocationList = { ...EMPTY, entries: [] };
  private crl: string | undefined;
  private changeKey = '';
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | null = null;
  private readonly listeners: Array<(crlPem: string) => void> = [];

  private constructor(
    readonly pkiDir: string,
    private readonly ca: KeyAndCert,
    private readonly logger: Logger,
  ) {}

  /** Loads the list (and issues its CRL) before the listener starts, so the first handshake already honours it. */
  static async open(pkiDir: string, ca: KeyAndCert, logger: Logger): Promise<RevocationWatcher> {
    const w = new RevocationWatcher(pkiDir, ca, logger);
    await w.reload();
    return w;
  }

  /** The entry revoking the certificate with this SHA-256 fingerprint (UPPER-case hex, no colons), if any. */
  revoked(fingerprint256: string): RevocationEntry | undefined {
    return this.byFingerprint.get(fingerprint256);
  }

  get size(): number {
    return this.byFingerprint.size;
  }

  /** The CRL for the list in force (PEM), or undefined while nothing is revoked. */
  crlPem(): string | undefined {
    return this.crl;
  }

  /** Called with the new CRL whenever the list changes. */
  onCrl(listener: (crlPem: string) => void): void {
    this.listeners.push(listener);
  }

  start(pollMs: number): void {
    this.timer = setInterval(() => void this.reload(), pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Re-reads revoked.json if it changed. Concurrent calls share one reload. */
  reload(): Promise<void> {
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    const file = revocationListFile(this.pkiDir);
    let key: string;
    try {
      const s = statSync(file);
      // The CLI replaces the file by rename: a new inode even within one mtime tick.
      key = `${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch {
      return; // no revocation yet
    }
    if (key === this.changeKey) return;
    let list: RevocationList;
    try {
      list = parseRevocationList(readFileSync(file, 'utf8'));
    } catch (err) {
      this.changeKey = key; // do not log the same broken file every poll
      this.logger.error({ file, err }, 'revocation list is unreadable; keeping the one in force');
      return;
    }
    this.changeKey = key;
    this.list = list;
    this.byFingerprint = new Map(list.entries.map((e) => [e.fingerprint256.replace(/:/g, '').toUpperCase(), e]));
    this.logger.info({ file, revoked: list.entries.length, crlNumber: list.crlNumber }, 'revocation list loaded');
    if (list.entries.length === 0) return;
    try {
      const crl = await crlFor(this.ca, this.list);
      if (this.list !== list) return; // a newer list arrived meanwhile; its own reload installs its CRL
      this.crl = crl;
      for (const l of this.listeners) l(crl);
    } catch (err) {
      this.logger.error({ err }, 'could not issue a CRL for the revocation list; revoked certificates are still refused per request');
    }
  }
}
