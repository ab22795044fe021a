import { dipDateTime } from '../domain/time.js';
import type { PublicationRecord } from '../ports/publications.js';

/**
 * A publication as the APIs answer it and the operator journal records it: its metadata and where to
 * download it (the routes' PUBLICATION_SCHEMA declares it, src/api/publication-download.ts).
 */
export function describePublication(p: PublicationRecord, downloadURI: string): Record<string, unknown> {
  return {
    publicationID: p.id,
    channel: p.channel,
    publicationType: p.publicationType,
    version: p.version,
    publisherDIPID: p.publisherDipId,
    effectiveFrom: p.effectiveFrom,
    effectiveTo: p.effectiveTo,
    format: p.format,
    compression: p.compression,
    fileName: p.fileName,
    description: p.description,
    public: p.public,
    recipients: p.recipients,
    size: p.size,
    sha256: p.sha256,
    publishedAt: dipDateTime(new Date(p.publishedAt)),
    downloadURI,
  };
}

/** A withdrawn publication: its metadata, and who withdrew it (the journal's actor), when and why. */
export function describeWithdrawn(p: PublicationRecord, downloadURI: string): Record<string, unknown> {
  const w = p.withdrawn;
  return { ...describePublication(p, downloadURI), withdrawn: w ? { at: dipDateTime(new Date(w.at)), by: w.by, reason: w.reason } : null };
}
