import { DIP_ID_PATTERN, emptyProfile, ROLE_PATTERN, type Participant, type ParticipantProfile } from '../domain/participant.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import { RecordConflictError, type RegistryStore, type StoredRecord } from '../ports/registry.js';
import { hashApiKey, newApiKey } from '../security/api-key.js';
import { certificateInfo, verifyChain, type CertificateInfo } from '../security/signature.js';
import { RefusedError } from './refused.js';
import { PROFILE_RECORD } from './registry.js';
import { dropFormerProviderWebhooks, type RemovedWebhook } from './webhook-config.js';

export interface OnboardRequest {
  dipId: string;
  roles: string[];
  organisation?: string;
  /** The participant's certificate (PEM): its mTLS client certificate and message-signing certificate. */
  certificatePem: string;
  /**
   * A DIP Connection Provider (a registered participant) that connects for this one; null: none (a
   * nomination withdrawn); left out: the one a registered participant already has stays (none for a new
   * one), so re-registering for a new certificate or role never withdraws a nomination by omission.
   */
  connectionProvider?: string | null;
  /**
   * The environment's trust store (src/security/trust-store.ts): when given, the certificate must chain
   * to it, so that a certificate the TLS listener would refuse (another environment's CA) is refused
   * here with the reason instead of failing every handshake later.
   */
  trustedCaPems?: string[];
  /** Registers a new participant only: throws AlreadyRegistered, writing nothing, when the DIP ID is registered. */
  onlyNew?: boolean;
}

/** The DIP ID a registration meant for a new participant was registered already (by another node, or a form sent twice). */
export class AlreadyRegistered extends Error {
  constructor(readonly dipId: string) {
    super(`${dipId} is a registered participant already: manage it on its page`);
  }
}

/** The certificate, checked: readable, bound to the DIP ID, and (when a trust store is given) from a trusted CA. */
function checkedCertificate(certificatePem: string, dipId: string, trustedCaPems: string[] | undefined): CertificateInfo {
  let info;
  try {
    info = certificateInfo(certificatePem);
  } catch (e) {
    throw new Error(`--cert is not a PEM certificate: ${(e as Error).message}`, { cause: e });
  }
  if (!info.dipIds.includes(dipId)) {
    throw new Error(`the certificate is bound to ${info.dipIds.join(', ') || 'no DIP ID'} (SAN urn:dip:participant:…), not to ${dipId}`);
  }
  if (trustedCaPems && !verifyChain(info.pem, trustedCaPems)) {
    throw new Error(
      `the certificate (issuer ${info.issuer}, valid ${info.notBefore.toISOString()} to ${info.notAfter.toISOString()}) was not issued by a CA this environment trusts, or is not valid now: certificates differ per environment, issue one from this environment's CA`,
    );
  }
  return info;
}

/**
 * Registers (or updates) a participant and issues a fresh API key. Only the key's hash is stored, so the
 * key is shown once, here. The certificate must be bound to the DIP ID it is registered for. An update
 * keeps the connection provider unless `connectionProvider` is given (null withdraws it); one that changes
 * it removes the webhooks the former one registered for it (as the
 * participant's own withdrawal does, SelfService.nominate), and says which. A kept provider that is no
 * longer registered is dropped (`formerProviderGone`): registered again, that DIP ID would act for this one.
 * The key it replaces stops at once, and so does one still in a rotation's overlap: a re-registration is
 * how the operator answers a compromise, so no old key outlives it (SECURITY.md).
 */
export async function onboardParticipant(
  store: Pick<RegistryStore, 'participants' | 'upsertParticipant' | 'insertParticipant' | 'webhooks' | 'deleteWebhook' | 'records' | 'putRecord'>,
  req: OnboardRequest,
): Promise<{ participant: Participant; apiKey: string; formerProvider: string | null; formerProviderGone: boolean; removedWebhooks: RemovedWebhook[] }> {
  if (!DIP_ID_PATTERN.test(req.dipId)) throw new Error(`--dip-id '${req.dipId}' must be 10 letters or digits (DT-006)`);
  if (req.roles.length === 0) throw new Error('at least one --role is required');
  for (const r of req.roles) if (!ROLE_PATTERN.test(r)) throw new Error(`--role '${r}' must be 3 to 5 capital letters, e.g. SUP, LDSO, SDS`);
  const info = checkedCertificate(req.certificatePem, req.dipId, req.trustedCaPems);
  const registered = await store.participants();
  const formerProvider = registered.find((r) => r.participant.dipId === req.dipId)?.participant.connectionProvider ?? null;
  const formerProviderGone = formerProvider !== null && !registered.some((r) => r.participant.dipId === formerProvider);
  if (req.connectionProvider) {
    if (req.connectionProvider === req.dipId) throw new Error('a participant cannot be its own connection provider');
    const known = registered.some((r) => r.participant.dipId === req.connectionProvider);
    if (!known) throw new Error(`--connection-provider ${req.connectionProvider} is not a registered participant`);
  }
  // Re-registering switches certificates at once (no overlap); `rotate-cert` is the gentle way.
  const participant: Participant = {
    dipId: req.dipId,
    roles: [...new Set(req.roles)],
    organisation: req.organisation ?? info.subject,
    certificatePem: info.pem,
    certificateFingerprint: info.fingerprint256,
    createdAt: Date.now(),
    connectionProvider: req.connectionProvider === undefined ? (formerProviderGone ? null : formerProvider) : req.connectionProvider,
  };
  const apiKey = newApiKey();
  if (!req.onlyNew) await store.upsertParticipant(participant, hashApiKey(apiKey));
  else if (!(await store.insertParticipant(participant, hashApiKey(apiKey)))) throw new AlreadyRegistered(req.dipId);
  await endKeyOverlap(store, req.dipId);
  const removedWebhooks = formerProvider !== participant.connectionProvider ? await dropFormerProviderWebhooks(store, participant, formerProvider !== null) : [];
  return { participant, apiKey, formerProvider, formerProviderGone, removedWebhooks };
}

/** Ends a rotation's overlap (the profile's previousApiKey), as offboarding does. */
async function endKeyOverlap(store: Pick<RegistryStore, 'records' | 'putRecord'>, dipId: string): Promise<void> {
  await changeProfile(store, dipId, 'participant add', Date.now, (profile) => (profile.previousApiKey === null ? null : { ...profile, previousApiKey: null }));
}

/**
 * Changes a participant's profile against the version read, and again on a conflict (another node or process
 * changed it meanwhile, whose change a write of the stale read would undo). `change` answering null writes
 * nothing. What it answers: the profile as stored now. `write` puts the new version (a RecordConflictError
 * asks again): `putRecord` unless given, e.g. one that writes it in one transaction with another change.
 */
export async function changeProfile(
  store: Pick<RegistryStore, 'records' | 'putRecord'>,
  dipId: string,
  by: string,
  now: () => number,
  change: (profile: ParticipantProfile) => ParticipantProfile | null,
  write: (record: Omit<StoredRecord, 'version'>, expectedVersion: number) => Promise<unknown> = (record, expectedVersion) => store.putRecord(record, expectedVersion),
): Promise<ParticipantProfile> {
  for (let attempt = 0; ; attempt++) {
    const current = (await store.records(PROFILE_RECORD)).find((r) => r.key === dipId);
    const was = (current?.doc as ParticipantProfile | undefined) ?? emptyProfile(dipId);
    const next = change(was);
    if (next === null) return was;
    try {
      await write({ kind: PROFILE_RECORD, key: dipId, doc: next, at: now(), by }, current?.version ?? 0);
      return next;
    } catch (e) {
      if (!(e instanceof RecordConflictError) || attempt >= 4) throw e;
    }
  }
}

/** What a registration did to the participant's DIP Connection Provider, in the words the CLI prints. */
export function nominationChange(formerProvider: string | null, provider: string | null, formerProviderGone = false): string {
  if (formerProviderGone && provider === null) return `none (was ${formerProvider}, no longer registered: dropped)`;
  if (provider === formerProvider) return provider === null ? 'none' : `${provider}, kept (--no-connection-provider withdraws it)`;
  if (provider === null) return `none (was ${formerProvider}, withdrawn)`;
  return formerProvider === null ? `${provider}, nominated` : `${provider}, nominated (was ${formerProvider}, withdrawn)`;
}

export interface RotateRequest {
  dipId: string;
  /** The new certificate (PEM), bound to the same DIP ID. */
  certificatePem: string;
  /** How long the certificate it replaces stays accepted for signing. */
  overlapMs: number;
  trustedCaPems?: string[];
  now?: Date;
}

/**
 * Registers a participant's new certificate while the one it replaces stays accepted for signing until
 * the overlap ends, so the participant can move its systems over without an outage. The API key, roles
 * and connection provider stay as they are. A previous certificate still in its own overlap is dropped:
 * only the one being replaced now overlaps.
 */
export async function rotateParticipantCertificate(store: Pick<RegistryStore, 'participants' | 'setCertificate'>, req: RotateRequest): Promise<Participant> {
  if (!(req.overlapMs >= 0)) throw new Error(`the overlap must be zero or more, got ${req.overlapMs}`);
  const current = (await store.participants()).find((r) => r.participant.dipId === req.dipId)?.participant;
  if (!current) throw new Error(`${req.dipId} is not a registered participant: register it with \`dip participant add\``);
  const info = checkedCertificate(req.certificatePem, req.dipId, req.trustedCaPems);
  if (info.fingerprint256 === current.certificateFingerprint) throw new Error(`that certificate is already the one registered for ${req.dipId}`);
  const now = (req.now ?? new Date()).getTime();
  const rotated: Participant = {
    ...current,
    certificatePem: info.pem,
    certificateFingerprint: info.fingerprint256,
    ...(req.overlapMs > 0
      ? { previous: { certificatePem: current.certificatePem, certificateFingerprint: current.certificateFingerprint, validUntil: now + req.overlapMs } }
      : { previous: undefined }),
  };
  // The certificate alone, and only while it is the one read: writing the whole row read above undid what
  // another writer changed meanwhile (a nomination, roles); another rotation first is the caller's to see.
  if (!(await store.setCertificate(req.dipId, current.certificateFingerprint, rotated))) {
    throw new RefusedError(409, `${req.dipId}'s certificate was rotated meanwhile (another renewal or registration came first): ask again if this one is still wanted`);
  }
  return rotated;
}

/** Who acts, where it is journalled, and when: an operator's act outside the operator API (the `dip` command line). */
export interface JournalledAct {
  journal: Pick<OperatorJournal, 'append'>;
  /** The journal's actor, e.g. `cli:<os user>`. */
  actor: string;
  now: () => number;
}

type OnboardStore = Parameters<typeof onboardParticipant>[0];

/**
 * `onboardParticipant`, journalled (spec 8.3: every administrative act): `participant.register` with the
 * registration before and after (roles, organisation, certificate fingerprint, connection provider; that an
 * API key was issued, never the key), and a change of connection provider as its own entry, as the
 * participant's own change is (SelfService.nominate).
 */
export async function registerParticipant(store: OnboardStore, req: OnboardRequest, by: JournalledAct): Promise<Awaited<ReturnType<typeof onboardParticipant>>> {
  const was = (await store.participants()).find((r) => r.participant.dipId === req.dipId)?.participant;
  const done = await onboardParticipant(store, req);
  const p = done.participant;
  const shown = (x: Participant) => ({ roles: x.roles, organisation: x.organisation, certificateFingerprint: x.certificateFingerprint, connectionProvider: x.connectionProvider });
  await by.journal.append({
    at: by.now(),
    actor: by.actor,
    action: 'participant.register',
    target: p.dipId,
    before: was ? shown(was) : null,
    after: { ...shown(p), apiKey: was ? 'a new one issued: the one before no longer works' : 'issued' },
    status: null,
  });
  if (done.formerProvider !== p.connectionProvider && done.formerProvider !== null) {
    const action = p.connectionProvider ? 'participant.connection-provider.nominate' : 'participant.connection-provider.withdraw';
    await by.journal.append({
      at: by.now(),
      actor: by.actor,
      action,
      target: p.dipId,
      before: { connectionProvider: done.formerProvider },
      after: { connectionProvider: p.connectionProvider, removedWebhooks: done.removedWebhooks, ...(done.formerProviderGone ? { reason: `${done.formerProvider} is no longer registered` } : {}) },
      status: null,
    });
  }
  return done;
}

/** `rotateParticipantCertificate`, journalled as the participant's own rotation is: `participant.certificate.rotate`. */
export async function rotateCertificateJournalled(store: Pick<RegistryStore, 'participants' | 'setCertificate'>, req: RotateRequest, by: JournalledAct): Promise<Participant> {
  const was = (await store.participants()).find((r) => r.participant.dipId === req.dipId)?.participant;
  const rotated = await rotateParticipantCertificate(store, req);
  const until = rotated.previous ? new Date(rotated.previous.validUntil).toISOString() : null;
  await by.journal.append({
    at: by.now(),
    actor: by.actor,
    action: 'participant.certificate.rotate',
    target: rotated.dipId,
    before: { certificateFingerprint: was?.certificateFingerprint ?? null },
    after: { certificateFingerprint: rotated.certificateFingerprint, previousValidUntil: until },
    status: null,
  });
  return rotated;
}
