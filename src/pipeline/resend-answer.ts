import { MSG } from '../domain/response-codes.js';
import { clipHelp } from '../domain/standard-response.js';
import type { Archive } from '../ports/archive.js';
import type { IngestResult } from './ingest.js';

/**
 * A resend refused as a duplicate (MSG1006) names the transaction its reference was accepted under; this
 * adds that transaction's workflow correlation ID. On a workflow-starting channel the DIP generated it and
 * answered it only in the 201 (spec 5.5.5): a sender whose 201 was lost learns it here or never. Read in
 * the main thread, from the archive, whichever thread checked the batch (ingest threads hold no archive).
 */
export async function withOriginalCorrelations(result: IngestResult, archive: Pick<Archive, 'transactionParties' | 'receivedRequest'>, resent?: Buffer): Promise<IngestResult> {
  if (result.status !== 400 || !result.response.messageArray.some(isResentOriginal)) return result;
  const items = resent === undefined ? null : itemsOf(resent);
  const messageArray = await Promise.all(
    result.response.messageArray.map(async (e, i) => {
      if (!isResentOriginal(e) || e.transactionID === null) return e;
      // The refusal stands without it: a store that fails this read must not turn the answer into a 500.
      const parties = await archive.transactionParties(e.transactionID).catch(() => undefined);
      const differs = items?.[i] !== undefined && (await contentDiffers(archive, e.transactionID, items[i])) ? DIFFERS : '';
      return { ...e, correlationID: parties?.correlationId ?? null, help: clipHelp(`${e.help ?? ''}${differs}`) };
    }),
  );
  return { ...result, response: { ...result.response, messageArray } };
}

const DIFFERS = '; its content differs from the message accepted under that reference: the new content was not accepted (send it under a new senderUniqueReference)';

/**
 * Whether a resent item's content differs from the one accepted under its reference (the archived request
 * it came in, the item there with the same reference), S1.senderTimestamp aside (an adapter that retries
 * may stamp it anew). An idempotent adapter takes MSG1006 as "already done": without this, new content sent
 * under an old reference was dropped silently. Read only on this refusal (never on the accept path, which
 * keeps no digest of a message): one archive read per resent item. False when it cannot tell (the original
 * not archived, a store error), and the caller asks only on a channel whose items are not encrypted (with
 * patterns 2 and 3 each send encrypts afresh, so the bytes always differ).
 */
async function contentDiffers(archive: Pick<Archive, 'receivedRequest'>, transactionId: string, item: unknown): Promise<boolean> {
  const request = await archive.receivedRequest(transactionId).catch(() => undefined);
  if (!request) return false;
  const ref = referenceOf(item);
  const original = itemsOf(request.body)?.find((o) => ref !== null && referenceOf(o) === ref);
  return original !== undefined && comparable(original) !== comparable(item);
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

function referenceOf(item: unknown): string | null {
  const ref = (item as Item | null)?.payload?.CommonBlock?.S1?.['senderUniqueReference'];
  return typeof ref === 'string' ? ref : null;
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
