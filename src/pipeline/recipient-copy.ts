import type { KeyObject } from 'node:crypto';
import { copyRoles } from '../domain/channel.js';
import { hiddenPaths, obfuscate } from '../domain/obfuscation.js';
import type { QueueRef } from '../ports/message-log.js';
import type { Channel } from './channels.js';
import { encryptedCopy } from './patterns.js';
import type { Registry } from './registry.js';
import { encryptionKeyOf } from '../security/payload-encryption.js';

/**
 * The copy of a message a recipient may see: obfuscated for the capacity routing reached it in (spec
 * 5.5.6; src/domain/channel.ts capacityCode and copyRoles), then, on pattern 2 and 3 channels, with the
 * CustomBlock encrypted for it alone. Every road a message leaves the DIP by (webhook, pull, synchronous
 * replay, requeue, the user portal) goes through here with the capacity its queue entry recorded, so none
 * can hand out the archived copy, nor a copy made for another role the recipient holds.
 */
export class RecipientCopies {
  /** Each recipient's public encryption key, by certificate fingerprint (a rotation brings a new one). */
  private readonly keys = new Map<string, KeyObject | undefined>();

  constructor(
    private readonly channel: (id: string) => Channel | undefined,
    private readonly registry: Pick<Registry, 'participant'>,
  ) {}

  /** The key a pattern 2 payload is encrypted to for this recipient; undefined when it has none usable. */
  recipientKey(dipId: string): KeyObject | undefined {
    const p = this.registry.participant(dipId);
    if (!p) return undefined;
    if (!this.keys.has(p.certificateFingerprint)) this.keys.set(p.certificateFingerprint, encryptionKeyOf(p.certificatePem));
    return this.keys.get(p.certificateFingerprint);
  }

  /**
   * `outbound` is the archived copy (JSON); `capacity` the one its queue entry was routed in (null: an entry
   * queued before capacities were recorded, made for every receiving role as then). Channels the catalogue
   * does not know (status messages) pass as they are.
   */
  copyFor(queue: QueueRef, outbound: string, capacity: string | null): string | Promise<string> {
    const ch = this.channel(queue.channel);
    if (!ch) return outbound;
    let copy = outbound;
    if (Object.keys(ch.obfuscation).length > 0) {
      const roles = copyRoles(ch, this.registry.participant(queue.recipientDipId)?.roles ?? [], capacity);
      const paths = hiddenPaths(ch.obfuscation, roles);
      if (paths.length > 0) copy = JSON.stringify(obfuscate(JSON.parse(outbound) as unknown, paths));
    }
    if (ch.securityPattern === 2 || ch.securityPattern === 3) return encryptedCopy(copy, ch.securityPattern, queue.recipientDipId, this.recipientKey(queue.recipientDipId));
    return copy;
  }
}
