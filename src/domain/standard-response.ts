import { MSG, type MsgText } from './response-codes.js';
import { dipDateTime } from './time.js';

/** One entry of the published StandardResponse.messageArray: every field present, null when unknown. */
export interface ResponseEntry {
  transactionID: string | null;
  senderUniqueReference: string | null;
  correlationID: string | null;
  sentTimestamp: string;
  senderID: string;
  recipientID: string | null;
  DIPConnectionProviderID: string | null;
  message: MsgText;
  help: string | null;
  serviceTicketURL: string | null;
}

export interface StandardResponse {
  messageArray: ResponseEntry[];
  timestamp: string;
}

/** The published limits: message up to 200 characters, help up to 500. */
export const HELP_MAX = 500;

export function clipHelp(help: string | null): string | null {
  if (help === null || help.length <= HELP_MAX) return help;
  return `${help.slice(0, HELP_MAX - 1)}…`;
}

/**
 * The help of an item that was right in a batch refused whole for others (a batch of messages, of status
 * messages): which items failed, counted from 0, the first ten named.
 */
export function refusedWholeHelp(failing: readonly number[]): string {
  let which: string;
  if (failing.length === 1) which = `item ${failing[0]}`;
  else {
    const shown = failing.length > 10 ? failing.slice(0, 10) : failing.slice(0, -1);
    const rest = failing.length > 10 ? `${failing.length - 10} more` : String(failing.at(-1));
    which = `items ${shown.join(', ')} and ${rest}`;
  }
  return `not accepted: the batch is refused whole because ${which} failed (items are counted from 0)`;
}

/**
 * The help of a batch (of messages, of status messages) holding more than `maxBatchMessages` items,
 * refused whole (413, MSG1001) before any item is judged.
 */
export function batchTooLargeHelp(count: number, max: number, what: 'messages' | 'status messages'): string {
  return `the batch holds ${count} ${what}; the limit is ${max}`;
}

export interface EntryFields {
  transactionID?: string | null;
  /** This entry's logical recipient, when it is not the answer's (a connection provider's item: the participant it sent for). */
  recipientID?: string;
  senderUniqueReference?: string | null;
  correlationID?: string | null;
  DIPConnectionProviderID?: string | null;
  message: MsgText;
  help?: string | null;
}

/** DT-995N, the published form of a sender unique reference (up to 200 characters). */
const SENDER_REFERENCE = /^S-(?:(?:IF|REP)-)?\d{3,4}-[0-9a-fA-F]{10}-[A-Z]{3,5}-\d{8}-[a-zA-Z0-9]+$/;

/** A refused item's reference is echoed only in its published form: anything else would break the answer's schema. */
const echoable = (ref: string | null | undefined): string | null => (ref && ref.length <= 200 && SENDER_REFERENCE.test(ref) ? ref : null);

export function standardResponse(now: Date, dipId: string, recipientId: string | null, entries: EntryFields[]): StandardResponse {
  const ts = dipDateTime(now);
  return {
    messageArray: entries.map((e) => ({
      transactionID: e.transactionID ?? null,
      // An accepted item's reference passed the schema already.
      senderUniqueReference: e.message === MSG.success ? (e.senderUniqueReference ?? null) : echoable(e.senderUniqueReference),
      correlationID: e.correlationID ?? null,
      sentTimestamp: ts,
      senderID: dipId,
      recipientID: e.recipientID ?? recipientId,
      DIPConnectionProviderID: e.DIPConnectionProviderID ?? null,
      message: e.message,
      help: clipHelp(e.help ?? null),
      serviceTicketURL: null,
    })),
    timestamp: ts,
  };
}
