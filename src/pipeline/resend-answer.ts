import { MSG } from '../domain/response-codes.js';
import type { Archive } from '../ports/archive.js';
import type { IngestResult } from './ingest.js';

/**
 * A resend refused as a duplicate (MSG1006) names the transaction its reference was accepted under; this
 * adds that transaction's workflow correlation ID. On a workflow-starting channel the DIP generated it and
 * answered it only in the 201 (spec 5.5.5): a sender whose 201 was lost learns it here or never. Read in
 * the main thread, from the archive, whichever thread checked the batch (ingest threads hold no archive).
 */
export async function withOriginalCorrelations(result: IngestResult, archive: Pick<Archive, 'transactionParties'>): Promise<IngestResult> {
  if (result.status !== 400 || !result.response.messageArray.some(isResentOriginal)) return result;
  const messageArray = await Promise.all(
    result.response.messageArray.map(async (e) => {
      if (!isResentOriginal(e) || e.transactionID === null) return e;
      // The refusal stands without it: a store that fails this read must not turn the answer into a 500.
      const parties = await archive.transactionParties(e.transactionID).catch(() => undefined);
      return { ...e, correlationID: parties?.correlationId ?? null };
    }),
  );
  return { ...result, response: { ...result.response, messageArray } };
}

function isResentOriginal(e: IngestResult['response']['messageArray'][number]): boolean {
  return e.message === MSG.duplicateReference && e.transactionID !== null && e.correlationID === null;
}
