/**
 * Addresses that agreed to be sent a kind of the DIP's e-mail for one sender (secrev3 M1): a saved report
 * goes to an address only once the address's holder opened the one confirmation e-mail it was sent. A
 * scope names who asks (a report owner's key), so one owner's confirmed address is not another's.
 */
export interface MailRecipient {
  scope: string;
  /** Lower-case. */
  address: string;
  /** SHA-256 (hex) of the confirmation token; null once confirmed. */
  tokenHash: string | null;
  requestedAt: number;
  /** After this an unconfirmed request is worth nothing (a new one may be sent). */
  expiresAt: number;
  confirmedAt: number | null;
}

/**
 * What asking for an address's confirmation found: confirmed already, a request still open (nothing to
 * send), recorded now (send its token), or `limited`: the scope was asked for as many addresses as it may be
 * in the window (RecipientCap), so nothing is recorded or sent.
 */
export type RecipientAsk = 'confirmed' | 'pending' | 'requested' | 'limited';
/**
 * At most `max` requests recorded for one scope since `since` (rows whose requested_at is in the window,
 * open, confirmed or expired): one owner churning subscriptions to new addresses (tags of one mailbox)
 * cannot have the DIP mail confirmations without end.
 */
export interface RecipientCap {
  since: number;
  max: number;
}
/** What asking did: RecipientAsk, or `unsent`: the confirmation e-mail could not be sent, and nothing stays asked (a later save asks anew). */
export type RecipientAnswer = RecipientAsk | 'unsent';

export interface MailRecipients {
  /** Records `r` as the request for its scope and address unless that address is confirmed or has an unexpired request, or the scope reached `cap` (one write). */
  ask(r: MailRecipient, now: number, cap: RecipientCap): Promise<RecipientAsk>;
  /** Confirms the unexpired request with this token hash: its scope and address, or undefined (unknown, used or expired). */
  confirm(tokenHash: string, now: number): Promise<{ scope: string; address: string } | undefined>;
  /** Whether the address confirmed for the scope. */
  confirmed(scope: string, address: string): Promise<boolean>;
  /** Forgets the unconfirmed request with this token hash (its e-mail could not be sent), so the next ask records a new one. */
  withdraw(tokenHash: string): Promise<void>;
}
