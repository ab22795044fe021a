import { describe, expect, it } from 'vitest';
import { callbackUrlShapeProblem } from '../src/domain/callback-url.js';
import { webhookConfigProblem } from '../src/pipeline/webhook-config.js';
import { dipWithSupplier } from './helpers/dip-harness.js';

/**
 * A callback URL the DIP could not call is refused when it is configured (400, MSG1001, the field and the
 * reason), not accepted and every message to it dead-lettered later as stale.
 */
describe('callbackURL: what the DIP cannot call is refused at configuration', () => {
  // [callbackURL, what the answer says]
  const refused: Array<[string, RegExp]> = [
    ['https:///hook', /callbackURL names no host/],
    ['https://:443/hook', /callbackURL names no host/],
    ['https://?x=1', /callbackURL names no host/],
    ['https://sup.example:99999/hook', /callbackURL port '99999' is not a port/],
    ['https://sup.example:0/hook', /callbackURL port 0 cannot be called/],
    ['https://1.2.3.4.5/hook', /callbackURL host '1\.2\.3\.4\.5' is neither a host name nor an IP address/],
    ['https://sup example.com/hook', /callbackURL host 'sup example\.com' is neither/],
    ['https://sup.example/hook#part', /callbackURL must not carry a fragment/],
    ['https://sup.example/hook#', /callbackURL must not carry a fragment/],
    ['https://sup.example/ho\tok', /callbackURL must not contain tabs, line breaks or other control characters/],
    ['https://sup.example/hook\n', /callbackURL must not contain tabs, line breaks/],
    ['https://sup.example\\hook', /callbackURL must not contain a backslash before its query/],
    ['https://sup.example/a\\b?x=1', /callbackURL must not contain a backslash before its query/],
    [`https://${'a'.repeat(64)}.example/hook`, /callbackURL host label 'a{20}…' is 64 characters long: a DNS label has at most 63/],
    [`https://${Array.from({ length: 5 }, () => 'b'.repeat(50)).join('.')}.example/hook`, /callbackURL host is 262 characters long: a DNS name has at most 253/],
    ['https://sup.example/hook ', /callbackURL must not begin or end with spaces/],
  ];
  it.each(refused)('%j is refused', (url, why) => {
    expect(webhookConfigProblem({ callbackURL: url }, 'PRD')).toMatch(why);
    // The same in DEV: none of these is about TLS.
    expect(webhookConfigProblem({ callbackURL: url.replace(/^https/, 'http') }, 'DEV')).toMatch(why);
  });

  // Awkward but callable: the DIP calls (and signs) them as an HTTP client serialises them.
  const accepted = [
    'https://sup.example:443/hook',
    'https://SUP.Example/Hook',
    'https://sup.example',
    'https://sup.example/in box/a%2Fb?x=1 2',
    'https://sup.example/hook?',
    'https://[2001:db8::1]:8443/hook',
    'https://süp.example/hook',
    'https://sup.example.:8443/a/./b/../c',
    // In the query a backslash is sent as written (test/webhook-signed-url.test.ts verifies its signature).
    'https://sup.example/hook?a=b\\c',
    // At the limits: a 63-character label, a 253-character name (with or without its final dot).
    `https://${'a'.repeat(63)}.example/hook`,
    `https://${Array.from({ length: 4 }, () => 'c'.repeat(62)).join('.')}.e/hook`,
    `https://${Array.from({ length: 4 }, () => 'c'.repeat(62)).join('.')}.e./hook`,
  ];
  it.each(accepted)('%j is accepted', (url) => {
    expect(callbackUrlShapeProblem(url)).toBeNull();
    expect(webhookConfigProblem({ callbackURL: url }, 'PRD')).toBeNull();
  });

  it('the rules that were there before still come first (scheme, credentials, TLS outside DEV)', () => {
    expect(webhookConfigProblem({ callbackURL: 'ftp://sup.example/hook' }, 'DEV')).toMatch(/must be an http\(s\) URL/);
    // secretlint-disable-next-line -- a made-up credential: the refusal of one is what is tested
    expect(webhookConfigProblem({ callbackURL: 'https://u:p@sup.example/hook#x' }, 'PRD')).toMatch(/must not carry a user name or password/);
    expect(webhookConfigProblem({ callbackURL: 'http://sup.example/hook#x' }, 'PRD')).toMatch(/must be https in the PRD environment/);
  });

  describe('over the participant API', () => {
    const dip = dipWithSupplier();
    const stored = async (channel: string) => (await dip.t.dip.backend.registry.webhooks()).find((w) => w.recipientDipId === dip.sup.dipId && w.channel === channel);

    // Each passes the published schema (format uri), so only the DIP's own rules can refuse it.
    const cases: Array<[string, string, RegExp]> = [
      ['pubconfig', `/dip-channel/IF-021/pubconfig/1000000001`, /callbackURL names no host/],
      ['status config', `/statusmessage/config/1000000001`, /callbackURL names no host/],
    ];
    it.each(cases)('%s: 400 MSG1001 naming callbackURL, and nothing stored', async (_what, path, why) => {
      for (const [url, reason] of [
        ['http:///hook', why],
        ['http://sup.example:99999/hook', /port '99999'/],
        ['http://sup.example/hook#part', /fragment/],
        ['http://1.2.3.4.5/hook', /neither a host name nor an IP address/],
      ] as const) {
        const answer = await dip.sup.client.call('POST', path, JSON.stringify({ callbackURL: url }));
        expect(answer.status, url).toBe(400);
        expect(answer.body.messageArray[0], url).toMatchObject({ message: 'MSG1001 - Schema Failure', help: expect.stringMatching(reason) });
      }
      expect(await stored(path.startsWith('/statusmessage') ? 'STATUS' : 'IF-021')).toBeUndefined();
    });

    it('an awkward but callable URL is accepted', async () => {
      const answer = await dip.sup.client.call('POST', `/dip-channel/IF-021/pubconfig/1000000001`, JSON.stringify({ callbackURL: 'http://SUP.example:80/hook?' }));
      expect(answer.status).toBe(201);
      expect(await stored('IF-021')).toMatchObject({ url: 'http://SUP.example:80/hook?' });
    });
  });
});
