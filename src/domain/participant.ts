/** A market participant as the DIP knows it: one DIP ID, the roles it holds, the certificate it signs with. */
export interface Participant {
  dipId: string;
  roles: string[];
  organisation: string;
  certificatePem: string;
  /** SHA-256 fingerprint of the registered certificate (hex, upper case). */
  certificateFingerprint: string;
  /** The DIP Connection Provider this participant nominated to connect for it, if any. */
  connectionProvider: string | null;
  createdAt: number;
  /**
   * The certificate a rotation replaced: still accepted for signing until `validUntil` (epoch ms), so a
   * participant can switch its systems over one by one (`dip participant rotate-cert --overlap-days`).
   */
  previous?: PreviousCertificate;
}

export interface PreviousCertificate {
  certificatePem: string;
  /** SHA-256 fingerprint (hex, upper case), as certificateFingerprint. */
  certificateFingerprint: string;
  /** End of the overlap, epoch ms. */
  validUntil: number;
}

/** DIP IDs are 10 characters (DT-006); roles 3-5 upper-case letters (DT-009). */
export const DIP_ID_PATTERN = /^[0-9A-Z]{10}$/i;
export const ROLE_PATTERN = /^[A-Z]{3,5}$/;

/**
 * What the DIP keeps about a participant beside its registration: the optional roles and channels it
 * signed up for itself, the API key a rotation replaced (valid until the overlap ends), and, once it is
 * rescinded, what it was (its history stays for audit after it is offboarded).
 */
export interface ParticipantProfile {
  dipId: string;
  optionalRoles: string[];
  /** Channels it opted into (channels whose settings allow opting in): it receives every message there. */
  channels: string[];
  previousApiKey: { hash: string; validUntil: number } | null;
  rescinded: { at: number; by: string; roles: string[]; organisation: string; certificateFingerprint: string } | null;
  /**
   * Suspended by an operator (spec 5.12.2 "Manage User"): its calls are refused and its queues held until it
   * is reactivated; its registration, keys and certificates stay. Absent in profiles written before.
   */
  suspended?: Suspension | null;
  /**
   * Where the participant's administrators are e-mailed maintenance notices (spec 5.13.5): its first
   * administrator's address, set when an operator creates it or approves its application; changed or
   * cleared (null: they opted out) on the user portal's Maintenance page. Absent: no address known.
   */
  maintenanceEmail?: string | null;
}

export interface Suspension {
  at: number;
  by: string;
  reason: string;
}

export const emptyProfile = (dipId: string): ParticipantProfile => ({ dipId, optionalRoles: [], channels: [], previousApiKey: null, rescinded: null });
