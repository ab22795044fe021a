/**
 * A company's application to use the DIP (spec 5.12.1 "User Onboarding"), made on the user portal without
 * signing in, and what the operator reviewing it is shown: the claim checked against the central register
 * (spec 5.7.1: roles come from the register, never from the claim).
 */
import { ROLE_PATTERN } from './participant.js';
import { rolesAt, type RegisterEntry } from './register.js';

/** What the company claims and who to answer. */
export interface OnboardingClaim {
  companyName: string;
  /** Market Participant IDs it says are its own (DT-027: 4 capital letters). */
  mpids: string[];
  /** DIP roles it says it holds (DT-009). */
  roles: string[];
  contactName: string;
  contactEmail: string;
  /** A PKCS#10 request for its participant certificate: the key stays with the company, the DIP signs it on approval. */
  csrPem: string;
}

/**
 * `unverified`: the contact has not opened the link sent to the address yet (operators do not see it);
 * `pending`: verified, waiting for an operator; `approved` / `rejected`: decided.
 */
export type ApplicationStatus = 'unverified' | 'pending' | 'approved' | 'rejected';

export interface OnboardingApplication extends OnboardingClaim {
  id: string;
  status: ApplicationStatus;
  createdAt: number;
  /** SHA-256 (hex) of the one-time verification token; null once used. */
  verifyTokenHash: string | null;
  /** After this the link is worth nothing and the unverified application may be forgotten. */
  verifyExpiresAt: number;
  verifiedAt: number | null;
  decidedAt: number | null;
  /** The operator's journal actor. */
  decidedBy: string | null;
  /** Why it was rejected (sent to the contact), or null. */
  reason: string | null;
  /** On approval: the participant registered and the contact's portal account. */
  dipId: string | null;
  username: string | null;
}

export const MPID_PATTERN = /^[A-Z]{4}$/;
/**
 * An address a person can be written to, kept simple on purpose (the SMTP conversation is the real test):
 * one '@', a dotted domain, no spaces, quotes, angle brackets or line breaks (nothing that could leave the
 * address in a mail header).
 */
const EMAIL_PATTERN = /^[^\s@<>()[\]",;:\\]{1,64}@[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?(?:\.[A-Z0-9](?:[A-Z0-9-]{0,61}[A-Z0-9])?)+$/i;
/** An address the DIP may write to (EMAIL_PATTERN), at most 254 characters. */
export const isEmailAddress = (s: string): boolean => s.length <= 254 && EMAIL_PATTERN.test(s);
const CSR_PATTERN = /^-----BEGIN CERTIFICATE REQUEST-----\r?\n[A-Za-z0-9+/=\r\n]+-----END CERTIFICATE REQUEST-----\s*$/;
export const MAX_MPIDS = 20;
export const MAX_ROLES = 10;
const MAX_CSR = 8_000;

/** The form's fields as given (text; lists comma- or space-separated). */
export interface ClaimInput {
  companyName: string;
  mpids: string;
  roles: string;
  contactName: string;
  contactEmail: string;
  csrPem: string;
}

export type ClaimField = keyof ClaimInput;

const list = (s: string): string[] => [...new Set(s.split(/[\s,]+/).filter((x) => x !== ''))];
/** Printable text without control characters (they would end up in e-mail and on the operator's pages). */
// eslint-disable-next-line no-control-regex -- control characters are what is refused
const plain = (s: string): boolean => !/[\u0000-\u001f\u007f]/.test(s);

/** The claim, or each field's problem (every one, so the form can say them all at once). */
export function readClaim(input: ClaimInput): { claim: OnboardingClaim } | { problems: Partial<Record<ClaimField, string>> } {
  const problems: Partial<Record<ClaimField, string>> = {};
  const companyName = input.companyName.trim();
  if (companyName.length < 2 || companyName.length > 200 || !plain(companyName)) problems.companyName = 'company name: 2 to 200 characters on one line';
  const mpids = list(input.mpids.toUpperCase());
  const badMpid = mpids.find((m) => !MPID_PATTERN.test(m));
  if (mpids.length === 0) problems.mpids = 'MPIDs: at least one';
  else if (mpids.length > MAX_MPIDS) problems.mpids = `MPIDs: at most ${MAX_MPIDS}`;
  else if (badMpid !== undefined) problems.mpids = `MPIDs: '${badMpid.slice(0, 20)}' is not an MPID (4 letters)`;
  const roles = list(input.roles.toUpperCase());
  const badRole = roles.find((r) => !ROLE_PATTERN.test(r));
  if (roles.length === 0) problems.roles = 'roles: at least one';
  else if (roles.length > MAX_ROLES) problems.roles = `roles: at most ${MAX_ROLES}`;
  else if (badRole !== undefined) problems.roles = `roles: '${badRole.slice(0, 20)}' is not a DIP role (3 to 5 letters, e.g. SUP)`;
  const contactName = input.contactName.trim();
  if (contactName.length < 1 || contactName.length > 100 || !plain(contactName)) problems.contactName = 'contact name: 1 to 100 characters on one line';
  const contactEmail = input.contactEmail.trim();
  if (!isEmailAddress(contactEmail)) problems.contactEmail = 'e-mail: an address such as name@company.example';
  const csrPem = input.csrPem.trim().replace(/\r\n/g, '\n');
  if (csrPem.length > MAX_CSR || !CSR_PATTERN.test(csrPem)) problems.csrPem = 'certificate signing request: a PEM "CERTIFICATE REQUEST" (PKCS#10), at most 8,000 characters';
  if (Object.keys(problems).length > 0) return { problems };
  return { claim: { companyName, mpids: mpids.sort(), roles: roles.sort(), contactName, contactEmail, csrPem: `${csrPem}\n` } };
}

/**
 * The claim held against the register (spec 5.7.1): which DIP ID the claimed MPIDs are registered under,
 * what the register says that DIP ID's roles are now, and where the claim differs. `dipId` is null unless
 * every claimed MPID is registered, now, under one and the same DIP ID: only then can the application be
 * approved.
 */
export interface RegisterCheck {
  dipId: string | null;
  companyName: string | null;
  /** Claimed MPIDs the register has under no DIP ID now. */
  unknownMpids: string[];
  /** Every DIP ID a claimed MPID is registered under now (more than one: the claim spans companies). */
  dipIds: string[];
  /** The register's roles of `dipId` now: what approval grants. */
  registerRoles: string[];
  /** Claimed, not in the register. */
  rolesNotInRegister: string[];
  /** In the register, not claimed (granted all the same). */
  rolesNotClaimed: string[];
  /** Why it cannot be approved, or null. */
  problem: string | null;
}

export function registerCheck(claim: Pick<OnboardingClaim, 'mpids' | 'roles'>, entries: readonly RegisterEntry[], now: number): RegisterCheck {
  const live = (r: RegisterEntry['rows'][number]) => r.from <= now && (r.to === null || r.to > now);
  const holders = new Map<string, RegisterEntry>();
  const unknownMpids: string[] = [];
  for (const mpid of claim.mpids) {
    const found = entries.filter((e) => e.rows.some((r) => r.mpid === mpid && live(r)));
    if (found.length === 0) unknownMpids.push(mpid);
    for (const e of found) holders.set(e.dipId, e);
  }
  const dipIds = [...holders.keys()].sort();
  const entry = unknownMpids.length === 0 && dipIds.length === 1 ? (holders.get(dipIds[0] as string) ?? null) : null;
  const registerRoles = entry ? rolesAt(entry, now) : [];
  const problem = unknownMpids.length > 0
    ? `the register has no DIP ID for ${unknownMpids.join(', ')} now`
    : dipIds.length > 1 ? `the MPIDs are registered under ${dipIds.length} DIP IDs (${dipIds.join(', ')}): one application per DIP ID`
    : registerRoles.length === 0 ? `the register gives ${dipIds[0] ?? '?'} no DIP role now` : null;
  return {
    dipId: problem === null && entry ? entry.dipId : null,
    companyName: entry?.companyName ?? null,
    unknownMpids,
    dipIds,
    registerRoles,
    rolesNotInRegister: entry ? claim.roles.filter((r) => !registerRoles.includes(r)) : [...claim.roles],
    rolesNotClaimed: registerRoles.filter((r) => !claim.roles.includes(r)),
    problem,
  };
}
