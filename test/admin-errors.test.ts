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

  const call = async (method: 'GET' | 'POST' | 'PATCH', path: string, body?: string, auth = true) => {
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
    // A value outside a list is named with the list, not just "one of the allowed values".
    ['an alarm rule that does not exist', 'POST', '/admin/alarms/subscriptions', '{"rules":["dead-letters"],"email":"ops@example.net"}', 400, /^body\/rules\/0 must be equal to one of the allowed values: dead-letter, queue-depth, queue-age, delivery-latency, webhook-failing, certificate-expiring, /],
    ['a report granularity that does not exist', 'GET', '/admin/reports/throughput?granularity=week', undefined, 400, /^querystring\/granularity must be equal to one of the allowed values: minute, hour, day, month$/],
    ['a body that is not JSON by its Content-Type', 'POST', '/admin/dead-letters/discard', 'x', 415, /Content-Type 'application\/xml' is not accepted: send application\/json/],
  ] as const)('%s: {"error": why}', async (_what, method, path, body, status, why) => {
    const a = await call(method, path, body);
    expect(a.status).toBe(status);
    expect(Object.keys(a.body)).toEqual(['error']);
    expect(a.body['error']).toMatch(why);
  });

  // Fastify's default Ajv options strip a property a schema with additionalProperties: false does not list
  // (removeAdditional): a misspelt field was dropped and the call did something else. Each is refused now,
  // named with where it is and what the operation takes there, and nothing is done.
  it.each([
    ['a misspelt seqs on a requeue', 'POST', '/admin/dead-letters/requeue', '{"recipientDipId":"1000000001","channel":"IF-021","seq":[93]}', /^body must NOT have additional property 'seq' \(known fields: recipientDipId, channel, seqs\)$/],
    ['a field no requeue takes', 'POST', '/admin/dead-letters/requeue', '{"recipientDipId":"1000000001","channel":"IF-021","foo":1}', /^body must NOT have additional property 'foo'/],
    ['a field no discard takes', 'POST', '/admin/dead-letters/discard', '{"recipientDipId":"1000000001","channel":"IF-021","seqs":[1],"all":true}', /^body must NOT have additional property 'all'/],
    ['a field an operator account does not have', 'POST', '/admin/operators', '{"name":"dora","role":"viewer","bogus":1}', /^body must NOT have additional property 'bogus' \(known fields: name, role, automation, displayName\)$/],
    ['an override key misplaced at the top', 'PATCH', '/admin/channels/IF-022', '{"staleAfterMinute":5}', /^body must NOT have additional property 'staleAfterMinute' \(known fields: settings, optIn, note, expectedVersion\)$/],
    ['a misspelt override key', 'PATCH', '/admin/channels/IF-022', '{"settings":{"staleAfterMinute":5}}', /^body\/settings must NOT have additional property 'staleAfterMinute' \(known fields: senderRoles, receiverRoles, alwaysRoles, alwaysParticipants, workflowStarter, staleAfterMinutes, /],
    ['a query parameter the journal does not take', 'GET', '/admin/journal?actr=operator:bootstrap', undefined, /^querystring must NOT have additional property 'actr' \(known fields: actor, action, target, before, from, to, limit, format\)$/],
    ['a misspelt dead-letter filter (it would list every dead letter)', 'GET', '/admin/dead-letters?recipent=1000000001', undefined, /^querystring must NOT have additional property 'recipent' \(known fields: recipient, channel, state, limit\)$/],
    ['a misspelt attempts filter', 'GET', '/admin/attempts?recipient=1000000001&channel=IF-021&limt=5', undefined, /^querystring must NOT have additional property 'limt'/],
  ] as const)('%s: 400 naming it', async (_what, method, path, body, why) => {
    const a = await call(method, path, body);
    expect(a.status, JSON.stringify(a.body)).toBe(400);
    expect(Object.keys(a.body)).toEqual(['error']);
    expect(a.body['error']).toMatch(why);
  });

  // Found by a black-box tester: a text/plain body was parsed as a string and refused "body must be
  // object", while a form body was 415; every body that is not JSON is 415 now, naming both types.
  it.each([
    ['text/plain', '{"recipientDipId":"1000000001","channel":"IF-021"}', /^Content-Type 'text\/plain' is not accepted: send application\/json$/],
    ['text/plain; charset=utf-8', 'requeue please', /^Content-Type 'text\/plain; charset=utf-8' is not accepted: send application\/json$/],
    ['application/x-www-form-urlencoded', 'recipientDipId=1000000001&channel=IF-021', /^Content-Type 'application\/x-www-form-urlencoded' is not accepted: send application\/json$/],
  ] as const)('a %s body: 415 naming the type received and the one expected', async (type, body, why) => {
    const res = await request(`http://127.0.0.1:${t.dip.adminPort}/admin/dead-letters/requeue`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': type }, body });
    const answer = (await res.body.json()) as Record<string, unknown>;
    expect(res.statusCode, JSON.stringify(answer)).toBe(415);
    expect(answer).toEqual({ error: expect.stringMatching(why) });
  });

  // Fastify reads a repeated query parameter as an array of its values: it was refused "must be integer".
  it.each([
    ['/admin/dead-letters?limit=1&limit=2', /^querystring\/limit is given 2 times: give it once$/],
    ['/admin/attempts?recipient=1000000001&recipient=1000000002&channel=IF-021', /^querystring\/recipient is given 2 times: give it once$/],
    ['/admin/dead-letters?state=dead&state=requeued&state=discarded', /^querystring\/state is given 3 times: give it once$/],
  ] as const)('a query parameter given more than once (%s): 400 saying so', async (path, why) => {
    const a = await call('GET', path);
    expect(a.status, JSON.stringify(a.body)).toBe(400);
    expect(a.body).toEqual({ error: expect.stringMatching(why) });
  });

  it('does nothing for a refused call: no operator made, no channel version recorded', async () => {
    expect((await call('POST', '/admin/operators', '{"name":"erin","role":"viewer","bogus":1}')).status).toBe(400);
    const operators = (await call('GET', '/admin/operators')).body as unknown as Array<{ name: string }>;
    expect(operators.map((o) => o.name)).not.toContain('erin');
    expect((await call('PATCH', '/admin/channels/IF-022', '{"staleAfterMinute":5}')).status).toBe(400);
    expect((await call('PATCH', '/admin/channels/IF-022', '{"settings":{"staleAfterMinute":5}}')).status).toBe(400);
    expect((await call('GET', '/admin/channels/IF-022')).body).toMatchObject({ version: 0 });
  });

  it('asks for the token before saying whether an operation exists', async () => {
    const a = await call('GET', '/admin/nothing', undefined, false);
    expect(a.status).toBe(401);
    expect(a.body['error']).toMatch(/operator credential is required/);
  });
});
