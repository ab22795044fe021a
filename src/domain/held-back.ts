/**
 * Why copies for a recipient were held back, in a dead letter's detail: the operator's view keeps it
 * (which certificate, why it was revoked), its sender is told only that much. The recipient's key
 * compromise (its certificate's serial, the revocation reason) is none of the sender's business.
 */
const HELD_BACK = '; held back: ';

/** What the sender reads in place of the reason: in its status message (Return to Sender) and its reports. */
export const HELD_BACK_FOR_SENDER = '; held: the recipient could not be reached securely';

/** The part of a dead letter's detail that says why its copies were held back (it ends the detail). */
export function heldBackDetail(why: string): string {
  return `${HELD_BACK}${why}`;
}

/** A dead letter's detail as its sender reads it: why copies were held back replaced by a fixed text. */
export function detailForSender(detail: string): string {
  const at = detail.indexOf(HELD_BACK);
  return at === -1 ? detail : `${detail.slice(0, at)}${HELD_BACK_FOR_SENDER}`;
}
