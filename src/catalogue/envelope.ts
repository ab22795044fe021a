import type { JsonSchema, ValidationIssue } from './types.js';

const text = { type: 'string' };

/**
 * What the DIP itself reads of every message (S0 to dispatch and answer, S1 to authorise and
 * de-duplicate), as a JSON Schema checked beside each channel's published one. Every published variant
 * already requires these blocks and fields with these types, but several payload schemas leave
 * `CommonBlock` itself untyped (no `type: object`), so `"CommonBlock": null`, a string or an array
 * passes them: JSON Schema's `required` and `properties` only constrain objects. This closes that gap
 * for every channel, including those of a newer catalogue imported later, and refuses nothing a
 * published variant accepts except such non-objects.
 */
export const ENVELOPE_SCHEMA: JsonSchema = {
  type: 'object',
  required: ['payload'],
  properties: {
    payload: {
      type: 'object',
      required: ['CommonBlock'],
      properties: {
        CommonBlock: {
          type: 'object',
          required: ['S0', 'S1'],
          properties: {
            S0: {
              type: 'object',
              required: ['interfaceID', 'schemaVersion', 'eventCode'],
              properties: { interfaceID: text, schemaVersion: text, eventCode: text },
            },
            S1: {
              type: 'object',
              required: ['environmentTag', 'senderUniqueReference', 'senderTimestamp', 'senderDIPID', 'senderRoleID'],
              properties: { environmentTag: text, senderUniqueReference: text, senderTimestamp: text, senderDIPID: text, senderRoleID: text },
            },
          },
        },
      },
    },
  },
};

/**
 * A null among `A0.primaryRecipients`: the published type (DT-006N) admits null, so no schema refuses it,
 * but a recipient named null names nobody, and the header reader (src/domain/message.ts) skips what is
 * not a string, so `[null]` read as "no recipient named" and `[id, null]` as `[id]`. The first null is
 * named, in the words of a schema issue (its path, why), and any more counted as errors.ts counts a fault
 * repeated across array elements.
 */
export function nullRecipientIssues(message: unknown): ValidationIssue[] {
  const recipients = field(field(field(field(message, 'payload'), 'CommonBlock'), 'A0'), 'primaryRecipients');
  if (!Array.isArray(recipients)) return [];
  const first = recipients.indexOf(null);
  if (first < 0) return [];
  const more = recipients.filter((r) => r === null).length - 1;
  const path = `payload.CommonBlock.A0.primaryRecipients[${first}]`;
  const why = `${path} must be a DIP participant ID (a string of 10 characters), not null`;
  return [{ path, rule: 'type', message: more > 0 ? `${why} (and ${more} more like it)` : why }];
}

function field(v: unknown, name: string): unknown {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>)[name] : undefined;
}
