import { X509Certificate } from 'node:crypto';
import { copyRoles } from '../domain/channel.js';
import { hiddenPaths, obfuscate, type ObfuscationRules } from '../domain/obfuscation.js';
import type { Participant } from '../domain/participant.js';
import type { QueueEntry, QueueRef } from '../ports/message-log.js';
import type { Channel } from './channels.js';
import { encryptedCopy, storedPattern, type SecurityPattern } from './patterns.js';

export { CopyUnmakeable } from './patterns.js';
import type { Registry } from './registry.js';
import { encryptionTargetOf, type EncryptionTarget } from '../security/payload-encryption.js';
import type { RevocationEntry } from '../security/revocation.js';

/**
 * A pattern 2 copy that must not be made now: its recipient's registered certificate is revoked or has
 * expired, so nothing may be encrypted to it. Not a failure of the message: the copy waits in its queue
 * for the recipient's new certificate (see RecipientCopies.withheld).
 */
export class CopyWithheld extends Error {}

/**
 * The copies of `entries` for a queue's recipient, in order, up to the first that cannot be made (`failure`:
 * a CopyWithheld must wait, anything else is set aside): every road that hands out queued copies (a webhook
 * call, a pull) hands out only a leading run, since a queue is settled by position.
 */
export async function leadingCopies(make: (queue: QueueRef, source: CopySource) => string | Promise<string>, queue: QueueRef, entries: readonly CopySource[]): Promise<{ copies: string[]; failure: Error | null }> {
  const copies: string[] = [];
  for (const e of entries) {
    try {
      copies.push(await make(queue, e));
    } catch (err) {
      return { copies, failure: err instanceof Error ? err : new Error(String(err)) };
    }
  }
  return { copies, failure: null };
}

/** What a recipient's copy is made from: the stored copy, with what its message and queue entry recorded. */
export type CopySource = Pick<QueueEntry, 'outbound' | 'capacity' | 'securityPattern'>;

/**
 * The security pattern a recipient's copy of a stored message is made for: the one rule every road out
 * (webhook call, pull, replay, requeue, the user portal) follows, README "Changing a channel's pattern".
 * Confidentiality never goes down: a copy is never clearer than the pattern its message was accepted
 * under, nor than the pattern its channel runs now (an operator may opt a channel in or out while messages
 * wait or lie in the archive).
 *   - Accepted under 3 (the sender's per-recipient copies): 3, on whatever pattern the channel runs now;
 *     the DIP holds nothing else to give (and must not hand out the sender's whole map).
 *   - The DIP holds the CustomBlock (accepted under 1 or 2): 2, encrypted by the DIP for the recipient,
 *     when it was accepted under 2 or the channel now runs 2 or 3 (a channel at 3 gets it as pattern 2
 *     does: the DIP cannot make the sender's copies, and the recipient must not get it in clear); else 1.
 * `recorded` null is a message stored before the pattern was recorded: what was stored says 3 (per-
 * recipient copies, EncryptedCustomBlocks) or a CustomBlock, whose 1 or 2 the row cannot tell: the
 * channel's pattern now decides, as above. Messages the DIP makes itself record one too
 * (src/pipeline/made-batch.ts).
 */
export function copyPattern(recorded: SecurityPattern | null, outbound: string, inForce: SecurityPattern): SecurityPattern {
  const accepted = recorded ?? storedPattern(outbound);
  if (accepted === 3) return 3;
  return accepted === 2 || inForce !== 1 ? 2 : 1;
}

/** A recipient's registered certificate as encryption needs it, by fingerprint (a rotation brings a new one). */
interface RecipientCertificate {
  target: EncryptionTarget | undefined;
  notAfter: number;
}

/**
 * The copy of a message a recipient may see: obfuscated for the capacity routing reached it in (spec
 * 5.5.6; src/domain/channel.ts capacityCode and copyRoles), then, on pattern 2 and 3 channels, with the
 * CustomBlock encrypted for it alone. Every road a message leaves the DIP by (webhook, pull, synchronous
 * replay, requeue, the user portal) goes through here with the capacity its queue entry recorded, so none
 * can hand out the archived copy, nor a copy made for another role the recipient holds.
 */
export class RecipientCopies {
  private readonly certificates = new Map<string, RecipientCertificate>();

  constructor(
    private readonly channel: (id: string) => Channel | undefined,
    private readonly registry: Pick<Registry, 'participant'>,
    /** The revocation list in force (src/security/revocation.ts) and the injected clock: a compromised or expired key is never encrypted to. */
    private readonly validity: { revoked(fingerprint256: string): RevocationEntry | undefined; now(): number },
  ) {}

  private certificate(p: Participant): RecipientCertificate {
    let c = this.certificates.get(p.certificateFingerprint);
    if (!c) {
      c = { target: encryptionTargetOf(p.certificatePem), notAfter: Date.parse(new X509Certificate(p.certificatePem).validTo) };
      this.certificates.set(p.certificateFingerprint, c);
    }
    return c;
  }

  /**
   * Whether the recipient's registered certificate can be encrypted to at all (RSA, key usage allowing
   * key encipherment). A revoked or expired one still can: its copies wait for the new one (withheld).
   */
  encryptable(dipId: string): boolean {
    const p = this.registry.participant(dipId);
    return p !== undefined && this.certificate(p).target !== undefined;
  }

  /**
   * Why pattern 2 copies for this recipient are held back now, or null: its registered certificate was
   * revoked (a keyCompromise means whoever holds the key could read them) or has expired. They wait in
   * their queue, in order, until the recipient registers a new certificate (a registration change sweeps
   * the queues) or the channel's staleness limit sets them aside and their senders are told.
   */
  withheld(dipId: string): string | null {
    const invalid = this.invalidity(dipId);
    return invalid === null ? null : `${invalid}: pattern 2 copies for ${dipId} are held until it registers a new certificate (dip participant rotate-cert, or its own POST /participants/{id}/certificate)`;
  }

  /**
   * Why nothing may be encrypted to this recipient's registered certificate by a sender (security pattern
   * 3, where the sender encrypts), or null: the same revocation or expiry that withholds pattern 2 copies.
   * Its certificate is then not handed out, and copies encrypted to it are refused (the sender learns now).
   */
  senderMustNotEncrypt(dipId: string): string | null {
    const invalid = this.invalidity(dipId);
    return invalid === null ? null : `${invalid}: nothing may be encrypted to it; encrypt to the certificate ${dipId} registers next (GET /certificates/participant/${dipId} once it has)`;
  }

  /** The revocation or expiry of the recipient's registered certificate, or null. Asked per pattern 2 copy: words only when there is one. */
  private invalidity(dipId: string): string | null {
    const p = this.registry.participant(dipId);
    if (!p) return null;
    const revoked = this.validity.revoked(p.certificateFingerprint);
    if (revoked) return `the certificate registered for ${dipId} (serial ${revoked.serialNumber}) was revoked at ${revoked.revokedAt} (${revoked.reason})`;
    const { notAfter } = this.certificate(p);
    if (this.validity.now() >= notAfter) return `the certificate registered for ${dipId} expired at ${new Date(notAfter).toISOString()}`;
    return null;
  }

  /**
   * withheld() for a queue's recipient, or null on a channel the catalogue does not know (status messages,
   * whose copies are never encrypted). Whether a given copy is held is its own pattern's business
   * (copyPattern: only a copy the DIP encrypts, 2, needs the recipient's certificate), so this says only
   * that some may be: a queue worker then makes its oldest copy to learn whether it waits (CopyWithheld).
   */
  withheldFor(queue: QueueRef): string | null {
    return this.channel(queue.channel) ? this.withheld(queue.recipientDipId) : null;
  }

  /**
   * What a pattern 2 payload is encrypted to for this recipient now: its registered certificate, the newest
   * (a rotation's previous one only still signs), named in the JWE header by its thumbprint so that the
   * recipient picks the right key. Undefined when it has none usable (none at all, revoked, expired).
   */
  recipientKey(dipId: string): EncryptionTarget | undefined {
    const p = this.registry.participant(dipId);
    if (!p || this.withheld(dipId) !== null) return undefined;
    return this.certificate(p).target;
  }

  /**
   * `outbound` is the archived copy (JSON); `capacity` the one its queue entry was routed in (null: an entry
   * queued before capacities were recorded, made for every receiving role as then); the copy is made for
   * the pattern copyPattern gives (never clearer than the message was accepted under, nor than the channel
   * runs now). Channels the catalogue does not know
   * (status messages) pass as they are. Throws CopyWithheld for a pattern 2 copy whose recipient's
   * certificate is revoked or expired, and CopyUnmakeable when no copy can be made for the recipient.
   * `rules`: the obfuscation rules to make it with instead of the channel's now (the user portal shows a
   * delivered copy as made with the rules in force when it was delivered).
   */
  copyFor(queue: QueueRef, { outbound, capacity, securityPattern }: CopySource, rules?: ObfuscationRules): string | Promise<string> {
    const ch = this.channel(queue.channel);
    if (!ch) return outbound;
    const pattern = copyPattern(securityPattern, outbound, ch.securityPattern);
    const obfuscation = rules ?? ch.obfuscation;
    let copy = outbound;
    if (Object.keys(obfuscation).length > 0) {
      const roles = copyRoles(ch, this.registry.participant(queue.recipientDipId)?.roles ?? [], capacity);
      const paths = hiddenPaths(obfuscation, roles);
      if (paths.length > 0) copy = JSON.stringify(obfuscate(JSON.parse(outbound) as unknown, paths));
    }
    if (pattern === 2) {
      const withheld = this.withheld(queue.recipientDipId);
      if (withheld !== null) throw new CopyWithheld(withheld);
    }
    if (pattern === 2 || pattern === 3) return encryptedCopy(copy, pattern, queue.recipientDipId, this.recipientKey(queue.recipientDipId));
    return copy;
  }
}
