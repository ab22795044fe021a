import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { isSlot } from '../domain/mpan-lookup.js';

/** One row of the bulk format: `mpan,slot,dip_id,effective_from,effective_to` (header first; `to` may be blank). */
export interface LoadRow {
  mpan: string;
  slot: string;
  dipId: string;
  effectiveFrom: string;
  effectiveTo: string | null;
}

export const LOAD_HEADER = 'mpan,slot,dip_id,effective_from,effective_to';

/**
 * Streams a bulk file (or a registration service's export) in batches, so millions of rows never sit in
 * memory at once. A bad row stops the load with its line number and the reason.
 */
export async function* readLoadFile(input: string | Readable, batchSize = 5000): AsyncGenerator<LoadRow[]> {
  const lines = createInterface({ input: typeof input === 'string' ? createReadStream(input) : input, crlfDelay: Infinity });
  let lineNo = 0;
  let batch: LoadRow[] = [];
  for await (const raw of lines) {
    lineNo += 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (lineNo === 1 && line.toLowerCase().replaceAll(' ', '') === LOAD_HEADER) continue;
    const [mpan = '', slot = '', dipId = '', from = '', to = '', ...extra] = line.split(',').map((f) => f.trim());
    const fail = (why: string) => new Error(`line ${lineNo}: ${why} (expected ${LOAD_HEADER})`);
    if (extra.length > 0) throw fail('too many fields');
    if (!/^\d{13}$/.test(mpan)) throw fail(`mpan '${mpan}' is not 13 digits`);
    if (!isSlot(slot)) throw fail(`slot '${slot}' is not one of SUP, LDSO, DS, MS, MDR`);
    if (dipId === '') throw fail('dip_id is empty');
    if (Number.isNaN(Date.parse(from))) throw fail(`effective_from '${from}' is not a date`);
    if (to !== '' && Number.isNaN(Date.parse(to))) throw fail(`effective_to '${to}' is not a date`);
    batch.push({ mpan, slot, dipId, effectiveFrom: new Date(from).toISOString(), effectiveTo: to === '' ? null : new Date(to).toISOString() });
    if (batch.length >= batchSize) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
