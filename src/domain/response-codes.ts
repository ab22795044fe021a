/**
 * The DIP's synchronous response codes (DI-999, MSG…). The text after the code is the published meaning,
 * so a participant's adapter that matches on the message string keeps working.
 */
export const MSG = {
  success: 'MSG0000 - Success',
  processingFailed: 'MSG1000 - Message Processing Failed',
  schemaFailure: 'MSG1001 - Schema Failure',
  interfaceIdInvalid: 'MSG1002 - Interface ID Invalid',
  duplicateReference: 'MSG1006 - Sender Unique Reference Duplicated',
  senderTimestampInvalid: 'MSG1007 - Sender Timestamp Invalid',
  senderDipIdInvalid: 'MSG1009 - Sender DIP ID Invalid',
  senderRoleInvalid: 'MSG1010 - Sender Role Invalid',
  connectionProviderInvalid: 'MSG1011 - Connection Provider ID Invalid',
  senderCorrelationIdInvalid: 'MSG1012 - Sender Correlation ID Invalid',
  routingError: 'MSG1030 - Msg Addressing / Routing Error',
  primaryRecipientInvalid: 'MSG1031 - Primary Recipient(s) DIP Participant ID Invalid',
  primaryRecipientRoleInvalid: 'MSG1032 - Primary Recipient(s) DIP Role ID Invalid',
  secondaryRecipientInvalid: 'MSG1033 - Secondary Recipient(s) DIP Participant ID Invalid',
  secondaryRecipientRoleInvalid: 'MSG1034 - Secondary Recipient(s) DIP Role ID Invalid',
  alwaysRecipientInvalid: 'MSG1035 - Always Recipient(s) DIP Participant ID Invalid',
  alwaysRecipientRoleInvalid: 'MSG1036 - Always Recipient(s) DIP Role ID Invalid',
  missingMpan: 'MSG1037 - Cannot Resolve Secondary Recipient(s) for Missing MPAN',
  mpanUnresolved: 'MSG1038 - Cannot Resolve Secondary Recipient(s) for MPAN/Party/Event Combination',
} as const;

export type MsgText = (typeof MSG)[keyof typeof MSG];

const S0 = 'payload.CommonBlock.S0';
const S1 = 'payload.CommonBlock.S1';

/** The header fields DI-999 gives a code of its own (the code the DIP's other checks of that field answer too). */
const FIELD_CODES: ReadonlyMap<string, MsgText> = new Map([
  [`${S1}.senderTimestamp`, MSG.senderTimestampInvalid],
  [`${S1}.senderDIPID`, MSG.senderDipIdInvalid],
  [`${S1}.senderRoleID`, MSG.senderRoleInvalid],
  [`${S1}.DIPConnectionProviderID`, MSG.connectionProviderInvalid],
  [`${S1}.senderCorrelationID`, MSG.senderCorrelationIdInvalid],
]);

/**
 * The code for an item that fails its schema, from the path of every issue found (not only those shown).
 * An interface ID that is not the channel's, or is missing, is MSG1002 whatever else is wrong: the item
 * was sent to the wrong place. Otherwise, when every issue is about one header field DI-999 names a code
 * for (a senderTimestamp of the wrong length, a senderCorrelationID of 61 characters), that field's code,
 * the same one a well-formed but wrong value of it gets; anything else, or several fields, MSG1001.
 */
export function schemaFailureCode(paths: ReadonlySet<string>): MsgText {
  if (paths.has(`${S0}.interfaceID`)) return MSG.interfaceIdInvalid;
  const codes = new Set<MsgText | undefined>([...paths].map((path) => FIELD_CODES.get(path)));
  const [only] = codes;
  return codes.size === 1 && only !== undefined ? only : MSG.schemaFailure;
}
