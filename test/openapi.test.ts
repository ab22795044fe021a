/**
 * The OpenAPI document the participant listener serves (issue 12, item 1): generated from the route
 * schemas, valid by a real OpenAPI validator, listing the published API 2.1.0 operations as published
 * (paths, methods, parameters, answers), and telling the truth: answers the DIP gives validate against
 * the schema the document gives for their status code.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv } from 'ajv';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { request as httpsRequest } from 'node:https';
import { schemaIn30 } from '../src/api/openapi-30.js';
import { dipDateTime } from '../src/domain/time.js';
import { publishedSchema } from '../src/api/schemas.js';
import { exampleMessage } from '../src/catalogue/examples.js';
import { Catalogue } from '../src/catalogue/catalogue.js';
import { loadConfig } from '../src/config.js';
import { agentFor, send, startHostileDip, validItem, type HostileDip } from './hostile/helpers.js';
import { HAVE_REFERENCE, REFERENCE } from './helpers/reference.js';

type Json = Record<string, any>;
const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** Every operation of a document: `METHOD path` → its parameters (`in:name`, headers lower-cased) and answers. */
function operations(doc: Json, resolveParam: (p: Json) => Json): Map<string, { params: string[]; codes: string[] }> {
  const out = new Map<string, { params: string[]; codes: string[] }>();
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    const shared = (item.parameters ?? []) as Json[];
    for (const m of METHODS) {
      const op = item[m] as Json | undefined;
      if (!op) continue;
      const params = [...shared, ...((op.parameters ?? []) as Json[])].map(resolveParam).map((p) => `${p.in}:${p.in === 'header' ? String(p.name).toLowerCase() : p.name}`);
      out.set(`${m.toUpperCase()} ${path}`, { params: [...new Set(params)].sort(), codes: Object.keys(op.responses ?? {}).sort() });
    }
  }
  return out;
}

describe('the OpenAPI document of the participant listener', () => {
  let h: HostileDip;
  let doc: Json;
  const get = async (path: string) => {
    const res = await agentFor(h.t, h.sds).request({ origin: h.t.dip.url, path, method: 'GET' });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };
  beforeAll(async () => {
    // This file validates a megabyte document in the DIP's own process: its overload guard must not take
    // the test's work for the DIP's.
    h = await startHostileDip({ overload: { ...loadConfig({}).overload, maxEventLoopDelayMs: 60_000 } });
    const res = await get('/api/docs/json');
    expect(res.status).toBe(200);
    doc = JSON.parse(res.text) as Json;
  });
  afterAll(async () => {
    await h?.close();
  });

  it('is served as JSON and as the same document in YAML', async () => {
    const yaml = await get('/api/docs/yaml');
    expect(yaml.status).toBe(200);
    expect(parse(yaml.text)).toEqual(doc);
    // OpenAPI 3.0, as the published DIP API 2.1.0 documents are: participants' 3.0-only client generators read it.
    expect(doc.openapi).toBe('3.0.3');
  });

  it('is a valid OpenAPI 3.0 document, every $ref resolving (@apidevtools/swagger-parser, against the 3.0 schema)', async () => {
    const api = await SwaggerParser.validate(structuredClone(doc) as never);
    expect(Object.keys(api.paths ?? {}).length).toBeGreaterThan(100);
  });

  it("says nothing only OpenAPI 3.1 knows (the 3.0 schema checks a Schema Object's keywords, not a type's shape)", () => {
    const found: string[] = [];
    const walk = (n: unknown, at: string): void => {
      if (Array.isArray(n)) return n.forEach((v, i) => walk(v, `${at}/${i}`));
      if (typeof n !== 'object' || n === null) return;
      for (const [k, v] of Object.entries(n)) {
        if (Array.isArray(v) && k === 'type') found.push(`${at}/type ${JSON.stringify(v)}`);
        if (v === 'null' && k === 'type') found.push(`${at}/type null`);
        if (typeof v === 'number' && (k === 'exclusiveMinimum' || k === 'exclusiveMaximum')) found.push(`${at}/${k}`);
        if (['if', 'then', 'else', 'const', '$schema', '$defs', 'prefixItems', 'unevaluatedProperties'].includes(k) && !at.endsWith('/properties')) found.push(`${at}/${k}`);
        if (k === 'examples' && Array.isArray(v)) found.push(`${at}/examples`);
        if (k === 'type' && v === 'mutualTLS') found.push(`${at} mutualTLS`);
        walk(v, `${at}/${k}`);
      }
    };
    walk(doc, '#');
    expect(found.slice(0, 10)).toEqual([]);
  });

  it("accepts and refuses the messages the channel's published schema does: its if/then per event code rewritten without a change of meaning", () => {
    const catalogue = Catalogue.load();
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addSchema({ $id: 'doc', components: doc.components });
    let refusals = 0;
    for (const c of catalogue.channels()) {
      const published = new Ajv({ strict: false, allErrors: true }).compile(catalogue.schema(c.interfaceId)!);
      const documented = ajv.compile({ $ref: `doc#/components/schemas/${c.interfaceId}` });
      for (const event of c.eventCodes) {
        const message = exampleMessage(catalogue.schema(c.interfaceId)!, event) as Json;
        // The example as it is, and with each other event code of the channel, whose blocks differ.
        for (const code of [event, ...c.eventCodes.filter((e) => e !== event), '[NoSuchEvent]']) {
          const variant = structuredClone(message);
          variant.payload.CommonBlock.S0.eventCode = code;
          const verdict = published(variant);
          if (!verdict) refusals++;
          expect(documented(variant), `${c.interfaceId} ${event} sent as ${code}`).toBe(verdict);
        }
      }
    }
    expect(refusals).toBeGreaterThan(0);
  });

  it.skipIf(!HAVE_REFERENCE)('lists every published API 2.1.0 operation with its published parameters and answers', () => {
    const published = parse(readFileSync(join(REFERENCE, 'SubmitEvents-unresolved.yaml'), 'utf8')) as Json;
    const resolve = (d: Json) => (p: Json) => (typeof p.$ref === 'string' ? (d.components.parameters[p.$ref.split('/').pop()!] as Json) : p);
    const theirs = operations(published, resolve(published));
    const ours = operations(doc, resolve(doc));
    expect(theirs.size).toBeGreaterThanOrEqual(8 + 127);
    // Beyond the published answers: only the ones every guarded call may get, and the documented extensions.
    const extraCodes = new Set(['202', '204', '206', '400', '401', '403', '404', '405', '408', '409', '413', '421', '429', '500', '503']);
    // The published validation endpoints list no signature headers, yet are signed like every call (docs/api-differences.md).
    const signature = ['header:x-dip-content-hash', 'header:x-dip-signature', 'header:x-dip-signature-certificate', 'header:x-dip-signature-date'];
    const extraParams = (op: string) => (op === 'POST /dip-channel/{id}/replay/{recipient-id}' ? ['header:x-continuation-token'] : op.startsWith('POST /validate/') ? signature : []);
    for (const [op, t] of theirs) {
      const o = ours.get(op);
      expect(o, `${op} is missing`).toBeDefined();
      expect(o!.params, op).toEqual([...t.params, ...extraParams(op)].sort());
      for (const code of t.codes) expect(o!.codes, `${op} answers ${code}`).toContain(code);
      for (const code of o!.codes.filter((c) => !t.codes.includes(c))) expect(extraCodes, `${op}: unexpected answer ${code}`).toContain(code);
    }
    // The published security scheme, by its published name.
    expect(doc.components.securitySchemes.ApiKeyAuth).toEqual(published.components.securitySchemes.ApiKeyAuth);
  });

  it('documents a validation endpoint for every event code of the bundled catalogue, its body the channel schema the DIP validates with', () => {
    const catalogue = Catalogue.load();
    for (const c of catalogue.channels()) {
      for (const event of c.eventCodes) {
        const op = doc.paths[`/validate/${c.interfaceId}/${event}`]?.post as Json | undefined;
        expect(op, `${c.interfaceId} ${event}`).toBeDefined();
        expect(op!.requestBody.content['application/json'].schema.items).toEqual({ $ref: `#/components/schemas/${c.interfaceId}` });
      }
      const { definitions: _d, $schema: _s, ...schema } = catalogue.schema(c.interfaceId)!;
      const rewritten = JSON.parse(JSON.stringify(schema).replaceAll('"#/definitions/', '"#/components/schemas/'));
      // In 3.0's words (its meaning checked above).
      expect(doc.components.schemas[c.interfaceId], c.interfaceId).toEqual(schemaIn30(rewritten));
    }
  });

  it('documents the request bodies Fastify validates: the published WebhookConfig (and the same nested under config) and MessageRequest', () => {
    const body = (path: string) => doc.paths[path].post.requestBody.content['application/json'].schema as Json;
    for (const [path, name] of [
      ['/dip-channel/{id}/pubconfig/{recipient-id}', 'WebhookConfig'],
      ['/dip-channel/{id}/replay/{recipient-id}', 'MessageRequest'],
    ] as const) {
      const { definitions: _d, $schema: _s, ...schema } = publishedSchema(name);
      const { description: _desc, ...documented } = body(path);
      if (name === 'WebhookConfig') {
        // OpenDIP also takes the fields nested under config (docs/api-differences.md): the published ones, again.
        const { config, ...published } = documented.properties as Json;
        expect((config as Json).properties).toEqual(schema.properties);
        documented.properties = published;
      }
      expect(documented, path).toEqual(schemaIn30(JSON.parse(JSON.stringify(schema).replaceAll('"#/definitions/', '"#/components/schemas/'))));
    }
  });

  /** Checks an answer against the schema the document gives for its path, method and status. */
  const checker = () => {
    // Draft-07 with OpenAPI 3.0's nullable, which Ajv knows.
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addSchema({ $id: 'doc', components: doc.components });
    return (path: string, method: string, answer: { status: number; json: unknown }) => {
      const documented = doc.paths[path][method].responses[String(answer.status)] as Json | undefined;
      expect(documented, `${method} ${path} answered ${answer.status}, which the document does not list`).toBeDefined();
      const schema = JSON.parse(JSON.stringify(documented!.content['application/json'].schema).replaceAll('"#/components', '"doc#/components'));
      const valid = ajv.validate(schema, answer.json);
      expect(valid, `${method} ${path} ${answer.status}: ${ajv.errorsText()}`).toBe(true);
    };
  };

  it("tells the truth: the DIP's answers validate against the schema documented for their status code", async () => {
    const check = checker();
    const ok = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem()]) });
    expect(ok.status).toBe(201);
    check('/dip-channel/{id}', 'post', ok);
    const badBody = await send(h.t, h.sup, { path: `/dip-channel/IF-021/pubconfig/${h.sup.dipId}`, body: '{"callbackURL": 5}' });
    expect(badBody.status).toBe(400);
    check('/dip-channel/{id}/pubconfig/{recipient-id}', 'post', badBody);
    const notSigned = await send(h.t, h.sup, { path: `/dip-channel/IF-021/pubconfig/${h.sup.dipId}`, method: 'DELETE', headers: { 'x-dip-signature': undefined } });
    expect(notSigned.status).toBe(401);
    check('/dip-channel/{id}/pubconfig/{recipient-id}', 'delete', notSigned);
    const certificates = await send(h.t, h.sds, { path: '/certificates/dip', method: 'GET' });
    expect(certificates.status).toBe(200);
    check('/certificates/dip', 'get', certificates);
    // Maintenance notices (OpenDIP extension): the answer and a refused filter, as documented.
    const notices = await send(h.t, h.sds, { path: '/maintenance/notices', method: 'GET' });
    expect(notices.status).toBe(200);
    check('/maintenance/notices', 'get', notices);
    const badFilter = await send(h.t, h.sds, { path: '/maintenance/notices?channel=nonsense', method: 'GET' });
    expect(badFilter.status).toBe(400);
    check('/maintenance/notices', 'get', badFilter);
    const validated = await send(h.t, h.sds, { path: '/validate/IF-021/ActivePower', body: JSON.stringify([validItem()]) });
    expect(validated.status).toBe(201);
    check('/validate/IF-021/ActivePower', 'post', validated);
  });

  // A Host that is none of the listener's names is answered 421 MSG1000 before any route is chosen: every
  // operation may answer it, and the served document said so for none.
  it('declares the 421 answer to a wrong Host on every operation, and the answer validates against it', async () => {
    const check = checker();
    // node:https to 127.0.0.1 checks the certificate against servername, not the Host header (undici takes Host for both).
    const misdirected = await new Promise<{ status: number; json: unknown }>((resolve, reject) => {
      const { keyPem, certPem } = h.sds.credentials;
      httpsRequest({ host: '127.0.0.1', port: h.t.dip.port, path: '/certificates/dip', method: 'GET', servername: 'localhost', key: keyPem, cert: certPem, ca: h.t.dip.pki.ca.certPem, setHost: false, agent: false, headers: { host: 'victim.example' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown }));
      }).on('error', reject).end();
    });
    expect(misdirected.status).toBe(421);
    check('/certificates/dip', 'get', misdirected);
    const undeclared = Object.entries(doc.paths as Json).flatMap(([path, item]) => METHODS.filter((m) => item[m] && !(item[m] as Json).responses?.['421']).map((m) => `${m.toUpperCase()} ${path}`));
    expect(undeclared).toEqual([]);
  });

  it('gives every operation real answers: its success status and at least one refusal, each described, none a bare "Default Response"', () => {
    const bare: string[] = [];
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      for (const m of METHODS) {
        const op = item[m] as Json | undefined;
        if (!op) continue;
        const name = `${m.toUpperCase()} ${path}`;
        const answers = Object.entries((op.responses ?? {}) as Json);
        // @fastify/swagger writes `200: Default Response` for a route that declares no answers at all.
        if (answers.some(([, a]) => a.description === 'Default Response')) bare.push(`${name}: Default Response`);
        if (!answers.some(([code]) => /^2\d\d$/.test(code))) bare.push(`${name}: no success status`);
        // The health probes (200 or 503) and the data portal's whole lists (200) take no input and no
        // caller: nothing of theirs can be refused.
        const refusesNothing = ['/health', '/ready', '/catalogue/api/interfaces', '/catalogue/api/data-items', '/catalogue/api/flows'].includes(path);
        if (!refusesNothing && !answers.some(([code]) => /^4\d\d$/.test(code))) bare.push(`${name}: no 4xx`);
        for (const [code, a] of answers) if (/^[45]\d\d$/.test(code) && !a.content?.['application/json']?.schema) bare.push(`${name}: ${code} has no body schema`);
      }
    }
    expect(bare).toEqual([]);
  });

  it("tells the truth for OpenDIP's extensions too: publications, alarms, saved reports and self-service answers validate against their documented schemas", async () => {
    const check = checker();
    const sup = h.sup.dipId;
    // [method, path as called, body, status expected, path as documented]
    const cases: Array<[string, string, string | undefined, number, string]> = [
      ['GET', '/dip-channel/IF-047/publications', undefined, 200, '/dip-channel/{id}/publications'],
      ['GET', '/dip-channel/IF-047/publications/nope', undefined, 404, '/dip-channel/{id}/publications/{publicationId}'],
      ['GET', '/observability/alarms', undefined, 200, '/observability/alarms'],
      ['DELETE', '/observability/alarm-subscriptions/nope', undefined, 404, '/observability/alarm-subscriptions/{id}'],
      ['POST', '/observability/alarm-subscriptions', JSON.stringify({ rules: ['nonsense'] }), 400, '/observability/alarm-subscriptions'],
      ['GET', '/observability/saved-reports', undefined, 200, '/observability/saved-reports'],
      ['POST', '/observability/saved-reports', JSON.stringify({ name: 'documented', report: 'latency', period: 'day', channels: ['IF-021'] }), 201, '/observability/saved-reports'],
      ['POST', '/observability/saved-reports', JSON.stringify({ name: 'documented', report: 'latency', period: 'day' }), 400, '/observability/saved-reports'],
      ['GET', '/observability/saved-reports/nope', undefined, 404, '/observability/saved-reports/{id}'],
      ['GET', '/observability/saved-reports/nope/run', undefined, 404, '/observability/saved-reports/{id}/run'],
      ['DELETE', '/observability/saved-reports/nope', undefined, 404, '/observability/saved-reports/{id}'],
      ['GET', '/catalogue/api/search', undefined, 400, '/catalogue/api/search'],
      ['GET', `/participants/${sup}`, undefined, 200, '/participants/{recipient-id}'],
      ['PUT', `/participants/${sup}/roles/SUP`, undefined, 403, '/participants/{recipient-id}/roles/{role}'],
    ];
    for (const [method, path, body, status, documented] of cases) {
      const answer = await send(h.t, h.sup, { path, method, ...(body !== undefined ? { body } : {}) });
      expect(answer.status, `${method} ${path}`).toBe(status);
      check(documented, method.toLowerCase(), answer);
    }
  });

  it('tells the truth for pulled status messages (StandardResponse entries, not messages), encrypted egress and publication downloads', async () => {
    const check = checker();
    // A status message for SDS about a message it sent, pulled from its status queue: the 200 as documented.
    const sent = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem()]) });
    expect(sent.status, sent.text).toBe(201);
    const about = (sent.json as { messageArray: Array<{ transactionID: string }> }).messageArray[0]!.transactionID;
    const entry = { transactionID: about, senderUniqueReference: null, correlationID: null, sentTimestamp: dipDateTime(new Date()), senderID: h.sup.dipId, recipientID: h.sds.dipId, DIPConnectionProviderID: null, message: 'RCP1061 - MPAN Invalid or Unknown', help: null, serviceTicketURL: null };
    const told = await send(h.t, h.sup, { path: '/statusmessage', body: JSON.stringify([entry]) });
    expect(told.status, told.text).toBe(201);
    const pulled = await send(h.t, h.sds, { method: 'GET', path: `/statusmessage/pull/${h.sds.dipId}` });
    expect([pulled.status, (pulled.json as unknown[]).length], pulled.text).toEqual([200, 1]);
    check('/statusmessage/pull/{recipient-id}', 'get', pulled);
    // A message pulled on a channel of security pattern 2 or 3 carries EncryptedCustomBlock, not CustomBlock.
    const egress = doc.paths['/dip-channel/{id}/pull/{recipient-id}'].get.responses['200'].content['application/json'].schema as Json;
    const ajv = new Ajv({ strict: false, allErrors: true });
    const item = (payload: Json) => [{ payload }];
    expect(ajv.validate(egress, item({ CommonBlock: {}, EncryptedCustomBlock: 'eyJ.a.b.c.d' })), ajv.errorsText()).toBe(true);
    expect(ajv.validate(egress, item({ CommonBlock: {}, CustomBlock: {} }))).toBe(true);
    expect(ajv.validate(egress, item({ CommonBlock: {} }))).toBe(false);
    // A publication's content is documented as each media type it is served as (CSV here), not only bytes.
    for (const code of ['200', '206']) expect(Object.keys(doc.paths['/dip-channel/{id}/publications/{publicationId}/content'].get.responses[code].content)).toEqual(expect.arrayContaining(['text/csv', 'application/zip', 'application/octet-stream']));
  });

  it('serves Swagger UI under a Content-Security-Policy', async () => {
    const page = await get('/api/docs');
    expect(page.status).toBe(200);
    expect(page.text).toContain('swagger-ui');
    const csp = String(page.headers['content-security-policy'] ?? '');
    expect(csp).toContain("default-src 'self'");
    expect(csp).not.toContain("'unsafe-eval'");
  });
});
