import { MSG } from '../domain/response-codes.js';
import { clipHelp } from '../domain/standard-response.js';
import type { Archive } from '../ports/archive.js';
import type { IngestResult } from './ingest.js';

/**
 * How many bytes of archived requests one answer opens at most to compare a resend's content with what was
 * accepted (README, "Answers to a submission"). The first request is always opened, so with the default body
 * limit (10 MiB) a resend of one accepted batch is always compared; past the budget (a resend gathered from
 * many earlier batches) the remaining items get the plain MSG1006, without the comparison: opening a request
 * decrypts and decompresses it whole and parses it on the main thread, which one answer must not hold for long.
 */
export const RESEND_COMPARISON_BUDGET_BYTES = 32 * 1024 * 1024;

/** How many transactionParties reads one answer has outstanding at once: a 1000-item resend must not take the store's pool. */
const PARTIES_AT_ONCE = 16;

/**
 * A resend refused as a duplicate (MSG1006) names the transaction its reference was accepted under; this
 * adds that transaction's workflow correlation ID. On a workflow-starting channel the DIP generated it and
 * answered it only in the 201 (spec 5.5.5): a sender whose 201 was lost learns it here or never. Read in
 * the main thread, from the archive, whichever thread checked the batch (ingest threads hold no archive).
 */
export async function withOriginalCorrelations(
  result: IngestResult,
  archive: Pick<Archive, 'transactionParties' | 'receivedRequest'>,
  resent?: Buffer,
  budgetBytes = RESEND_COMPARISON_BUDGET_BYTES,
): Promise<IngestResult> {
  if (result.status !== 400 || !result.response.messageArray.some(isResentOriginal)) return result;
  const entries = result.response.messageArray;
  const items = resent === undefined ? null : itemsOf(resent);
  // One at a time, in item order: the items of a resent batch all name the same original request, opened
  // once for all of them (opened concurrently per item, a 200-item resend held the main thread for 50 s).
  const originals = new OriginalItems(archive, budgetBytes);
  const differs: boolean[] = [];
  for (const [i, e] of entries.entries()) {
    if (isResentOriginal(e) && items?.[i] !== undefined) differs[i] = await originals.differs(e.transactionID!, items[i]);
  }
  const messageArray: typeof entries = [];
  for (let at = 0; at < entries.length; at += PARTIES_AT_ONCE) {
    const chunk = entries.slice(at, at + PARTIES_AT_ONCE).map(async (e, j) => {
      if (!isResentOriginal(e) || e.transactionID === null) return e;
      // The refusal stands without it: a store that fails this read must not turn the answer into a 500.
      const parties = await archive.transactionParties(e.transactionID).catch(() => undefined);
      return { ...e, correlationID: parties?.correlationId ?? null, help: clipHelp(`${e.help ?? ''}${differs[at + j] === true ? DIFFERS : ''}`) };
    });
    messageArray.push(...(await Promise.all(chunk)));
  }
  return { ...result, response: { ...result.response, messageArray } };
}

const DIFFERS = '; its content differs from the message accepted under that reference: the new content was not accepted (send it under a new senderUniqueReference)';

/**
 * Whether a resent item's content differs from the one accepted under its reference (the archived request
 * it came in, the item there with the same sender and reference), S1.senderTimestamp aside (an adapter that
 * retries may stamp it anew). An idempotent adapter takes MSG1006 as "already done": without this, new
 * content sent under an old reference was dropped silently. Read only on this refusal (never on the accept
 * path, which keeps no digest of a message). False when it cannot tell (the original not archived, a store
 * error, the budget spent), and the caller asks only on a channel whose items are not encrypted (with
 * patterns 2 and 3 each send encrypts afresh, so the bytes always differ).
 *
 * Each request opened is indexed whole by sender and reference. A reference is accepted once per sender and
 * a batch is accepted whole, so an item found in a request already opened (for another refused item) is the
 * one accepted under its reference: its own transaction's request is not opened again.
 */
class OriginalItems {
  private readonly accepted = new Map<string, unknown>();
  private openedBytes = 0;
  private storeFailed = false;

  constructor(
    private readonly archive: Pick<Archive, 'receivedRequest'>,
    private readonly budgetBytes: number,
  ) {}

  async differs(transactionId: string, item: unknown): Promise<boolean> {
    const key = keyOf(item);
    if (key === null) return false;
    if (!this.accepted.has(key) && !this.storeFailed && this.openedBytes < this.budgetBytes) await this.open(transactionId);
    const original = this.accepted.get(key);
    return original !== undefined && comparable(original) !== comparable(item);
  }

  private async open(transactionId: string): Promise<void> {
    const request = await this.archive.receivedRequest(transactionId).catch(() => {
      // A store that fails once is not asked again for this answer: N failing reads are no better than one.
      this.storeFailed = true;
      return undefined;
    });
    if (!request) return;
    this.openedBytes += request.body.length;
    for (const o of itemsOf(request.body) ?? []) {
      const key = keyOf(o);
      if (key !== null && !this.accepted.has(key)) this.accepted.set(key, o);
    }
  }
}

function itemsOf(body: Buffer): unknown[] | null {
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    return Array.isArray(parsed) ? parsed : null;
  } catch {
    return null;
  }
}

type Item = { payload?: { CommonBlock?: { S1?: Record<string, unknown> } } };

/** What a reference is unique under: the message's sender (a provider's batch may carry several) and its reference. */
function keyOf(item: unknown): string | null {
  const s1 = (item as Item | null)?.payload?.CommonBlock?.S1;
  const ref = s1?.['senderUniqueReference'];
  const sender = s1?.['senderDIPID'];
  return typeof ref === 'string' ? `${typeof sender === 'string' ? sender : ''}|${ref}` : null;
}

/** The item as compared: keys in order at every level, S1.senderTimestamp left out. */
function comparable(item: unknown): string {
  const copy = structuredClone(item) as Item;
  delete copy.payload?.CommonBlock?.S1?.['senderTimestamp'];
  return JSON.stringify(copy, (_key: string, value: unknown) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

function isResentOriginal(e: IngestResult['response']['messageArray'][number]): boolean {
  return e.message === MSG.duplicateReference && e.transactionID !== null && e.correlationID === null;
}
