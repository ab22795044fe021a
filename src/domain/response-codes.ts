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
  routingError: 'MSG1030 - Msg Addressing / Routing Error',
  primaryRecipientInvalid: 'MSG1031 - Primary Recipient(s) DIP Participant ID Invalid',
  primaryRecipientRoleInvalid: 'MSG1032 - Primary Recipient(s) DIP Role ID Invalid',
  secondaryRecipientInvalid: 'MSG1033 - Secondary Recipient(s) DIP Participant ID Invalid',
  secondaryRecipientRoleInvalid: 'MSG1034 - Secondary Recipient(s) DIP Role ID Invalid',
  missingMpan: 'MSG1037 - Cannot Resolve Secondary Recipient(s) for Missing MPAN',
  mpanUnresolved: 'MSG1038 - Cannot Resolve Secondary Recipient(s) for MPAN/Party/Event Combination',
} as const;

export type MsgText = (typeof MSG)[keyof typeof MSG];
