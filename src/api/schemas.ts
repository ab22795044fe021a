import { Ajv, type ErrorObject, type JSONSchemaType } from 'ajv';
import addFormatsModule from 'ajv-formats';

// ajv-formats is CommonJS; under NodeNext its default import is the module object.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

const ajv = new Ajv({ allErrors: true, coerceTypes: false });
addFormats(ajv);

/** Rewrites the keys of a flat JSON object to the spec's exact case: ingress does not enforce case. */
export function exactCase(value: unknown, names: readonly string[]): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const byLower = new Map(names.map((n) => [n.toLowerCase(), n]));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [byLower.get(k.toLowerCase()) ?? k, v]));
}

export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .slice(0, 5)
    .map((e) => {
      const field = e.instancePath.replace(/^\//, '').replaceAll('/', '.') || (e.params as { missingProperty?: string }).missingProperty || 'body';
      const where = e.keyword === 'required' ? (e.params as { missingProperty: string }).missingProperty : field;
      return `${where}: ${e.message ?? e.keyword} (${e.keyword})`;
    })
    .join('; ');
}

/** Published WebhookConfig: callbackURL, maxMessageCount, maxPayloadSize (KB). */
export interface WebhookConfigBody {
  callbackURL: string;
  maxMessageCount?: number;
  maxPayloadSize?: number;
}

export const validateWebhookConfig = ajv.compile<WebhookConfigBody>({
  type: 'object',
  required: ['callbackURL'],
  properties: {
    callbackURL: { type: 'string', format: 'uri', pattern: '^[Hh][Tt][Tt][Pp][Ss]?://', maxLength: 2048 },
    maxMessageCount: { type: 'number', minimum: 1, maximum: 10000, nullable: true },
    maxPayloadSize: { type: 'number', minimum: 1, maximum: 1048576, nullable: true },
  },
} as JSONSchemaType<WebhookConfigBody>);

export const WEBHOOK_CONFIG_FIELDS = ['callbackURL', 'maxMessageCount', 'maxPayloadSize'] as const;

/** Published MessageRequest (replay / requeue filters). */
export interface MessageRequestBody {
  datetimeFrom: string;
  datetimeTo: string;
  eventCode?: string | null;
  MPAN?: string | null;
  transactionIDs?: string[] | null;
  version?: string | null;
}

const dateTime = { type: 'string', minLength: 25, maxLength: 25, pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}[+-]\\d{2}:\\d{2}$' };

export const validateMessageRequest = ajv.compile<MessageRequestBody>({
  type: 'object',
  required: ['datetimeFrom', 'datetimeTo'],
  properties: {
    datetimeFrom: dateTime,
    datetimeTo: dateTime,
    eventCode: { type: 'string', nullable: true, maxLength: 60 },
    MPAN: { type: 'string', nullable: true, pattern: '^\\d{13}$' },
    transactionIDs: { type: 'array', nullable: true, minItems: 1, maxItems: 100, items: { type: 'string', maxLength: 65 } },
    version: { type: 'string', nullable: true, maxLength: 10 },
  },
} as unknown as JSONSchemaType<MessageRequestBody>);

export const MESSAGE_REQUEST_FIELDS = ['datetimeFrom', 'datetimeTo', 'eventCode', 'MPAN', 'transactionIDs', 'version'] as const;

/** Published StandardResponseArray, as a recipient sends it to POST /statusmessage. */
export const STATUS_ENTRY_FIELDS = ['transactionID', 'senderUniqueReference', 'correlationID', 'sentTimestamp', 'senderID', 'recipientID', 'DIPConnectionProviderID', 'message', 'help', 'serviceTicketURL'] as const;

const nullableString = (maxLength: number) => ({ type: 'string', nullable: true, maxLength });

export const validateStatusEntries = ajv.compile<unknown[]>({
  type: 'array',
  minItems: 1,
  maxItems: 1000,
  items: {
    type: 'object',
    additionalProperties: false,
    required: [...STATUS_ENTRY_FIELDS],
    properties: {
      transactionID: nullableString(65),
      senderUniqueReference: nullableString(100),
      correlationID: { type: 'string', nullable: true, minLength: 1, maxLength: 60 },
      sentTimestamp: dateTime,
      senderID: { type: 'string', minLength: 10, maxLength: 11 },
      recipientID: { type: 'string', nullable: true, minLength: 10, maxLength: 11 },
      DIPConnectionProviderID: { type: 'string', nullable: true, minLength: 10, maxLength: 11 },
      message: { type: 'string', nullable: true, maxLength: 200, pattern: '^[A-Z]{2,3}\\d{4} - ' },
      help: nullableString(500),
      serviceTicketURL: nullableString(2048),
    },
  },
} as unknown as JSONSchemaType<unknown[]>);
