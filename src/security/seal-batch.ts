import type { ValueSealer } from '../ports/backend.js';
import type { AcceptedBatch, SealedBatch } from '../ports/message-log.js';

/**
 * The stored forms of a batch: its raw request and each outbound copy compressed and sealed, each MPAN
 * indexed. Pure (no I/O, no shared state but the sealer's keys), so it runs before the store's write and
 * on any thread that holds the same sealer: an ingest worker can take this work off the writer.
 */
export function sealParts(batch: AcceptedBatch, sealer: ValueSealer): SealedBatch {
  return {
    // The raw request is kept for non-repudiation and rarely read. LZ4 (in the sealer, as for the copies)
    // stores an IF-021 batch in 440-530 bytes a message; deflate at level 1 made it 290-360 but cost
    // 10-16 us a message against 3-4 (`npx tsx bench/hotpath.ts raw|deflate 2000 10`).
    raw: sealer.seal(batch.rawRequest, { compress: true }),
    // The outbound copies are read back for delivery, replay and reports: each is compressed on its own.
    outbound: batch.messages.map((m) => sealer.seal(m.outbound, { compress: true })),
    mpan: batch.messages.map((m) => (m.mpan === null ? null : sealer.index(m.mpan))),
  };
}

/** The batch with its stored forms attached (see AcceptedBatch.sealed); the store writes them as they are. */
export function sealBatch(batch: AcceptedBatch, sealer: ValueSealer): AcceptedBatch {
  return { ...batch, sealed: sealParts(batch, sealer) };
}
