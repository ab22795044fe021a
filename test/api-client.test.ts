/**
 * The typed API clients (issue 12, item 5): their types are what `npm run api:generate` makes of the
 * OpenAPI documents the listeners serve now, so a route whose schema changed without regenerating fails
 * here, and the portal, typed by them, stops compiling when a schema change breaks what it reads; the
 * operator client answers over the in-process transport exactly as the listener does over HTTP.
 */
import Fastify from 'fastify';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientTypes, currentDocuments, GENERATED, SOURCES } from '../scripts/generate-api-client.js';
import { inProcessTransport } from '../src/api/in-process.js';
import { operatorApi, participantApi } from '../src/openapi-client/index.js';
import { startTestDip } from './helpers/dip-harness.js';
import { validItem } from './hostile/helpers.js';
import { contentHash } from '../src/security/signature.js';
import type { ApiDocuments } from '../src/app.js';

describe('the typed API clients', () => {
  let documents: ApiDocuments;
  beforeAll(async () => {
    documents = await currentDocuments();
  });

  for (const listener of ['operator', 'participant'] as const) {
    it(`${listener}: the committed types are what the listener's document makes (else run npm run api:generate)`, async () => {
      const committed = readFileSync(GENERATED[listener], 'utf8');
      const regenerated = await clientTypes(documents[listener], SOURCES[listener]);
      // Not toBe on a megabyte: the first differing line says what changed.
      const a = committed.split('\n');
      const b = regenerated.split('\n');
      const at = a.findIndex((line, i) => line !== b[i]);
      expect(at === -1 && a.length === b.length, `${GENERATED[listener]} is stale from line ${at + 1} (committed ${JSON.stringify(a[at])}, now ${JSON.stringify(b[at])}): run npm run api:generate`).toBe(true);
    });
  }
});

describe('the in-process transport the portals call the operator API over', () => {
  const app = Fastify();
  app.get<{ Querystring: { limit?: number } }>('/admin/whoami', { schema: { querystring: { type: 'object', properties: { limit: { type: 'integer' } } } } }, async (req) => ({
    name: req.headers['x-opendip-acting-operator'],
    role: 'viewer',
    limit: req.query.limit,
  }));
  app.post<{ Body: { disabled: boolean } }>('/admin/portal/accounts/:username/disabled', async (req, reply) =>
    req.body.disabled ? reply.code(404).send({ error: `no portal account '${(req.params as { username: string }).username}'` }) : reply.code(204).send(),
  );
  afterAll(() => app.close());

  it('carries method, path, query, headers and JSON body in, and status, headers and body out, as a typed client reads them', async () => {
    const api = operatorApi(inProcessTransport(app, { 'x-opendip-acting-operator': 'alice' }));
    const who = await api.GET('/admin/whoami');
    expect(who.response.status).toBe(200);
    expect(who.response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(who.data).toEqual({ name: 'alice', role: 'viewer' });
    const refused = await api.POST('/admin/portal/accounts/{username}/disabled', { params: { path: { username: 'a b' } }, body: { disabled: true } });
    expect(refused.response.status).toBe(404);
    expect(refused.error).toEqual({ error: "no portal account 'a b'" });
    const empty = await api.POST('/admin/portal/accounts/{username}/disabled', { params: { path: { username: 'bob' } }, body: { disabled: false } });
    expect(empty.response.status).toBe(204);
    expect(empty.error).toBeUndefined();
    const raw = await inProcessTransport(app, {})(new Request('http://in-process.invalid/admin/whoami?limit=7', { headers: { 'x-opendip-acting-operator': 'carol' } }));
    expect(await raw.json()).toEqual({ name: 'carol', role: 'viewer', limit: 7 });
  });
});

describe('the participant client over a signing transport', () => {
  it('sends signed calls to a real DIP over mutual TLS and reads their typed answers', async () => {
    const t = await startTestDip();
    try {
      const sds = await t.participant('2000000001', ['SDS']);
      const supplier = await t.participant('1000000001', ['SUP']);
      const api = participantApi(sds.client.transport());
      const certificates = await api.GET('/certificates/dip');
      expect(certificates.response.status).toBe(200);
      expect(certificates.data?.ca).toContain('BEGIN CERTIFICATE');
      const sent = await api.POST('/dip-channel/{id}', { params: { path: { id: 'IF-021' } }, body: [validItem(sds.dipId)] });
      expect(sent.response.status, JSON.stringify(sent.error)).toBe(201);
      expect(sent.data?.messageArray?.[0]?.transactionID).toMatch(/^T-/);
      const refused = await api.POST('/dip-channel/{id}', { params: { path: { id: 'IF-021' } }, body: [] });
      expect(refused.response.status).toBe(400);
      expect(refused.error?.messageArray?.length).toBeGreaterThan(0);

      // A replay's answer as it came: its signature headers and its bytes, so a caller can verify it (and read
      // the X-Continuation-Token of a 206), and the request's own headers go out (the token it sends back).
      const sup = participantApi(supplier.client.transport());
      const filter = { datetimeFrom: '2000-01-01T00:00:00+00:00', datetimeTo: '2100-01-01T00:00:00+00:00', eventCode: null, MPAN: null, version: null };
      const path = { id: 'IF-021', 'recipient-id': supplier.dipId };
      const replayed = await sup.POST('/dip-channel/{id}/replay/{recipient-id}', { params: { path }, body: filter, parseAs: 'arrayBuffer' });
      expect(replayed.response.status).toBe(200);
      const bytes = Buffer.from(replayed.data as ArrayBuffer);
      expect(replayed.response.headers.get('x-dip-content-hash')).toBe(contentHash(bytes));
      expect(replayed.response.headers.get('x-dip-signature')).toMatch(/^[\w+/]+=*$/);
      const badToken = await sup.POST('/dip-channel/{id}/replay/{recipient-id}', { params: { path, header: { 'x-continuation-token': 'not-a-token' } }, body: filter });
      expect(badToken.response.status).toBe(400);
      expect(JSON.stringify(badToken.error)).toContain('x-continuation-token must be a UUID');
    } finally {
      await t.close();
    }
  });
});
