/**
 * The operator API answers only requests naming it (src/security/host-names.ts, src/api/admin.ts): a page
 * of another site that rebinds its name to 127.0.0.1 (DNS rebinding) is same-origin with the listener to
 * the browser, which sends the page's own name as Host; such a request is refused 421 before sign-in,
 * the documentation or anything else reads it. The loopback names pass on any port (a tunnel), as do the
 * names of `operators.allowedHosts` (the portals' in-process calls, Fastify inject's `localhost:80`, are
 * checked by test/portal-forms.test.ts and test/portal.e2e.test.ts).
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../src/config.js';
import { hostHeaderName, hostKnown, knownHostNames } from '../src/security/host-names.js';
import { startTestDip, type TestDip } from './helpers/dip-harness.js';

/** One request to the operator listener with the Host header given. */
function call(port: number, method: string, path: string, host: string, body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) };
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, setHost: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.setHeader('host', host);
    req.on('error', reject);
    req.end(body);
  });
}

describe('the operator API refuses a Host that is not its own', () => {
  let t: TestDip;
  beforeAll(async () => {
    t = await startTestDip({ operators: { ...DEFAULTS.operators, allowedHosts: ['Ops.Example.NET'] } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('refuses sign-in, the documentation and any other call naming another host with 421, naming why', async () => {
    const port = t.dip.adminPort;
    const signIn = JSON.stringify({ username: 'alice', password: 'not-her-password-at-all', code: '000000' });
    for (const host of [`rebind.attacker.example:${port}`, 'rebind.attacker.example', `127.0.0.1.attacker.example:${port}`, `localhost.:${port}x`, `evil@127.0.0.1:${port}`, '127.1', '']) {
      const session = await call(port, 'POST', '/admin/session', host, signIn);
      const docs = await call(port, 'GET', '/admin/api/docs/json', host);
      const unknown = await call(port, 'GET', '/no/such/path', host);
      for (const [what, a] of [['session', session], ['docs', docs], ['unknown', unknown]] as const) {
        expect([host, what, a.status]).toEqual([host, what, 421]);
        expect([host, what, (JSON.parse(a.body) as { error: string }).error]).toEqual([host, what, expect.stringContaining('DNS rebinding')]);
      }
      // The refusal does not list the allow-list's names (a rebinding page reads it).
      expect(session.body).not.toContain('ops.example.net');
    }
  });

  it('answers its loopback names on any port, the allow-list names, and a request without Host', async () => {
    const port = t.dip.adminPort;
    for (const host of [`127.0.0.1:${port}`, '127.0.0.1', `localhost:${port}`, `LocalHost.:9000`, `[::1]:${port}`, '[::1]', `ops.example.net:${port}`, 'OPS.example.net.']) {
      const docs = await call(port, 'GET', '/admin/api/docs/json', host);
      expect([host, docs.status]).toEqual([host, 200]);
    }
    // Without Host (HTTP/1.0: Node refuses an HTTP/1.1 request without one): no browser sends that.
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end('GET /admin/api/docs/json HTTP/1.0\r\n\r\n'));
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1'))).on('end', () => resolve(text)).on('error', reject);
    });
    expect(raw.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
  });

  it('reads a Host header as its name alone', () => {
    expect(hostHeaderName('LOCALHOST:8444')).toBe('localhost');
    expect(hostHeaderName('localhost.')).toBe('localhost');
    expect(hostHeaderName('[::1]:8444')).toBe('::1');
    // An IPv6 address in its shortest form, as the names it is compared with (a certificate lists ::1 at length).
    expect(hostHeaderName('[0:0:0:0:0:0:0:1]')).toBe('::1');
    for (const bad of ['::1', 'a b', 'user@localhost', 'localhost/x', '[localhost]', 'localhost:', 'localhost:123456', '', '-a.example']) expect([bad, hostHeaderName(bad)]).toEqual([bad, null]);
    const known = knownHostNames('127.0.0.1', ['ops.example.net'], 'operators.allowedHosts');
    expect([...known].sort()).toEqual(['127.0.0.1', '::1', 'localhost', 'ops.example.net']);
    expect([...knownHostNames('192.0.2.7', [], 'x')]).toEqual(['192.0.2.7']);
    expect(hostKnown(undefined, known)).toBe(true);
    expect(hostKnown('dip.attacker.example', known)).toBe(false);
    expect(() => knownHostNames('127.0.0.1', ['https://ops.example.net'], 'operators.allowedHosts')).toThrow(/operators.allowedHosts 'https:\/\/ops.example.net' is not a host name/);
  });
});
