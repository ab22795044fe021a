import { stringifyWithCustomBlock } from './canonical-json.js';

/**
 * The parts of a validated DIP message that the DIP itself reads. Everything else is the sender's
 * business and travels untouched. Field names here are the spec's exact case: the catalogue's validator
 * has already rewritten whatever case the sender used.
 */
export interface MessageHeader {
  interfaceId: string;
  eventCode: string;
  schemaVersion: string;
  environmentTag: string;
  senderUniqueReference: string;
  senderTimestamp: string;
  senderDipId: string;
  senderRoleId: string;
  senderCorrelationId: string | null;
  connectionProviderId: string | null;
  primaryRecipients: string[];
  mpan: string | null;
}

export interface DipMessage {
  payload: {
    CommonBlock: Record<string, unknown> & {
      S0: Record<string, unknown>;
      S1: Record<string, unknown>;
      A0?: Record<string, unknown>;
      D0?: Record<string, unknown>;
      M0?: Record<string, unknown>;
    };
    CustomBlock?: Record<string, unknown>;
  };
}

function str(v: unknown): string {
  return typeof v === 'string' ? v : '';
}
function strOrNull(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}
/** A block as an object; anything else (null, a string, an array) reads as an empty block. */
function block(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/**
 * Total over any input: validation guarantees the envelope (src/catalogue/envelope.ts), but this never
 * relies on it to avoid a crash, so a schema that leaves a block untyped cannot turn into a 500.
 */
export function readHeader(message: DipMessage): MessageHeader {
  const cb = block(block(block(message).payload).CommonBlock);
  const s0 = block(cb.S0);
  const s1 = block(cb.S1);
  const primary = block(cb.A0).primaryRecipients;
  const m0 = block(cb.M0);
  return {
    interfaceId: str(s0.interfaceID),
    eventCode: str(s0.eventCode),
    schemaVersion: str(s0.schemaVersion),
    environmentTag: str(s1.environmentTag),
    senderUniqueReference: str(s1.senderUniqueReference),
    senderTimestamp: str(s1.senderTimestamp),
    senderDipId: str(s1.senderDIPID),
    senderRoleId: str(s1.senderRoleID),
    senderCorrelationId: strOrNull(s1.senderCorrelationID),
    connectionProviderId: strOrNull(s1.DIPConnectionProviderID),
    primaryRecipients: Array.isArray(primary) ? primary.filter((r): r is string => typeof r === 'string') : [],
    mpan: strOrNull(m0.MPANCore),
  };
}

/** The transaction wrapper (D0) and resolved addressing (A0) the DIP stamps on what it sends out. */
export interface TransactionWrapper {
  transactionId: string;
  transactionTimestamp: string;
  publicationId: string;
  initialCorrelationId: string | null;
  replayIndicator: boolean;
  primaryRecipients: string[];
  secondaryRecipients: string[];
  alwaysRecipients: string[];
  /**
   * Given: S1.senderCorrelationID as the recipients get it. A sender's own ID on a workflow-starting channel
   * is not the workflow's (the DIP assigns that, D0.initialCorrelationID): recipients get null there, as
   * from a sender that gave none, never an ID the sender chose (another workflow's, say).
   */
  senderCorrelationId?: null;
}

/**
 * Returns the outbound copy: the sender's message with A0 and D0 filled, in the spec's block order
 * (S0, S1, A0, D0, then the rest), without mutating the input.
 */
export function stampWrapper(message: DipMessage, w: TransactionWrapper): DipMessage {
  const { S0, S1, A0: _a0, D0: _d0, ...rest } = message.payload.CommonBlock;
  const commonBlock = {
    S0,
    S1: w.senderCorrelationId === undefined ? S1 : { ...S1, senderCorrelationID: w.senderCorrelationId },
    A0: {
      primaryRecipients: w.primaryRecipients,
      secondaryRecipients: w.secondaryRecipients,
      always: w.alwaysRecipients,
    },
    D0: {
      transactionID: w.transactionId,
      transactionTimestamp: w.transactionTimestamp,
      publicationID: w.publicationId,
      initialCorrelationID: w.initialCorrelationId,
      replayIndicator: w.replayIndicator,
      serviceTicketURL: null,
    },
    ...rest,
  };
  // The CustomBlock (or, on encrypted channels, its ciphertext) travels untouched after the CommonBlock.
  const { CommonBlock: _commonBlock, ...afterCommonBlock } = message.payload;
  return { payload: { CommonBlock: commonBlock, ...afterCommonBlock } };
}

/**
 * The outbound copy as text: JSON.stringify(outbound), or the same bytes with the sender's own text of
 * the CustomBlock spliced in when it is canonical for that block (src/domain/canonical-json.ts).
 */
export function serialiseOutbound(outbound: DipMessage, customBlock: string | null): string {
  return customBlock === null ? JSON.stringify(outbound) : stringifyWithCustomBlock(outbound, customBlock);
}
