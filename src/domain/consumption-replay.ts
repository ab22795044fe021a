import type { DipMessage } from './message.js';
import { capacityCode } from './channel.js';
import { holderAt, SLOT_ROLES, type Appointment } from './mpan-lookup.js';

/**
 * The DIP Replay Service (interface catalogue: IF-015 "Request Historic Consumption Replay (ADV Sites
 * Only)", sent by an Advanced Data Service to the DIP; IF-016 "UTC Settlement Period Consumption Data -
 * REPLAY", sent by the DIP to it). The pure part: which archived messages an IF-016 replays, the IF-016
 * each becomes, the answer to a request that cannot be met, and who may ask.
 */

export const REPLAY_REQUEST_INTERFACE = 'IF-015';
export const REPLAY_INTERFACE = 'IF-016';

/**
 * The archived channels and event codes an IF-016 replays, each to the IF-016 event code of the same name:
 * the published IF-016 schemas are copies of IF-021 [ActivePower] and [ReactivePower], IF-014
 * [ActivePowerRejected] and IF-013 [ActivePowerDefaulted] (their descriptions say so, and their
 * CustomBlocks are those channels'). IF-014 [ConsumptionOnDeEnergisedMPAN] has no IF-016 counterpart.
 */
export const REPLAYED_CONSUMPTION: Readonly<Record<string, readonly string[]>> = {
  'IF-021': ['ActivePower', 'ReactivePower'],
  'IF-013': ['ActivePowerDefaulted'],
  'IF-014': ['ActivePowerRejected'],
};

/** IF-016's answer when the request cannot be met (published IF-016-ConsumptionRequestRejected). */
export const REQUEST_REJECTED_EVENT = 'ConsumptionRequestRejected';

/** DT-005N-StatusErrorMessage's maxLength: one R1.responseMessages entry. */
const RESPONSE_MESSAGE_MAX = 200;

/** What the DIP writes in S1 of each IF-016 it sends (it is the sender). */
export interface ReplaySender {
  dipId: string;
  roleId: string;
  environment: string;
  /** DIP date-time (DT-003) of the answer. */
  timestamp: string;
  senderUniqueReference: string;
  /** The request's workflow correlation ID (IF-015 starts a workflow, spec 5.5.5): the answers belong to it. */
  correlationId: string | null;
}

type Json = Record<string, unknown>;

function objectOf(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function bare(code: unknown): string {
  const s = typeof code === 'string' ? code : '';
  return s.startsWith('[') && s.endsWith(']') ? s.slice(1, -1) : s;
}

function senderBlock(s: ReplaySender): Json {
  return {
    environmentTag: s.environment,
    subText: null,
    senderUniqueReference: s.senderUniqueReference,
    senderTimestamp: s.timestamp,
    senderDIPID: s.dipId,
    senderRoleID: s.roleId,
    senderCorrelationID: s.correlationId,
    DIPConnectionProviderID: null,
  };
}

/**
 * The IF-016 that replays one archived consumption message (its outbound copy, as archived), or null
 * when it is nothing IF-016 replays (another channel or event code) or cannot be read (no CustomBlock: an
 * encrypted copy the DIP never held in clear, security pattern 3).
 *
 * Mapping (published IF-016 schemas): S0 names IF-016 and the original's event code; S1 is the DIP's;
 * S2, "the original sender block", is the original S1 as it was (its senderUniqueReference the one the
 * original sender gave); M0 is the original's; R0 (IF-014's response block) is kept for
 * [ActivePowerRejected]; R1, the replay's own response block, says the replay was made (A, no messages);
 * the CustomBlock is the original's, whole. A0 and D0 are the wrapper the DIP stamps on it.
 */
export function replayedConsumption(interfaceId: string, archived: unknown, sender: ReplaySender): { eventCode: string; message: DipMessage } | null {
  const payload = objectOf(objectOf(archived)?.payload);
  const common = objectOf(payload?.CommonBlock);
  const custom = objectOf(payload?.CustomBlock);
  const s0 = objectOf(common?.S0);
  const eventCode = bare(s0?.eventCode);
  if (!common || !custom || !s0 || !(REPLAYED_CONSUMPTION[interfaceId] ?? []).includes(eventCode)) return null;
  const original = objectOf(common.S1);
  const m0 = objectOf(common.M0);
  if (!original || !m0) return null;
  const r0 = objectOf(common.R0);
  return {
    eventCode,
    message: {
      payload: {
        CommonBlock: {
          S0: { interfaceID: REPLAY_INTERFACE, schemaVersion: '011', eventCode: `[${eventCode}]` },
          S1: senderBlock(sender),
          S2: original,
          M0: m0,
          ...(eventCode === 'ActivePowerRejected' && r0 ? { R0: r0 } : {}),
          R1: { responseCode: 'A', responseMessages: [] },
        },
        CustomBlock: custom,
      },
    },
  };
}

/**
 * IF-016 [ConsumptionRequestRejected]: the request (its outbound copy) cannot be met, and R1 says why
 * (responseCode R, the reason as its one message, cut to the published 200 characters). M0 is the
 * request's: the answer names the MPAN asked about.
 */
export function consumptionRequestRejected(request: unknown, sender: ReplaySender, reason: string): DipMessage {
  const m0 = objectOf(objectOf(objectOf(objectOf(request)?.payload)?.CommonBlock)?.M0) ?? {};
  return {
    payload: {
      CommonBlock: {
        S0: { interfaceID: REPLAY_INTERFACE, schemaVersion: '011', eventCode: `[${REQUEST_REJECTED_EVENT}]` },
        S1: senderBlock(sender),
        M0: m0,
        R1: { responseCode: 'R', responseMessages: [reason.slice(0, RESPONSE_MESSAGE_MAX)] },
      },
    },
  };
}

/**
 * Whether the requester may have the MPAN's consumption replayed: only the data service the MPAN lookup
 * names for it at the time of the request. What it is then replayed is bounded again, by message, to what
 * it sent or was sent (spec 5.5.11, "only messages the Participant is entitled to view": Archive.findForMpan's
 * party). Otherwise the reason, as R1 of the rejection says it, and (`detail`) what the lookup says, for
 * the operator's log only: the requester learns that it is not the appointed data service, not who is, nor
 * whether anyone is (any data service may ask about any MPAN).
 */
export function replayEntitlement(
  requester: string,
  mpan: string | null,
  history: readonly Appointment[],
  atMs: number,
): { ok: true; mpan: string } | { ok: false; reason: string; detail?: string } {
  if (mpan === null || mpan === '') return { ok: false, reason: 'the request names no MPAN (M0.MPANCore)' };
  const holder = holderAt(history, 'DS', atMs);
  if (holder === requester) return { ok: true, mpan };
  return {
    ok: false,
    reason: `${requester} is not the data service appointed to MPAN ${mpan} now; only that data service may have its consumption replayed`,
    detail: holder === undefined ? 'the MPAN lookup names no data service' : `the MPAN lookup names ${holder}`,
  };
}

/**
 * The capacity the answers go to the requester in (src/domain/channel.ts capacityCode): the MPAN's data
 * service, which is what entitles it (replayEntitlement), in the role it sent the request as when that is
 * a data service role receiving the answers; null (all its receiving roles) otherwise.
 */
export function replayCapacity(receiverRoles: readonly string[], requesterRole: string): string | null {
  const ds: readonly string[] = SLOT_ROLES.DS;
  return ds.includes(requesterRole) && receiverRoles.includes(requesterRole) ? capacityCode([requesterRole]) : null;
}

/** The reason of a rejection when nothing the requester may have is archived for the MPAN. */
export function nothingArchived(mpan: string, unreadable: number): string {
  const encrypted = unreadable > 0 ? ` (${unreadable} archived message(s) are encrypted for their recipients or unreadable and cannot be replayed)` : '';
  return `no consumption (IF-021, IF-013, IF-014) for MPAN ${mpan} that you sent or were sent is archived: none was, or it is older than the archive keeps${encrypted}`;
}

/** The reason of a rejection when the DIP failed reading its archive for the request (not the store being down: that is retried). */
export function archiveUnreadable(mpan: string | null, replayed: number): string {
  const sofar = replayed > 0 ? `; the ${replayed} IF-016 message(s) sent before the failure stand` : '';
  return `the DIP could not read its archive to answer this request for MPAN ${mpan ?? '(none)'}: ask again later or contact the DIP operator${sofar}`;
}
