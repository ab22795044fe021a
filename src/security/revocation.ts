/**
 * Certificate revocation, honoured by every node of a running DIP without a restart.
 *
 * The list of record is in the store every node shares (registry records of kind
 * `revoked-certificate`, one per certificate, keyed by SHA-256 fingerprint: a PostgreSQL table on the
 * cluster backend, SQLite on the embedded one). Files in one node's data directory reached that node
 * only: `<pki>/revoked.json`, the list of record before, is imported into the store at start and at
 * every poll when it appears (an earlier version's CLI during a rolling upgrade), and no longer written. `revokeCertificate()` (`dip pki revoke`, POST /admin/pki/revoke, offboarding)
 * adds to the store and writes `<pki>/crl.pem`, a real X.509 CRL signed by the environment's CA, for
 * anything else that terminates TLS for the DIP (a proxy, a load balancer); every node re-writes its
 * own crl.pem when its list changes.
 *
 * A running DIP re-reads the list (`RevocationWatcher`) on every change the store announces and every
 * revocationPollMs anyway. On a change it
 *  - refuses the revoked certificates in `authenticate()` at once (TLS client certificate or signing
 *    certificate, on every request, kept-alive connections included), and
 *  - issues a CRL from the list with the CA key it holds and installs it in the TLS listener
 *    (`server.setSecureContext()`), so that every NEW connection presenting a revoked certificate is
 *    refused during the handshake.
 * A store that cannot be read at start stops the DIP from starting (no handshake runs without the list);
 * later, it keeps the list in force (revocations are never taken back).
 */
import { X509Certificate } from 'node:crypto';
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../ports/logger.js';
import { RecordConflictError, type RegistryStore } from '../ports/registry.js';
import { writeAtomic } from './files.js';
import { crlNumberOf, crlReasonName, issueCrl, readCertificateAuthority, type KeyAndCert } from './pki.js';
import { certificateInfo } from './signature.js';

/** Where revocations are kept: the registry's versioned records, shared by every node. */
export type RevocationStore = Pick<RegistryStore, 'records' | 'putRecord'>;
const REVOCATION_RECORD = 'revoked-certificate';

/** The list of record before revocations were kept in the store: imported when found (at start, every poll). */
export const legacyRevocationListFile = (pkiDir: string): string => join(pkiDir, 'revoked.json');
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
  /** The CRL number: revocations are only ever added, so their count grows with every change. */
  crlNumber: number;
  entries: RevocationEntry[];
  /** Keys of the records that are not revocation entries (hand-edited, corrupt): not in force, and logged by the watcher. */
  malformed: string[];
}

function isEntry(e: unknown): e is RevocationEntry {
  const v = e as Partial<RevocationEntry> | null;
  return typeof v === 'object' && v !== null && typeof v.fingerprint256 === 'string' && typeof v.serialNumber === 'string';
}

/** Every revoked certificate, oldest first. */
export async function readRevocationList(store: RevocationStore): Promise<RevocationList> {
  const entries: RevocationEntry[] = [];
  const malformed: string[] = [];
  for (const r of await store.records(REVOCATION_RECORD)) {
    if (isEntry(r.doc)) entries.push(r.doc);
    else malformed.push(r.key);
  }
  entries.sort((a, b) => a.revokedAt.localeCompare(b.revokedAt) || a.fingerprint256.localeCompare(b.fingerprint256));
  return { crlNumber: entries.length, entries, malformed };
}

/** Adds one entry; false when the certificate was on the list already. */
async function addEntry(store: RevocationStore, entry: RevocationEntry, by: string): Promise<boolean> {
  try {
    await store.putRecord({ kind: REVOCATION_RECORD, key: entry.fingerprint256, doc: entry, at: Date.parse(entry.revokedAt), by }, 0);
    return true;
  } catch (e) {
    if (e instanceof RecordConflictError) return false;
    throw e;
  }
}

export interface RevokeResult {
  entry: RevocationEntry;
  /** true when the certificate was already on the list (nothing changed). */
  alreadyRevoked: boolean;
  crlFile: string;
}

/**
 * Revokes a certificate issued by the environment's CA (the files in `pkiDir`): adds it to the shared
 * store and re-issues this node's crl.pem. Every running node refuses it at its next read of the list.
 * Idempotent; concurrent revocations are serialised by the store (one version 1 per certificate).
 */
export async function revokeCertificate(pkiDir: string, store: RevocationStore, certPem: string, reason = 'unspecified', now: Date = new Date(), by = 'operator'): Promise<RevokeResult> {
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
  const entry: RevocationEntry = {
    serialNumber: info.serialNumber,
    fingerprint256: info.fingerprint256,
    subject: info.subject,
    dipIds: info.dipIds,
    reason: reason.trim() || 'unspecified',
    revokedAt: now.toISOString(),
  };
  const added = await addEntry(store, entry, by);
  // Re-written when already revoked too: it may have been lost or be out of date. A concurrent revocation
  // (another request, the CLI) may have read an older list and write it after ours: each re-reads the
  // list after writing and writes again until what it wrote is the whole list, so the last write is.
  let list = await readRevocationList(store);
  for (;;) {
    await writeCrl(pkiDir, await crlFor(ca, list, now));
    const after = await readRevocationList(store);
    if (after.crlNumber <= list.crlNumber) break;
    list = after;
  }
  const recorded = added ? entry : (list.entries.find((e) => e.fingerprint256 === info.fingerprint256) ?? entry);
  return { entry: recorded, alreadyRevoked: !added, crlFile: crlFile(pkiDir) };
}

/** A CRL (PEM) for `list`, signed by `ca`. */
export function crlFor(ca: KeyAndCert, list: RevocationList, now: Date = new Date()): Promise<string> {
  return issueCrl(
    ca,
    list.entries.map((e) => ({ serialNumber: e.serialNumber, revokedAt: new Date(e.revokedAt), reason: crlReasonName(e.reason) })),
    { crlNumber: Math.max(1, list.crlNumber), now },
  );
}

/** Writes crl.pem, unless it already holds a newer CRL (a higher number) than `crlPem`. */
async function writeCrl(pkiDir: string, crlPem: string): Promise<void> {
  if ((await crlNumberOfFile(crlFile(pkiDir))) > crlNumberOf(crlPem)) return;
  await writeAtomic(crlFile(pkiDir), crlPem, 0o644);
}

/** The CRL number of the CRL in `file`; 0 when there is none or it cannot be read (it is replaced). */
async function crlNumberOfFile(file: string): Promise<number> {
  try {
    return crlNumberOf(await readFile(file, 'utf8'));
  } catch {
    return 0;
  }
}

/**
 * Moves a revoked.json left by an earlier version into the store (once: the file is renamed
 * revoked.json.imported), so that its revocations reach every node. Each node imports its own; the
 * store keeps one entry per certificate.
 */
export async function importLegacyRevocations(pkiDir: string, store: RevocationStore, logger: Logger): Promise<void> {
  const file = legacyRevocationListFile(pkiDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  const parsed = JSON.parse(text) as { entries?: unknown };
  if (!Array.isArray(parsed.entries) || !parsed.entries.every(isEntry)) throw new Error(`${file} is not an OpenDIP revocation list: fix or remove it (its revocations are not in force)`);
  let added = 0;
  for (const e of parsed.entries) if (await addEntry(store, e, 'revoked.json')) added++;
  // Another process of this node may have moved it first.
  await rename(file, `${file}.imported`).catch((err: unknown) => logger.warn({ err, file }, 'revoked.json could not be renamed after its import; it is imported again (idempotent) at the next start'));
  logger.warn({ file, entries: parsed.entries.length, added }, 'revoked.json imported into the shared store (every node now refuses its certificates); it is no longer read');
}

function oneLine(dn: string): string {
  return dn.split('\n').filter(Boolean).join(', ');
}

// ---------------------------------------------------------------------------------------------
// The running DIP's view

/**
 * The revocation list in force in a running DIP: re-read from the store when it announces a change and
 * every poll, never requiring a restart. A read that fails is logged and the list in force stays.
 */
export class RevocationWatcher {
  private byFingerprint = new Map<string, RevocationEntry>();
  private list: RevocationList = { crlNumber: 0, entries: [], malformed: [] };
  private crl: string | undefined;
  private changes = 0;
  private timer: NodeJS.Timeout | undefined;
  private reloading: Promise<void> | null = null;
  private failing = false;
  private legacyFailing = false;
  private readonly reportedMalformed = new Set<string>();
  private readonly listeners: Array<(crlPem: string) => void> = [];

  private constructor(
    readonly pkiDir: string,
    private readonly store: RevocationStore,
    private readonly ca: KeyAndCert,
    private readonly logger: Logger,
  ) {}

  /** Loads the list (and issues its CRL) before the listener starts, so the first handshake already honours it. */
  static async open(pkiDir: string, store: RevocationStore, ca: KeyAndCert, logger: Logger): Promise<RevocationWatcher> {
    await importLegacyRevocations(pkiDir, store, logger);
    const w = new RevocationWatcher(pkiDir, store, ca, logger);
    // Fail closed: a DIP that started with an empty list would accept revoked certificates until its first
    // successful poll. Only later reads may fail and keep the list in force.
    let list: RevocationList;
    try {
      list = await readRevocationList(store);
    } catch (err) {
      throw new Error(`the revocation list could not be read from the store (${(err as Error).message}): the DIP does not start without it`, { cause: err });
    }
    await w.install(list);
    return w;
  }

  /** The entry revoking the certificate with this SHA-256 fingerprint (UPPER-case hex, no colons), if any. */
  revoked(fingerprint256: string): RevocationEntry | undefined {
    return this.byFingerprint.get(fingerprint256);
  }

  get size(): number {
    return this.byFingerprint.size;
  }

  /** Counts the lists installed: a connection's revocation verdict is looked up again when it moves. */
  generation(): number {
    return this.changes;
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

  /** Re-reads the list from the store. Concurrent calls share one reload. */
  reload(): Promise<void> {
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async doReload(): Promise<void> {
    // A revoked.json written after start (an earlier version's CLI during a rolling upgrade) is imported as at
    // start. One that cannot be imported is logged (once while it stays) and blocks no reload of the store's list.
    await importLegacyRevocations(this.pkiDir, this.store, this.logger).then(
      () => (this.legacyFailing = false),
      (err: unknown) => {
        if (!this.legacyFailing) this.logger.error({ err, file: legacyRevocationListFile(this.pkiDir) }, 'revoked.json could not be imported; its revocations are not in force');
        this.legacyFailing = true;
      },
    );
    let list: RevocationList;
    try {
      list = await readRevocationList(this.store);
    } catch (err) {
      // Logged once per outage, not every poll.
      if (!this.failing) this.logger.error({ err }, 'the revocation list could not be read from the store; keeping the one in force');
      this.failing = true;
      return;
    }
    this.failing = false;
    await this.install(list);
  }

  private async install(list: RevocationList): Promise<void> {
    for (const key of list.malformed) {
      if (this.reportedMalformed.has(key)) continue;
      this.reportedMalformed.add(key);
      this.logger.error({ kind: REVOCATION_RECORD, key }, 'a revocation record in the store is not a revocation entry (fingerprint256 and serialNumber strings): it is NOT in force; fix or re-revoke that certificate');
    }
    // Compared by fingerprint, not count: a list read earlier must never stand for a different one.
    if (list.entries.length === this.byFingerprint.size && list.entries.every((e) => this.byFingerprint.has(fingerprintKey(e)))) return;
    this.list = list;
    this.byFingerprint = new Map(list.entries.map((e) => [fingerprintKey(e), e]));
    this.changes += 1;
    this.logger.info({ revoked: list.entries.length, crlNumber: list.crlNumber }, 'revocation list loaded');
    try {
      const crl = await crlFor(this.ca, this.list);
      if (this.list !== list) return; // a newer list arrived meanwhile; its own reload installs its CRL
      this.crl = crl;
      for (const l of this.listeners) l(crl);
    } catch (err) {
      this.logger.error({ err }, 'could not issue a CRL for the revocation list; revoked certificates are still refused per request');
      return;
    }
    // This node's crl.pem, for a proxy in front of it (the node that revoked wrote its own already).
    await writeCrl(this.pkiDir, this.crl).catch((err: unknown) => this.logger.warn({ err, file: crlFile(this.pkiDir) }, 'crl.pem could not be written; this DIP refuses the revoked certificates all the same'));
  }
}

function fingerprintKey(e: RevocationEntry): string {
  return e.fingerprint256.replace(/:/g, '').toUpperCase();
}
