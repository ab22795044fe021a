import { randomBytes } from 'node:crypto';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Mailer } from '../ports/mailer.js';
import type { MailRecipients, RecipientAnswer } from '../ports/mail-recipients.js';
import { secretHash } from '../security/api-key.js';

/** How long a confirmation link is good; after it, saving a report for the address again sends a new one. */
export const RECIPIENT_LINK_MS = 7 * 24 * 3_600_000;
/**
 * At most this many addresses asked to confirm for one scope in RECIPIENT_ASK_WINDOW_MS (open, confirmed or
 * expired alike): an owner deleting and remaking reports or subscriptions for new tags of one mailbox
 * (victim+1@, victim+2@ …) has the DIP send at most this many confirmations a week (review: mail-bomb).
 */
export const RECIPIENT_ASKS_PER_WINDOW = 10;
export const RECIPIENT_ASK_WINDOW_MS = 7 * 24 * 3_600_000;
/**
 * A token names what it asks for in its prefix, so the page its link opens says so before anything is looked
 * up (a token's hash covers its prefix: one for reports changed to read as alarm notices' confirms nothing).
 */
const TOKEN_PREFIX: Readonly<Record<MailPurpose, string>> = { reports: 'dipmail_', 'alarm notices': 'dipalarm_' };
/** The portal page a confirmation link opens (a page whose button confirms: a mail scanner following links confirms nothing). */
export const CONFIRM_PATH = '/portal/mail/confirm';

/** What an address is asked to agree to receive (fixed words of the confirmation e-mail: nothing of the user's). */
export type MailPurpose = 'reports' | 'alarm notices';

/** The confirmation scope of an alarm subscription's owner's addresses (a participant's DIP ID), apart from saved reports' owners. */
export const alarmScope = (owner: string): string => `alarm:${owner}`;

/** What a confirmation scope's addresses are sent: an alarm subscription owner's notices, or a report owner's reports. */
export const purposeOfScope = (scope: string): MailPurpose => (scope.startsWith('alarm:') ? 'alarm notices' : 'reports');

/** What a confirmation link's token asks for, by its prefix (undefined: no token of ours). */
export const purposeOfToken = (token: string): MailPurpose | undefined => (Object.keys(TOKEN_PREFIX) as MailPurpose[]).find((p) => token.startsWith(TOKEN_PREFIX[p]));

export interface RecipientConfirmationDeps {
  store: MailRecipients;
  mailer: Mailer;
  clock: Clock;
  logger: Logger;
  /** The user portal's base address, for the link. */
  portalUrl(): string;
}

/**
 * Saved reports go only to an address that said it wants them (secrev3 M1: any portal user could have the
 * DIP's sender mail any address daily). The first time an owner names an address, it is sent one
 * confirmation e-mail of fixed text (nothing of the user's: no name, no report name) with a link; nothing
 * else goes there until the link is opened, and no second confirmation until the first expired.
 */
export class RecipientConfirmation {
  constructor(private readonly deps: RecipientConfirmationDeps) {}

  /** Asks `address` to confirm for `scope` unless it did or a request is open; sends the one e-mail when it asks. */
  async ask(scope: string, address: string, what: MailPurpose = 'reports'): Promise<RecipientAnswer> {
    const now = this.deps.clock.now();
    const token = `${TOKEN_PREFIX[what]}${randomBytes(32).toString('base64url')}`;
    const expiresAt = now + RECIPIENT_LINK_MS;
    // The link before anything is recorded: the portal's address is read once. Not known (the portal not
    // listening yet, or not run): no link to send, so nothing is asked (reviewA: a relative link was mailed).
    const base = this.deps.portalUrl();
    if (base === '') {
      this.deps.logger.warn({ scope }, `${what}: no confirmation e-mail sent to an address: the portal's address is not known (onboarding.portalUrl)`);
      return 'unsent';
    }
    const link = `${base}${CONFIRM_PATH}?token=${encodeURIComponent(token)}`;
    const tokenHash = secretHash(token);
    const asked = await this.deps.store.ask({ scope, address: address.toLowerCase(), tokenHash, requestedAt: now, expiresAt, confirmedAt: null }, now, { since: now - RECIPIENT_ASK_WINDOW_MS, max: RECIPIENT_ASKS_PER_WINDOW });
    if (asked === 'limited') this.deps.logger.warn({ scope, limit: RECIPIENT_ASKS_PER_WINDOW }, `${what}: no confirmation e-mail sent: the owner asked for as many new addresses as it may in a week`);
    if (asked !== 'requested') return asked;
    try {
      await this.deps.mailer.send(
        address,
        `OpenDIP: may we e-mail ${what} to this address?`,
        `A user of the Data Integration Platform asked for ${what === 'reports' ? 'a report' : 'alarm notices'} to be e-mailed to this address. Nothing is sent here unless you agree.\n\nTo agree, open this link by ${new Date(expiresAt).toISOString()}:\n\n${link}\n\nIf you did not expect this, ignore this message: no ${what === 'reports' ? 'report' : 'alarm notice'} is sent to this address.\n`,
      );
    } catch (err) {
      // Not left open: an open request would answer every later save `pending` for RECIPIENT_LINK_MS with no e-mail sent (reviewA).
      this.deps.logger.error({ err, scope }, `${what}: the confirmation e-mail to an address could not be sent; nothing is asked of it until it is named again`);
      await this.deps.store.withdraw(tokenHash);
      return 'unsent';
    }
    return asked;
  }

  /** The scope and address a token confirms, or undefined (unknown, used or expired). */
  confirm(token: string): Promise<{ scope: string; address: string } | undefined> {
    if (purposeOfToken(token) === undefined || token.length > 200) return Promise.resolve(undefined);
    return this.deps.store.confirm(secretHash(token), this.deps.clock.now());
  }

  confirmed(scope: string, address: string): Promise<boolean> {
    return this.deps.store.confirmed(scope, address.toLowerCase());
  }
}
