/**
 * Every request gets an answer (issue 14, item 2). Every operation the participant listener serves is
 * sent every kind of JSON value as its body (null, true, 0, "", [], {}), signed and authenticated:
 * each must be answered within a second, with a specific 4xx StandardResponse where the value is not
 * what the operation takes, and its 2xx where it is (or where the operation takes no body). Then the
 * methods a published path does not take (405 with Allow) and the answers the published spec gives
 * for a webhook DELETE.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MSG } from '../../src/domain/response-codes.js';
import { dipDateTime } from '../../src/domain/time.js';
import { expectRefusal, expectStandardResponse, rawAnswerOf, rawTls, send, startHostileDip, SUP_ID, tlsOf, validItem, type HostileDip } from './helpers.js';

let h: HostileDip;
let received: string;
const window = {
  datetimeFrom: dipDateTime(new Date(Date.now() - 3_600_000)),
  datetimeTo: dipDateTime(new Date(Date.now() + 3_600_000)),
  eventCode: null,
  MPAN: null,
  version: null,
};

beforeAll(async () => {
  // /validate in its StandardResponse form (api.validateAnswer), so that its refusals are read as every
  // other operation's; its default, the published string, is test/validate-endpoints.test.ts's.
  h = await startHostileDip({ api: { emptyReplay: 'bad-request', validateAnswer: 'standard-response' } });
  const sent = await send(h.t, h.sds, { path: '/dip-channel/IF-021', body: JSON.stringify([validItem()]) });
  expect(sent.status, sent.text).toBe(201);
  received = (sent.json as { messageArray: Array<{ transactionID: string }> }).messageArray[0]!.transactionID;
});
afterAll(async () => {
  await h?.close();
});

const KINDS: ReadonlyArray<[string, string]> = [
  ['null', 'null'],
  ['true', 'true'],
  ['0', '0'],
  ['""', '""'],
  ['[]', '[]'],
  ['{}', '{}'],
];

interface Operation {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  as: 'sds' | 'sup';
  /** A body the operation takes, and the 2xx it answers; null when the operation takes no body. */
  valid: (() => string) | null;
  ok: number;
  /** What the 400 says for each JSON kind, when the operation takes a body (default: the body's type). */
  refusal?: RegExp;
}

const statusEntry = () => ({
  transactionID: received,
  senderUniqueReference: null,
  correlationID: null,
  sentTimestamp: dipDateTime(new Date()),
  senderID: SUP_ID,
  recipientID: null,
  DIPConnectionProviderID: null,
  message: 'RCP1061 - MPAN Invalid or Unknown',
  help: null,
  serviceTicketURL: null,
});

/** Every operation of the listener, in an order whose valid calls leave the next one's state right. */
const OPERATIONS: Operation[] = [
  { method: 'POST', path: '/dip-channel/IF-021', as: 'sds', valid: () => JSON.stringify([validItem()]), ok: 201, refusal: /must be a JSON array|empty array/ },
  { method: 'POST', path: '/validate/IF-021/ActivePower', as: 'sds', valid: () => JSON.stringify([validItem()]), ok: 201, refusal: /must be a JSON array|empty array/ },
  { method: 'POST', path: `/dip-channel/IF-021/pubconfig/${SUP_ID}`, as: 'sup', valid: () => JSON.stringify({ callbackURL: 'http://127.0.0.1:9/hook' }), ok: 201, refusal: /the body must be of type object|callbackURL is required/ },
  { method: 'DELETE', path: `/dip-channel/IF-021/pubconfig/${SUP_ID}`, as: 'sup', valid: null, ok: 204 },
  { method: 'POST', path: `/dip-channel/IF-021/replay/${SUP_ID}`, as: 'sup', valid: () => JSON.stringify(window), ok: 200, refusal: /the body must be of type object|datetimeFrom is required/ },
  { method: 'POST', path: `/dip-channel/IF-021/requeue/${SUP_ID}`, as: 'sup', valid: () => JSON.stringify(window), ok: 200, refusal: /the body must be of type object|datetimeFrom is required/ },
  { method: 'GET', path: `/dip-channel/IF-021/pull/${SUP_ID}`, as: 'sup', valid: null, ok: 200 },
  { method: 'POST', path: `/dip-channel/IF-021/ack/${SUP_ID}`, as: 'sup', valid: () => JSON.stringify({ sequence: 0 }), ok: 200, refusal: /the body must be of type object|sequence is required/ },
  { method: 'POST', path: '/statusmessage', as: 'sup', valid: () => JSON.stringify([statusEntry()]), ok: 201, refusal: /the body must be of type array|the body must have at least 1 items/ },
  { method: 'POST', path: `/statusmessage/config/${SUP_ID}`, as: 'sup', valid: () => JSON.stringify({ callbackURL: 'http://127.0.0.1:9/status' }), ok: 201, refusal: /the body must be of type object|callbackURL is required/ },
  { method: 'DELETE', path: `/statusmessage/config/${SUP_ID}`, as: 'sup', valid: null, ok: 204 },
  { method: 'GET', path: '/certificates/dip', as: 'sup', valid: null, ok: 200 },
  { method: 'GET', path: `/certificates/participant/${SUP_ID}`, as: 'sup', valid: null, ok: 200 },
  { method: 'GET', path: '/health', as: 'sup', valid: null, ok: 200 },
];

/** Signed by the operation's caller; no answer within a second fails the test. */
const call = (op: Operation, body: string) => send(h.t, h[op.as], { method: op.method, path: op.path, body, timeoutMs: 1000 });

describe('every JSON value kind to every operation', () => {
  for (const op of OPERATIONS) {
    describe(`${op.method} ${op.path}`, () => {
      // A GET has no body the DIP reads (nor may a signature cover one): it is asked once, without.
      if (op.method === 'GET') {
        it(`answers within a second with ${op.ok}`, async () => {
          const a = await send(h.t, h[op.as], { method: 'GET', path: op.path, timeoutMs: 1000 });
          expect(a.status, a.text.slice(0, 300)).toBe(op.ok);
        });
        return;
      }
      it.each(KINDS)(`answers %s within a second: ${op.valid ? '400 MSG1001 naming why' : `${op.ok}, the body ignored`}`, async (_name, body) => {
        const a = await call(op, body);
        if (op.valid) {
          expectRefusal(a, 400, op.refusal);
          expect((a.json as { messageArray: Array<{ message: string }> }).messageArray[0]?.message).toBe(MSG.schemaFailure);
        } else {
          expect(a.status, a.text.slice(0, 300)).toBe(op.ok);
        }
      });

      if (op.valid) {
        it(`answers what it takes with ${op.ok}`, async () => {
          const a = await call(op, op.valid!());
          expect(a.status, a.text.slice(0, 300)).toBe(op.ok);
          if (a.text) expect(a.json).toBeDefined();
        });
      }
    });
  }
});

// A lone surrogate (RFC 8259 8.2) was refused in messages but taken in the other bodies: a status message
// carrying one is passed on to its recipient, whose strict reader (serde_json) refuses it there.
describe('a lone UTF-16 surrogate in the bodies other than messages', () => {
  it.each([
    ['a status message', '/statusmessage', () => JSON.stringify([{ ...statusEntry(), help: 'HELP' }]).replace('HELP', 'bad \\ud800'), /\[0\]\.help holds a lone UTF-16 surrogate/],
    ['a webhook registration', `/statusmessage/config/${SUP_ID}`, () => '{"callbackURL":"https://127.0.0.1:9/\\udc00"}', /callbackURL holds a lone UTF-16 surrogate/],
  ])('refuses %s holding one with 400 MSG1001 naming the field', async (_what, path, body, help) => {
    const a = await send(h.t, h.sup, { path, body: body() });
    expectRefusal(a, 400, help);
    expect((a.json as { messageArray: Array<{ message: string }> }).messageArray[0]?.message).toBe(MSG.schemaFailure);
  });
});

describe('methods and answers the published API documents', () => {
  it.each([
    ['GET', '/dip-channel/IF-021', 'POST'],
    ['PUT', `/dip-channel/IF-021/pubconfig/${SUP_ID}`, 'DELETE, POST'],
    ['GET', `/dip-channel/IF-021/replay/${SUP_ID}`, 'POST'],
    ['DELETE', '/statusmessage', 'POST'],
    ['PATCH', `/statusmessage/config/${SUP_ID}`, 'DELETE, POST'],
    ['POST', '/health', 'GET, HEAD'],
    ['GET', '/validate/IF-021/ActivePower', 'POST'],
    // Methods HTTP defines beyond those seven (RFC 9110 TRACE, QUERY, WebDAV's PROPFIND, LINK …) were 404
    // "no such resource" on these same paths.
    ['TRACE', '/dip-channel/IF-021', 'POST'],
    ['QUERY', '/statusmessage', 'POST'],
    ['PROPFIND', `/dip-channel/IF-021/replay/${SUP_ID}`, 'POST'],
    ['LINK', `/statusmessage/config/${SUP_ID}`, 'DELETE, POST'],
  ])('%s %s: 405 with Allow: %s', async (method, path, allow) => {
    const a = await send(h.t, h.sup, { method, path, body: '', timeoutMs: 1000 });
    expect(a.status, a.text).toBe(405);
    expect(a.headers['allow']).toBe(allow);
    expectStandardResponse(a, `${method} ${path}`);
    expect(a.text).toContain(`${method} is not allowed on`);
  });

  /** A request written on the socket as is (undici sends neither CONNECT nor a method it does not know). */
  const raw = async (requestLine: string, headers: string[] = []) => {
    const r = await rawTls(h.t, { ...tlsOf(h.sup), write: `${[requestLine, `Host: localhost:${h.t.dip.port}`, ...headers, 'Connection: close'].join('\r\n')}\r\n\r\n`, timeoutMs: 2000 });
    expect(r.closedByServer, r.text).toBe(true);
    return rawAnswerOf(r);
  };

  // CONNECT was answered with nothing: Node hands it to a 'connect' listener and, without one, destroys the socket.
  it.each([
    [`localhost:PORT`, ''],
    ['/dip-channel/IF-021', 'POST'],
    [`/dip-channel/IF-021/pubconfig/${SUP_ID}`, 'DELETE, POST'],
  ])('CONNECT %s: 405 with Allow: "%s", the security headers and a StandardResponse, then closed', async (target, allow) => {
    const a = await raw(`CONNECT ${target.replace('PORT', String(h.t.dip.port))} HTTP/1.1`);
    expectRefusal(a, 405, /CONNECT is not allowed/, `CONNECT ${target}`);
    expect(a.header('allow')).toBe(allow);
    expect(a.header('x-content-type-options')).toBe('nosniff');
    expect(a.header('cache-control')).toBe('no-store');
    expect(a.header('connection')).toBe('close');
  });

  // A method token HTTP does not define (method names are case-sensitive: `get` is not GET) was 400 "not
  // valid HTTP/1.1 (HPE_INVALID_METHOD)"; RFC 9110 9.1: a method the server does not recognise is 501.
  it.each(['FOO', 'get', 'Post'])('%s /dip-channel/IF-021: 501 naming the method', async (method) => {
    const a = await raw(`${method} /dip-channel/IF-021 HTTP/1.1`);
    expectRefusal(a, 501, new RegExp(`the method ${method} is not implemented`), method);
    expect(a.header('x-content-type-options')).toBe('nosniff');
  });

  it('a request line whose method is not a token at all is still 400', async () => {
    expectRefusal(await raw('P@ST /dip-channel/IF-021 HTTP/1.1'), 400, /HPE_INVALID_METHOD/);
  });

  // Was 400 "Method 'QUERY' must provide a 'Content-Type' header.": the body was checked before the method.
  it('QUERY without a Content-Type on a published path is 405 too', async () => {
    const a = await raw('QUERY /statusmessage HTTP/1.1', ['Content-Length: 0']);
    expectRefusal(a, 405, /QUERY is not allowed on \/statusmessage/);
    expect(a.header('allow')).toBe('POST');
  });

  it('a path that is not published is still 404', async () => {
    const a = await send(h.t, h.sup, { method: 'GET', path: '/dip-channel/IF-021/nothing/here', timeoutMs: 1000 });
    expectRefusal(a, 404, /no such resource/);
  });

  it('DELETE of a webhook answers 204 whether or not one was registered (the published answer)', async () => {
    const path = `/dip-channel/IF-021/pubconfig/${SUP_ID}`;
    expect((await send(h.t, h.sup, { path, body: JSON.stringify({ callbackURL: 'http://127.0.0.1:9/x' }) })).status).toBe(201);
    for (let i = 0; i < 2; i++) {
      const a = await send(h.t, h.sup, { method: 'DELETE', path });
      expect([a.status, a.text]).toEqual([204, '']);
    }
  });
});
