/**
 * The AsyncAPI document of the webhook side (issue 12, item 1): served by the participant listener,
 * valid against the AsyncAPI 3.0.0 JSON Schema (@asyncapi/specs, the schema @asyncapi/parser validates
 * with; the parser itself pulls in a linter framework and an old node-fetch), every $ref resolving, one
 * channel per interface of the catalogue plus status messages, each message carrying the signature headers.
 */
import specs from '@asyncapi/specs';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { agentFor, startHostileDip, type HostileDip } from './hostile/helpers.js';

type Json = Record<string, any>;
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

describe('the AsyncAPI document of the webhooks', () => {
  let h: HostileDip;
  let doc: Json;
  beforeAll(async () => {
    h = await startHostileDip();
    const res = await agentFor(h.t, h.sds).request({ origin: h.t.dip.url, path: '/api/asyncapi.json', method: 'GET' });
    expect(res.statusCode).toBe(200);
    doc = JSON.parse(await res.body.text()) as Json;
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is valid AsyncAPI 3.0.0', () => {
    // The AsyncAPI schema carries its own copy of the draft-07 meta-schema: Ajv's is left out.
    const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, meta: false, validateSchema: false });
    addFormats(ajv);
    const validate = ajv.compile((specs as unknown as { schemas: Record<string, object> }).schemas['3.0.0']!);
    const ok = validate(doc);
    expect(ok, ajv.errorsText(validate.errors?.slice(0, 5))).toBe(true);
    // The validator does refuse: an AsyncAPI 2 action is not an AsyncAPI 3 one.
    expect(validate({ ...doc, operations: { ...doc.operations, 'deliver-IF-021': { ...doc.operations['deliver-IF-021'], action: 'publish' } } })).toBe(false);
  });

  it('resolves every $ref inside the document', () => {
    const refs = new Set<string>();
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) n.forEach(walk);
      else if (n && typeof n === 'object') {
        for (const [k, v] of Object.entries(n)) {
          if (k === '$ref' && typeof v === 'string') refs.add(v);
          else walk(v);
        }
      }
    };
    walk(doc);
    for (const ref of refs) {
      const target = ref.slice(2).split('/').reduce<any>((at, part) => at?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
      expect(target, ref).toBeDefined();
    }
  });

  it('describes one channel per interface and the status messages, each message signed', () => {
    const ids = Catalogue.load().channels().map((c) => c.interfaceId);
    expect(Object.keys(doc.channels).sort()).toEqual([...ids, 'statusmessage'].sort());
    const message = doc.components.messages['IF-021'];
    expect(message.headers.required).toEqual(expect.arrayContaining(['X-DIP-Signature', 'X-DIP-Signature-Date', 'X-DIP-Content-Hash', 'X-DIP-Signature-Certificate']));
    expect(message.payload.items).toEqual({ $ref: '#/components/schemas/IF-021' });
    expect(doc.operations['deliver-IF-021']).toMatchObject({ action: 'send', channel: { $ref: '#/channels/IF-021' } });
    expect(doc.operations['deliver-IF-021'].summary).toContain('408, 429, 500, 502, 503 and 504 are retried');
  });
});
