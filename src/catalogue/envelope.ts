import type { JsonSchema } from './types.js';

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
