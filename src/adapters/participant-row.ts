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

export function registeredParticipant(r: ParticipantRow): RegisteredParticipant {
  return {
    participant: {
      dipId: r.dipId,
      roles: r.roles.split(',').filter(Boolean),
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
