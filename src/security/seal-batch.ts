import { inflateRawSync } from 'node:zlib';
import type { ReceivedRequest } from '../ports/archive.js';
import type { ValueSealer } from '../ports/backend.js';
import type { AcceptedBatch, SealedBatch } from '../ports/message-log.js';
import { deflatedBeforeSealing } from './at-rest.js';

/**
 * The stored forms of a batch: its raw request and each outbound copy compressed and sealed, each MPAN
 * indexed. Pure (no I/O, no shared state but the sealer's keys), so it runs before the store's write and
 * on any thread that holds the same sealer: an ingest worker can take this work off the writer.
 */
export function sealParts(batch: AcceptedBatch, sealer: ValueSealer): SealedBatch {
  return {
    raw: sealRawRequest(batch, sealer),
    // The outbound copies are read back for delivery, replay and reports: each is compressed on its own.
    outbound: batch.messages.map((m) => sealOutbound(m.outbound, m.transactionId, sealer)),
    mpan: batch.messages.map((m) => (m.mpan === null ? null : sealer.index(m.mpan))),
  };
}

/**
 * The raw request as stored, kept for non-repudiation and rarely read (openReceivedRequest reads it back).
 * LZ4 (in the sealer, as for the copies) stores an IF-021 batch in 440-530 bytes a message; deflate at
 * level 1 made it 290-360 but cost 10-16 us a message against 3-4 (`npx tsx bench/hotpath.ts raw|deflate 2000 10`).
 */
export function sealRawRequest(batch: Pick<AcceptedBatch, 'rawRequest' | 'channel' | 'senderDipId' | 'receivedAt'>, sealer: ValueSealer): Buffer | string {
  return sealer.seal(batch.rawRequest, 'rawRequest', rawRequestRecord(batch), COMPRESS);
}

const COMPRESS = { compress: true } as const;

/** An outbound copy as stored: compressed, and sealed bound to its message (its transaction ID). */
export function sealOutbound(outbound: string, transactionId: string, sealer: ValueSealer): Buffer | string {
  return sealer.seal(outbound, 'outbound', transactionId, COMPRESS);
}

/**
 * What a raw request is bound to: its batch, by what the batch row holds on every engine (the row's id is
 * the engine's own, and a batch has no transaction ID of its own). receivedAt may come back from a driver
 * as a string of digits: Number() makes the key the same either way.
 */
export function rawRequestRecord(batch: { channel: string; senderDipId: string; receivedAt: number | string }): string {
  return JSON.stringify([batch.senderDipId, batch.channel, Number(batch.receivedAt)]);
}

/** The batch with its stored forms attached (see AcceptedBatch.sealed); the store writes them as they are. */
export function sealBatch(batch: AcceptedBatch, sealer: ValueSealer): AcceptedBatch {
  return { ...batch, sealed: sealParts(batch, sealer) };
}

/** What a batch row holds of its request: see sealParts (raw) and AcceptedBatch.signatureHeaders. */
export interface StoredRequest {
  channel: string;
  senderDipId: string;
  receivedAt: number;
  raw: Buffer | string;
  signature: string;
}

/**
 * The request as its sender sent it, from its stored form. Raw requests sealed in format 1 (before
 * 2026-12-01) were deflated by the writer before sealing; format 2 ones the sealer compressed itself.
 * The signature column held the X-DIP-* headers alone before it held `{ url, headers }`.
 */
export function openReceivedRequest(row: StoredRequest, sealer: ValueSealer): ReceivedRequest {
  const stored = typeof row.raw === 'string' ? Buffer.from(row.raw) : row.raw;
  const opened = sealer.open(stored, 'rawRequest', rawRequestRecord(row));
  const body = deflatedBeforeSealing(stored) ? inflateRawSync(opened) : opened;
  const parsed = JSON.parse(row.signature) as { url?: unknown; headers?: unknown } & Record<string, string | string[]>;
  const kept = typeof parsed.url === 'string' && typeof parsed.headers === 'object' && parsed.headers !== null;
  const signature = kept ? { url: parsed.url as string, headers: parsed.headers as Record<string, string | string[]> } : { url: null, headers: parsed };
  return { channel: row.channel, senderDipId: row.senderDipId, receivedAt: row.receivedAt, body, signature };
}
