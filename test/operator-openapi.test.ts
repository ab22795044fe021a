/**
 * The operator API's OpenAPI document (issue 12, items 1 and 5): served on the operator listener without
 * the token (its reference is public on that loopback listener; every call stays behind the token), valid
 * by a real OpenAPI validator, listing every operation the listener registers (so a route added tomorrow
 * without its documentation fails here), and telling the truth: the listener's answers validate against
 * the schema documented for their status code.
 */
import SwaggerParser from '@apidevtools/swagger-parser';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { OPERATOR_DOCS } from '../src/api/admin-schemas.js';
import { adminApi, type AdminAnswer } from './helpers/admin.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';
import { totpCode } from '../src/security/portal-credentials.js';

type Json = Record<string, any>;
const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

describe('the OpenAPI document of the operator listener', () => {
  let t: TestDip;
  let doc: Json;
  let admin: ReturnType<typeof adminApi>;
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await request(`http://127.0.0.1:${t.dip.adminPort}${path}`, { headers });
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  };
  beforeAll(async () => {
    t = await startTestDip();
    admin = adminApi(t);
    const res = await get(`${OPERATOR_DOCS}/json`);
    expect(res.status, res.text).toBe(200);
    doc = JSON.parse(res.text) as Json;
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is served without the operator token, as JSON and as the same document in YAML, and Swagger UI under a Content-Security-Policy', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const yaml = await get(`${OPERATOR_DOCS}/yaml`);
    expect(yaml.status).toBe(200);
    expect(parse(yaml.text)).toEqual(doc);
    const page = await get(OPERATOR_DOCS);
    expect(page.status).toBe(200);
    expect(page.text).toContain('swagger-ui');
    expect(String(page.headers['content-security-policy'] ?? '')).toContain("default-src 'self'");
    // Only the reference is open: the operations are not.
    expect((await get('/admin/health')).status).toBe(401);
    expect((await get(`${OPERATOR_DOCS}-not/json`)).status).toBe(401);
    expect(doc.components.securitySchemes.operatorToken).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.security).toEqual([{ operatorToken: [] }]);
  });

  // The listener refuses a property a body's schema does not list (400 naming it) only where the schema
  // says additionalProperties: false; an object schema that says nothing would take any field and ignore
  // it, the fault that had a misspelt `seqs` requeue a whole queue. So every request body says it, at
  // every level that lists properties.
  it('declares additionalProperties: false on every request body object that lists its properties', () => {
    const open: string[] = [];
    const walk = (schema: unknown, at: string): void => {
      if (typeof schema !== 'object' || schema === null) return;
      const s = schema as Json;
      if (s.properties !== undefined && s.additionalProperties !== false) open.push(at);
      for (const [name, sub] of Object.entries((s.properties ?? {}) as Json)) walk(sub, `${at}/${name}`);
      if (s.items !== undefined) walk(s.items, `${at}[]`);
    };
    let bodies = 0;
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      for (const [method, op] of Object.entries(item as Json)) {
        const body = (op as Json).requestBody?.content?.['application/json']?.schema as Json | undefined;
        if (!body) continue;
        bodies += 1;
        // A body kept as a component is looked at there.
        const ref = typeof body.$ref === 'string' ? body.$ref.replace('#/components/schemas/', '') : undefined;
        walk(ref ? doc.components.schemas[ref] : body, `${method.toUpperCase()} ${path} body`);
      }
    }
    expect(bodies).toBeGreaterThan(20);
    expect(open).toEqual([]);
  });

  it('is a valid OpenAPI 3.1 document, every $ref resolving (@apidevtools/swagger-parser)', async () => {
    const api = await SwaggerParser.validate(structuredClone(doc) as never);
    expect(Object.keys(api.paths ?? {}).length).toBeGreaterThan(30);
  });

  it('lists every operation the operator listener registers, each with a summary, its answers and its refusals', () => {
    const registered = t.dip.operations.operator.filter((op) => op.method !== 'HEAD' && !(op.schema)?.hide && !op.url.startsWith(OPERATOR_DOCS));
    expect(registered.length).toBeGreaterThan(40);
    const documented = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Json)) for (const m of Object.keys(item as Json)) documented.add(`${m.toUpperCase()} ${path}`);
    for (const op of registered) {
      const name = `${op.method} ${op.url.replace(/:(\w+)/g, '{$1}')}`;
      expect(documented, `${name} is registered but not documented`).toContain(name);
      const o = doc.paths[op.url.replace(/:(\w+)/g, '{$1}')][op.method.toLowerCase()] as Json;
      expect(o.summary, `${name} has no summary`).toEqual(expect.any(String));
      const codes = Object.keys(o.responses);
      expect(codes.some((c) => c.startsWith('2')), `${name} documents no success answer`).toBe(true);
      for (const code of ['401', '403', '500']) expect(codes, `${name} does not document ${code}`).toContain(code);
    }
    // And nothing documented that is not served.
    const served = new Set(registered.map((op) => `${op.method} ${op.url.replace(/:(\w+)/g, '{$1}')}`));
    for (const name of documented) expect(served, `${name} is documented but not served`).toContain(name);
  });

  it("tells the truth: the listener's answers validate against the schema documented for their status code", async () => {
    const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
    ajv.addSchema({ $id: 'doc', components: doc.components });
    const check = (method: string, path: string, answer: AdminAnswer, type = 'application/json') => {
      const documented = doc.paths[path]?.[method]?.responses?.[String(answer.status)] as Json | undefined;
      expect(documented, `${method} ${path} answered ${answer.status}, which the document does not list`).toBeDefined();
      if (answer.status === 204) return;
      const schema = JSON.parse(JSON.stringify(documented!.content[type].schema).replaceAll('"#/components', '"doc#/components'));
      expect(ajv.validate(schema, answer.body), `${method} ${path} ${answer.status}: ${ajv.errorsText()} in ${JSON.stringify(answer.body).slice(0, 300)}`).toBe(true);
    };
    // Something in every list: a participant, a dead letter's worth of state, an operator, a subscription.
    const sup = await t.participant('1000000001', ['SUP']);
    const created = await admin('POST', '/admin/operators', { name: 'alice', role: 'viewer', automation: true });
    expect(created.status).toBe(201);
    check('post', '/admin/operators', created);
    check('post', '/admin/operators', await admin('POST', '/admin/operators', { name: 'alice', role: 'viewer' }));
    // A person: the answer carries the sign-in credential; signing in and out as documented.
    const person = await admin('POST', '/admin/operators', { name: 'vera', role: 'viewer' });
    check('post', '/admin/operators', person);
    check('post', '/admin/session', await admin('POST', '/admin/session', { name: 'vera', password: 'not hers', code: '000000' }));
    // Her first sign-in: the password alone starts her TOTP enrolment (403), a second start meanwhile is 409.
    const enrolment = await admin('POST', '/admin/session', { name: 'vera', password: person.body.password });
    expect(enrolment.status).toBe(403);
    check('post', '/admin/session', enrolment);
    const competing = await admin('POST', '/admin/session', { name: 'vera', password: person.body.password });
    expect(competing.status).toBe(409);
    check('post', '/admin/session', competing);
    const offer = enrolment.body.totpEnrolment as { token: string; secret: string };
    const firstCode = totpCode(offer.secret, Date.now());
    check('post', '/admin/session/enrolment', await admin('POST', '/admin/session/enrolment', { token: offer.token, code: firstCode === '000000' ? '111111' : '000000', newPassword: 'vera chose this one' }));
    const mustChoose = await admin('POST', '/admin/session/enrolment', { token: offer.token, code: firstCode });
    expect(mustChoose.status).toBe(403);
    check('post', '/admin/session/enrolment', mustChoose);
    const session = await admin('POST', '/admin/session/enrolment', { token: offer.token, code: firstCode, newPassword: 'vera chose this one' });
    expect(session.status).toBe(200);
    check('post', '/admin/session/enrolment', session);
    check('delete', '/admin/session', await adminApi(t, session.body.token)('DELETE', '/admin/session'));
    // Her lost factor reset (200 with a new first password), an automation account's refused (409), no account (404).
    const reset = await admin('POST', '/admin/operators/vera/totp-reset');
    expect(reset.status).toBe(200);
    for (const answer of [reset, await admin('POST', '/admin/operators/alice/totp-reset'), await admin('POST', '/admin/operators/nobody/totp-reset')]) check('post', '/admin/operators/{name}/totp-reset', answer);
    const renewed = await admin('PATCH', '/admin/operators/alice', { newToken: true });
    check('patch', '/admin/operators/{name}', renewed);
    const viewerToken = renewed.body.token as string;
    const viewer = adminApi(t, viewerToken);
    check('post', '/admin/keys/rotate', await viewer('POST', '/admin/keys/rotate'));
    const portal = await admin('POST', '/admin/portal/accounts', { username: 'sup-admin', displayName: 'Supplier admin', participantDipId: sup.dipId, admin: true });
    check('post', '/admin/portal/accounts', portal);
    // A participant's administrator too is made without a second factor: the answer carries no secret
    // for its creator to keep (the person sets theirs up at the first sign-in), and the document says none.
    expect(Object.keys(portal.body).sort()).toEqual(['admin', 'createdAt', 'createdBy', 'disabled', 'displayName', 'level', 'participantDipId', 'password', 'passwordExpiresAt', 'username']);
    expect((await t.dip.backend.portalAccounts.account('user', 'sup-admin'))?.totpSecretSealed).toBeNull();
    // A first password: kept by no cache.
    expect(portal.headers?.['cache-control']).toBe('no-store');
    check('post', '/admin/portal/accounts/{username}/disabled', await admin('POST', '/admin/portal/accounts/sup-admin/disabled', { disabled: true }));
    check('post', '/admin/portal/accounts/{username}/disabled', await admin('POST', '/admin/portal/accounts/nobody/disabled', { disabled: true }));
    check('post', '/admin/alarms/subscriptions', await admin('POST', '/admin/alarms/subscriptions', { rules: ['dead-letter'], email: 'ops@example.org' }));
    check('post', '/admin/mpan/changes', await admin('POST', '/admin/mpan/changes', [{ mpan: '1234567890123', slot: 'SUP', dipId: sup.dipId }]));
    check('get', '/admin/mpan/{mpan}', await admin('GET', '/admin/mpan/1234567890123'));
    check('post', '/admin/dead-letters/requeue', await admin('POST', '/admin/dead-letters/requeue', { recipientDipId: sup.dipId, channel: 'IF-021' }));
    check('post', '/admin/dead-letters/discard', await admin('POST', '/admin/dead-letters/discard', { recipientDipId: sup.dipId, channel: 'IF-021' }));
    check('post', '/admin/queues/resume', await admin('POST', '/admin/queues/resume', { recipientDipId: sup.dipId, channel: 'IF-021' }));
    check('post', '/admin/channels/{id}/pause', await admin('POST', '/admin/channels/IF-021/pause', { note: 'test' }));
    check('post', '/admin/channels/{id}/pause', await admin('POST', '/admin/channels/IF-021/pause', {}));
    check('get', '/admin/channels/{id}/history', await admin('GET', '/admin/channels/IF-021/history'));
    check('get', '/admin/channels/{id}', await admin('GET', '/admin/channels/IF-999'));
    check('get', '/admin/reports/journey/{transactionId}', await admin('GET', '/admin/reports/journey/T-none'));
    check('get', '/admin/attempts', await admin('GET', `/admin/attempts?recipient=${sup.dipId}&channel=IF-021`));
    check('get', '/admin/attempts', await admin('GET', '/admin/attempts'));
    // Every read without path parameters, with the bootstrap token and without any.
    for (const [path, item] of Object.entries(doc.paths as Json)) {
      if (!item.get || path.includes('{') || path === '/metrics') continue;
      check('get', path, await admin('GET', path));
      const anonymous = await get(path);
      check('get', path, { status: anonymous.status, body: JSON.parse(anonymous.text) });
    }
    const metrics = await get('/metrics', { authorization: `Bearer ${viewerToken}` });
    expect(metrics.status).toBe(200);
    expect(doc.paths['/metrics'].get.responses['200'].content['text/plain'].schema).toEqual({ type: 'string' });
  });
});
