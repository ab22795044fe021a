/**
 * The operator API refuses in one shape, {"error": "<what and why>"}: found by the operation fuzzer
 * (test/fuzz), which got Fastify's {statusCode, code, error: "Bad Request", message} from a body that
 * is not JSON, a body or query its schema refuses, a path parameter of the wrong form, and ("Unsupported
 * Media Type" alone) a Content-Type other than JSON.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';

describe('operator API refusals', () => {
  let t: TestDip;
  let token: string;
  beforeAll(async () => {
    t = await startTestDip();
    token = readFileSync(join(t.config.dataDir, 'admin-token'), 'utf8').trim();
  });
  afterAll(async () => {
    await t?.close();
  });

  const call = async (method: 'GET' | 'POST', path: string, body?: string, auth = true) => {
    const res = await request(`http://127.0.0.1:${t.dip.adminPort}${path}`, {
      method,
      headers: { ...(auth ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': body === 'x' ? 'application/xml' : 'application/json' }) },
      body,
    });
    return { status: res.statusCode, body: (await res.body.json()) as Record<string, unknown> };
  };

  it.each([
    ['a body that is not JSON', 'POST', '/admin/dead-letters/requeue', '{', 400, /the body is not valid JSON/],
    ['a __proto__ key', 'POST', '/admin/mpan/changes', '{"__proto__":{"x":1}}', 400, /the body is not valid JSON \(keys __proto__/],
    ['a body its schema refuses', 'POST', '/admin/queues/resume', '{"channel":"IF-021"}', 400, /body must have required property 'recipientDipId'/],
    ['a query its schema refuses', 'GET', '/admin/attempts?channel=IF-021', undefined, 400, /querystring must have required property 'recipient'/],
    ['a path parameter of the wrong form', 'GET', '/admin/mpan/12', undefined, 400, /params\/mpan must match pattern/],
    ['an operation that does not exist', 'GET', '/admin/nothing', undefined, 404, /no such operation: GET \/admin\/nothing/],
    ['a body that is not JSON by its Content-Type', 'POST', '/admin/dead-letters/discard', 'x', 415, /Content-Type 'application\/xml' is not accepted: send application\/json/],
  ] as const)('%s: {"error": why}', async (_what, method, path, body, status, why) => {
    const a = await call(method, path, body);
    expect(a.status).toBe(status);
    expect(Object.keys(a.body)).toEqual(['error']);
    expect(a.body['error']).toMatch(why);
  });

  it('asks for the token before saying whether an operation exists', async () => {
    const a = await call('GET', '/admin/nothing', undefined, false);
    expect(a.status).toBe(401);
    expect(a.body['error']).toMatch(/operator credential is required/);
  });
});
