/**
 * Revocation for client certificates from external CAs (`trustedCaFiles`, e.g. the DCC SWIKI PKI a PRD
 * environment uses, spec 8.4): the CAs' own CRLs (`crlFiles`, PEM or DER, fetched by the operator's job)
 * are installed in the participant listener's TLS context, so a revoked certificate is refused at the
 * handshake, and re-read when a file changes, without a restart (as the built-in CA's revocation list is).
 *
 * Node installs a CRL with X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL: OpenSSL then wants a current
 * CRL from every CA in a client's chain. So every CA in `trustedCaFiles` must have one here (checked at the
 * start, which otherwise fails nothing and then refuses every handshake), and a CRL past its nextUpdate
 * makes OpenSSL refuse every certificate that CA issued: fail-closed. Chosen, not suffered: a stale CRL
 * means revocations published since (a supplier's stolen key) are unknown to the DIP, which carries
 * personal data between every participant in the market. The alarm `crl-stale` fires from a quarter of a
 * CRL's validity before its nextUpdate (SWIKI publishes well before: a CRL that old means the fetch job
 * broke), so the operator has that long to mend the fetch before anything is refused.
 *
 * OpenSSL checks a CRL at the handshake only: a connection kept alive since is not cut. So the watcher also
 * keeps the CRLs' entries by (issuer, serial), and authentication refuses them per request (revokedBy), as
 * it refuses the certificates `dip pki revoke` lists by fingerprint: a CRL entry names no fingerprint.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from '../ports/logger.js';
import type { Clock } from '../ports/clock.js';
import type { RevocationEntry } from './revocation.js';

/** A certificate an external CA's CRL lists, as much of it as the CRL tells. */
export type CrlRevocation = Pick<RevocationEntry, 'serialNumber' | 'reason' | 'revokedAt'>;

/** One CRL as installed: who issued it and until when it is current. */
export interface LoadedCrl {
  file: string;
  issuer: string;
  thisUpdate: number;
  /** Epoch ms; null when the CRL names none (then it never goes stale). */
  nextUpdate: number | null;
  /**
   * The CRL's entries, keyed by revocationKey(the signing CA's subject as node:crypto writes it, serial).
   * Keyed by the CA that verified the CRL rather than by the CRL's issuer text: a peer certificate's issuer
   * reads the same through node:crypto (one OpenSSL rendering of the same name), whatever string types
   * either certificate encodes it in.
   */
  entries: ReadonlyMap<string, CrlRevocation>;
  pem: string;
}

/**
 * The key a revoked certificate is found by: its issuer (the name as node:crypto's X509Certificate
 * writes it, `issuer` of the certificate, `subject` of its CA) and its serial in upper-case hex without
 * leading zeros (node writes a serial with them to a whole byte, a CRL's DER integer with a sign byte).
 */
export function revocationKey(issuer: string, serialNumber: string): string {
  return `${issuer}\u0000${serialAsNumber(serialNumber)}`;
}

const serialAsNumber = (hex: string): string => hex.toUpperCase().replace(/^0+(?=.)/, '');

function entriesOf(crl: x509.X509Crl, caSubject: string): Map<string, CrlRevocation> {
  const entries = new Map<string, CrlRevocation>();
  for (const e of crl.entries) {
    // removeFromCRL un-holds a certificate (in a delta CRL): it lists one that is no longer revoked.
    const reason = e.reason ?? x509.X509CrlReason.unspecified;
    if (reason === x509.X509CrlReason.removeFromCRL) continue;
    // Named by the RFC 5280 reason (as `dip pki revoke` records one) and the CRL it is in.
    const serialNumber = serialAsNumber(e.serialNumber);
    entries.set(revocationKey(caSubject, serialNumber), { serialNumber, revokedAt: e.revocationDate.toISOString(), reason: `${(x509.X509CrlReason[reason] as string | undefined) ?? `reason code ${reason}`}, in the CRL of ${crl.issuer}` });
  }
  return entries;
}

const PEM_CRL = /-----BEGIN X509 CRL-----[\s\S]+?-----END X509 CRL-----/g;

const toPem = (der: ArrayBuffer): string => `-----BEGIN X509 CRL-----\n${Buffer.from(der).toString('base64').match(/.{1,64}/g)?.join('\n') ?? ''}\n-----END X509 CRL-----\n`;

/**
 * The CRLs in `crlFiles` (PEM, one or more blocks, or one DER CRL per file), each verified against the CA
 * in `caPems` that issued it; throws naming the file when one is unreadable, signed by no trusted CA, or a
 * trusted CA has no CRL.
 */
export async function readCrlFiles(crlFiles: readonly string[], caPems: readonly string[]): Promise<LoadedCrl[]> {
  const cas = caPems.map((pem) => ({ ca: new x509.X509Certificate(pem), subject: new X509Certificate(pem).subject }));
  const loaded: LoadedCrl[] = [];
  for (const name of crlFiles) {
    const file = resolve(name);
    let bytes: Buffer;
    try {
      bytes = readFileSync(file);
    } catch (e) {
      throw new Error(`crlFiles: cannot read ${file}: ${(e as Error).message}`, { cause: e });
    }
    const text = bytes.toString('latin1');
    const blocks: Array<string | Buffer> = text.includes('-----BEGIN') ? (text.match(PEM_CRL) ?? []) : [bytes];
    if (blocks.length === 0) throw new Error(`crlFiles: ${file} holds no X509 CRL (PEM "X509 CRL" blocks or one DER CRL)`);
    for (const [i, block] of blocks.entries()) {
      let crl: x509.X509Crl;
      try {
        crl = new x509.X509Crl(typeof block === 'string' ? block : new Uint8Array(block));
      } catch (e) {
        throw new Error(`crlFiles: CRL ${i + 1} in ${file} is not readable: ${(e as Error).message}`, { cause: e });
      }
      const issuer = cas.find(({ ca }) => ca.subject === crl.issuer);
      if (!issuer || !(await crl.verify({ publicKey: issuer.ca.publicKey }))) {
        throw new Error(`crlFiles: CRL ${i + 1} in ${file} (issuer ${crl.issuer}) is not signed by a CA in trustedCaFiles`);
      }
      loaded.push({ file, issuer: crl.issuer, thisUpdate: crl.thisUpdate.getTime(), nextUpdate: crl.nextUpdate?.getTime() ?? null, entries: entriesOf(crl, issuer.subject), pem: toPem(crl.rawData) });
    }
  }
  const missing = cas.map(({ ca }) => ca).filter((ca) => !loaded.some((c) => c.issuer === ca.subject));
  if (missing.length > 0) {
    // OpenSSL would refuse every handshake through such a CA ("unable to get certificate CRL").
    throw new Error(`crlFiles: no CRL for the trusted CA ${missing.map((ca) => ca.subject).join('; ')} (with crlFiles set, every CA in trustedCaFiles needs a current CRL)`);
  }
  return loaded;
}

/** A CRL at or past the point the `crl-stale` alarm fires (see the module comment). */
export interface StaleCrl {
  issuer: string;
  file: string;
  nextUpdate: number;
  expired: boolean;
  /** When it became stale: three quarters into its validity. */
  since: number;
}

/** The CRLs past three quarters of their validity (thisUpdate to nextUpdate) at `now`, or expired. */
export function staleCrls(crls: readonly LoadedCrl[], now: number): StaleCrl[] {
  return crls.flatMap((c) => {
    if (c.nextUpdate === null) return [];
    const warnFrom = c.nextUpdate - (c.nextUpdate - c.thisUpdate) / 4;
    return now >= warnFrom ? [{ issuer: c.issuer, file: c.file, nextUpdate: c.nextUpdate, expired: now >= c.nextUpdate, since: warnFrom }] : [];
  });
}

/** The external CAs' CRLs in force in a running DIP: re-read when a file changes (polled). A broken file is logged and the CRLs in force stay. */
export class ExternalCrlWatcher {
  private crls: LoadedCrl[] = [];
  /** Every current CRL's entries in one map: looked up per request. */
  private revokedEntries: ReadonlyMap<string, CrlRevocation> = new Map();
  private changes = 0;
  private changeKey = '';
  private cancel: (() => void) | undefined;
  private reloading: Promise<void> | null = null;
  private readonly listeners: Array<(crlPems: string[]) => void> = [];

  private constructor(
    private readonly files: readonly string[],
    private readonly caPems: readonly string[],
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Loads the CRLs before the listener starts; an unusable set stops the start with the reason. */
  static async open(files: readonly string[], caPems: readonly string[], clock: Clock, logger: Logger): Promise<ExternalCrlWatcher> {
    const w = new ExternalCrlWatcher(files, caPems, clock, logger);
    w.changeKey = w.key();
    w.install(await readCrlFiles(files, caPems));
    return w;
  }

  /** The CRLs in force, one PEM each (node's tls `crl` option reads one CRL per array element). */
  crlPems(): string[] {
    return this.crls.map((c) => c.pem);
  }

  /**
   * The entry of a current CRL listing the certificate with this issuer (node:crypto's `issuer` of it)
   * and serial, if any: authentication's check of a kept-alive connection, whose handshake was before.
   */
  revokedBy(issuer: string, serialNumber: string): CrlRevocation | undefined {
    return this.revokedEntries.get(revocationKey(issuer, serialNumber));
  }

  /** Counts the CRL sets installed: a connection's revocation verdict is looked up again when it moves. */
  generation(): number {
    return this.changes;
  }

  /** Called with the new CRLs whenever a file changed and read well. */
  onCrl(listener: (crlPems: string[]) => void): void {
    this.listeners.push(listener);
  }

  /** For the `crl-stale` alarm. */
  stale(): StaleCrl[] {
    return staleCrls(this.crls, this.clock.now());
  }

  start(pollMs: number): void {
    this.cancel = this.clock.every(pollMs, () => void this.reload());
  }

  stop(): void {
    this.cancel?.();
  }

  /** Re-reads the files if any changed. Concurrent calls share one reload. */
  reload(): Promise<void> {
    this.reloading ??= this.doReload().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private key(): string {
    return this.files
      .map((f) => {
        try {
          const s = statSync(f);
          // A fetch job replacing the file by rename makes a new inode even within one mtime tick.
          return `${s.ino}:${s.mtimeMs}:${s.size}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }

  private async doReload(): Promise<void> {
    const key = this.key();
    if (key === this.changeKey) return;
    this.changeKey = key; // a broken set is logged once, not every poll
    let crls: LoadedCrl[];
    try {
      crls = await readCrlFiles(this.files, this.caPems);
    } catch (err) {
      this.logger.error({ err }, 'the external CAs\' CRLs could not be read again; the ones in force stay installed');
      return;
    }
    this.install(crls);
    const pems = this.crlPems();
    for (const l of this.listeners) l(pems);
  }

  private install(crls: LoadedCrl[]): void {
    this.crls = crls;
    this.revokedEntries = new Map(crls.flatMap((c) => [...c.entries]));
    this.changes += 1;
    this.logger.info({ crls: this.crls.map((c) => ({ issuer: c.issuer, file: c.file, revoked: c.entries.size, nextUpdate: c.nextUpdate === null ? null : new Date(c.nextUpdate).toISOString() })) }, 'external CAs\' CRLs loaded');
    for (const s of this.stale()) {
      if (s.expired) this.logger.error({ issuer: s.issuer, file: s.file, nextUpdate: new Date(s.nextUpdate).toISOString() }, 'an external CA\'s CRL is past its nextUpdate: every certificate that CA issued is refused at the handshake until a current CRL is fetched');
    }
  }
}
