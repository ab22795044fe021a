import type { RegisteredParticipant } from '../ports/registry.js';

/** A participant as both SQL stores keep it: one row, roles comma-separated, the rotated-out certificate inline. */
export interface ParticipantRow {
  dipId: string;
  roles: string;
  organisation: string;
  certificatePem: string;
  certificateFingerprint: string;
  apiKeyHash: string;
  createdAt: number;
  connectionProvider: string | null;
  previousCertificatePem: string | null;
  previousCertificateFingerprint: string | null;
  previousValidUntil: number | null;
}

/**
 * The roles a stored roles column holds, in its canonical form: a non-canonical value (an empty piece, as
 * 'SUP,' or '') reads as the roles it names, and a compare-and-set compares these, not the raw text, or
 * every change to such a row would be refused as changed meanwhile.
 */
export const storedRoles = (column: string): string[] => column.split(',').filter(Boolean);
export const canonicalRoles = (roles: string[]): string => roles.filter(Boolean).join(',');

export function registeredParticipant(r: ParticipantRow): RegisteredParticipant {
  return {
    participant: {
      dipId: r.dipId,
      roles: storedRoles(r.roles),
      organisation: r.organisation,
      certificatePem: r.certificatePem,
      certificateFingerprint: r.certificateFingerprint,
      createdAt: r.createdAt,
      connectionProvider: r.connectionProvider,
      ...(r.previousCertificatePem !== null && r.previousCertificateFingerprint !== null && r.previousValidUntil !== null
        ? { previous: { certificatePem: r.previousCertificatePem, certificateFingerprint: r.previousCertificateFingerprint, validUntil: r.previousValidUntil } }
        : {}),
    },
    apiKeyHash: r.apiKeyHash,
  };
}
