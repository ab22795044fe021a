/**
 * What a recipient's webhook answered, read as the published callback defines it: a StandardResponse
 * whose `messageArray` has an entry per message, with its `transactionID` and a `message` such as
 * `MSG0000 - Success` or `RCP1021 - Msg Mandatory Data Item Missing`. Only relayed or acted on, never
 * trusted: whatever does not read as that shape is ignored.
 */

export interface AnswerEntry {
  transactionId: string | null;
  /** `CODE - text`, at most 200 characters. */
  message: string;
  help: string | null;
}

/** A response code and its text (`MSG1001 - Schema Failure`). */
const CODED = /^[A-Z]{2,3}\d{4} - /;
/** The codes that say the message was taken: the DIP's own and the recipient-side one (DI-999). */
const SUCCESS = /^(?:MSG0000|RCP0000)\b/;

/** A field of a JSON object read whatever the case of its name (ingress does not enforce the case of field names). */
function field(o: Record<string, unknown>, name: string): unknown {
  if (name in o) return o[name];
  const lower = name.toLowerCase();
  const key = Object.keys(o).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : o[key];
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The response code of an entry (`RCP1021` of `RCP1021 - Msg Mandatory Data Item Missing`). */
export function answerCode(entry: AnswerEntry): string {
  return entry.message.slice(0, entry.message.indexOf(' - '));
}

/** The entries of a StandardResponse that carry a coded message, in order; null when the answer is not one. */
export function answerEntries(answer: string): AnswerEntry[] | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(answer);
  } catch {
    return null;
  }
  const array = isObject(parsed) ? field(parsed, 'messageArray') : undefined;
  if (!Array.isArray(array)) return null;
  const entries: AnswerEntry[] = [];
  for (const e of array) {
    if (!isObject(e)) continue;
    const message = field(e, 'message');
    if (typeof message !== 'string' || !CODED.test(message)) continue;
    const id = field(e, 'transactionID');
    const help = field(e, 'help');
    entries.push({ transactionId: typeof id === 'string' ? id : null, message: message.slice(0, 200), help: typeof help === 'string' ? help.slice(0, 400) : null });
  }
  return entries;
}

/**
 * The messages a 207 (Some Messages Created) answer says were not taken: those of `transactionIds` whose
 * entry carries a code other than success, with that entry. Messages it does not name, or names with a
 * success code, were taken. Null when the answer is no StandardResponse naming any of the messages: it
 * cannot say which failed.
 */
export function refusedInMultiStatus(answer: string, transactionIds: readonly string[]): Map<string, AnswerEntry> | null {
  // Matched whatever the case: the DIP's IDs are upper-case, and a recipient that folds them still names them.
  const sent = new Map(transactionIds.map((id) => [id.toUpperCase(), id]));
  const named = (answerEntries(answer) ?? []).flatMap((e) => {
    const id = e.transactionId === null ? undefined : sent.get(e.transactionId.toUpperCase());
    return id === undefined ? [] : [{ id, entry: e }];
  });
  if (named.length === 0) return null;
  const refused = new Map<string, AnswerEntry>();
  for (const { id, entry } of named) if (isRefusal(entry) && !refused.has(id)) refused.set(id, entry);
  return refused;
}

/** Whether an entry's code says its message was not taken (any code but success). */
export function isRefusal(entry: AnswerEntry): boolean {
  return !SUCCESS.test(entry.message);
}

/**
 * The recipient's verdict on one message in its answer: the first entry with a failure code naming it
 * (whatever the case of the ID), else the first naming no message (transactionID null: about the call, and a
 * message is set aside on an answer that names none only after it was sent alone). An entry about another
 * message, or one saying success, is no verdict on it.
 */
export function refusalOf(answer: string, transactionId: string): AnswerEntry | undefined {
  const id = transactionId.toUpperCase();
  const refusals = (answerEntries(answer) ?? []).filter(isRefusal);
  return refusals.find((e) => e.transactionId?.toUpperCase() === id) ?? refusals.find((e) => e.transactionId === null);
}
