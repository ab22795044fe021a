/**
 * The LZ4 dictionary of sealed format 3 (src/security/at-rest.ts): text LZ4 may refer back to when it
 * compresses a value, so that a single message's first use of each key of the DIP's wrapper and of IF-021
 * (the national-volume channel) is a short reference instead of literal bytes. It is the catalogue's
 * generated example of an IF-021 (`exampleMessage`, 2026-12-05), frozen here as text: no participant's data,
 * nothing secret (it is generated from the published schema).
 *
 * NEVER CHANGE IT: every value sealed in format 3 opens only with these exact bytes (test/at-rest.test.ts
 * pins their SHA-256). A better dictionary is a new format number, with this one kept for reading.
 */
export const FORMAT_3_DICTIONARY = Buffer.from(
  "{\"payload\":{\"CommonBlock\":{\"S0\":{\"interfaceID\":\"IF-021\",\"schemaVersion\":\"011\",\"eventCode\":\"[ActivePower]\"},\"S1\":{\"environmentTag\":\"PRD\",\"subText\":\"example\",\"senderUniqueReference\":\"S-IF-123-1234567890-ABC-12345678-1\",\"senderTimestamp\":\"2026-01-31T00:00:00+00:00\",\"senderDIPID\":\"1000000001\",\"senderRoleID\":\"SUP\",\"senderCorrelationID\":\"example\",\"DIPConnectionProviderID\":\"1000000001\"},\"A0\":{\"primaryRecipients\":[\"1000000001\"],\"secondaryRecipients\":[\"1000000001\"],\"always\":[\"1000000001\"]},\"D0\":{\"transactionID\":\"T-IF-000-EXAMPLE\",\"transactionTimestamp\":\"2026-01-31T00:00:00+00:00\",\"publicationID\":\"example\",\"initialCorrelationID\":\"example\",\"replayIndicator\":false,\"serviceTicketURL\":\"https://example.com/dip\"},\"M0\":{\"MPANCore\":\"1234567890123\",\"distributorDIPID\":\"1000000001\",\"GSPGroupID\":\"_A\"}},\"CustomBlock\":{\"B044\":{\"issuingDataServiceDIPID\":\"1000000001\"},\"B067\":{\"connectionTypeIndicator\":\"W\",\"connectionTypeEffectiveFromDate\":\"2026-01-31T00:00:00+00:00\"},\"B900\":{\"MQID\":{\"measurementQuantityID\":\"AI\"},\"settlementDayConsumptionPeriods\":[{\"settlementDay\":{\"settlementDayDate\":\"2026-01-31T00:00:00+00:00\",\"periodDuration\":30},\"consumptionPeriods\":[{\"sp\":\"2026-01-31T00:00:00+00:00\",\"v\":\"-1.123\",\"q\":\"A\",\"e\":\"1\",\"arc\":\"A\"}]}]}}}}",
  'utf8',
);
