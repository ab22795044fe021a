import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type ReceivedCall, type WebhookReceiver } from '../src/client/webhook-receiver.js';
import { issueServerCertificate } from '../src/security/pki.js';
import { internalAddressReason, WebhookDestinations } from '../src/security/webhook-destinations.js';
import { buildIF021 } from '../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from './helpers/dip-harness.js';

/** A resolver for names the test makes up: nothing here touches the machine's DNS. */
function fakeDns(table: Record<string, () => string[]>): LookupFunction & { asked: string[] } {
  const asked: string[] = [];
  const fn = ((hostname: string, options: { all?: boolean }, callback: (err: NodeJS.ErrnoException | null, a: string | LookupAddress[], f?: number) => void) => {
    asked.push(hostname);
    const answer = table[hostname.toLowerCase()]?.();
    if (!answer) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
    const all = answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    if (options.all) callback(null, all);
    else callback(null, all[0]!.address, all[0]!.family);
  }) as LookupFunction & { asked: string[] };
  fn.asked = asked;
  return fn;
}

/** Polls an asynchronous reading until it satisfies the check (real sockets and timers are awaited). */
async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('internal addresses (the rules, without the allow-list)', () => {
  it.each([
    ['127.0.0.1', /loopback/],
    ['127.255.0.9', /loopback/],
    ['10.1.2.3', /private address \(10\.0\.0\.0\/8/],
    ['172.16.0.1', /private address \(172\.16\.0\.0\/12/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private address \(192\.168/],
    ['169.254.169.254', /link-local .*metadata/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['100.127.255.254', /carrier-grade NAT/],
    ['0.0.0.0', /"this network"/],
    ['224.0.0.251', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['198.18.0.1', /benchmarking/],
    // Clouds' metadata and platform addresses, each named for what it is.
    ['168.63.129.16', /platform address of Azure \(168\.63\.129\.16/],
    ['::ffff:168.63.129.16', /IPv4-mapped IPv6 form of 168\.63\.129\.16, a platform address of Azure/],
    ['100.100.100.200', /metadata service address of Alibaba Cloud \(100\.100\.100\.200/],
    ['fd00:ec2::254', /instance metadata service address of AWS over IPv6 \(fd00:ec2::254/],
    ['::1', /loopback address \(::1\)/],
    ['::', /unspecified/],
    ['fd12:3456::1', /unique-local/],
    ['fe80::1', /link-local address \(fe80/],
    ['ff02::1', /multicast/],
    ['::127.0.0.1', /deprecated IPv4-compatible IPv6 address \(::\/96/],
    ['::8.8.8.8', /deprecated IPv4-compatible IPv6 address/],
    ['::ffff:127.0.0.1', /IPv4-mapped IPv6 form of 127\.0\.0\.1, a loopback/],
    ['::ffff:a9fe:a9fe', /IPv4-mapped IPv6 form of 169\.254\.169\.254/],
    // IPv4-translated (RFC 2765 SIIT): some stacks route it to the IPv4 address inside.
    ['::ffff:0:a9fe:a9fe', /IPv4-translated IPv6 form of 169\.254\.169\.254/],
    ['::ffff:0:7f00:1', /IPv4-translated IPv6 form of 127\.0\.0\.1, a loopback/],
    ['64:ff9b::a00:1', /NAT64 IPv6 form of 10\.0\.0\.1/],
    ['2002:c0a8:101::1', /6to4 IPv6 form of 192\.168\.1\.1/],
  ])('%s is refused: %s', (address, why) => {
    expect(internalAddressReason(address)).toMatch(why);
  });

  it.each(['8.8.8.8', '1.1.1.1', '168.63.129.17', '172.32.0.1', '100.128.0.1', '169.255.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:0808:0808::1', '::ffff:0:808:808'])('%s is an ordinary public address', (address) => {
    expect(internalAddressReason(address)).toBeNull();
  });
});

describe('the destination policy', () => {
  const dns = fakeDns({ 'inside.test': () => ['10.0.0.7'], 'outside.test': () => ['93.184.215.14'], 'mixed.test': () => ['93.184.215.14', '127.0.0.1'] });

  it('checks literals and resolved names at registration, naming the rule', async () => {
    const d = new WebhookDestinations({ enforce: true, lookup: dns });
    expect(await d.checkUrl('https://127.0.0.1:8444/admin')).toMatch(/^127\.0\.0\.1 is a loopback address .*webhookAllowList/);
    expect(await d.checkUrl('https://[::1]/')).toMatch(/loopback/);
    expect(await d.checkUrl('https://[::ffff:169.254.169.254]/latest/meta-data/')).toMatch(/IPv4-mapped .*169\.254\.169\.254/);
    expect(await d.checkUrl('http://[::ffff:0:a9fe:a9fe]/')).toMatch(/IPv4-translated .*169\.254\.169\.254/);
    expect(await d.checkUrl('https://inside.test/hook')).toMatch(/^inside\.test resolves to 10\.0\.0\.7, a private address/);
    expect(await d.checkUrl('https://mixed.test/hook')).toMatch(/resolves to 127\.0\.0\.1/);
    expect(await d.checkUrl('https://outside.test/hook')).toBeNull();
    // A name that does not resolve now is accepted: the connection checks it again.
    expect(await d.checkUrl('https://not-yet.test/hook')).toBeNull();
  });

  it('lets the allow-list through: addresses, ranges, names and subdomains', async () => {
    const d = new WebhookDestinations({ enforce: true, lookup: dns, allowList: ['10.0.0.0/24', 'fd00:1::/32', '192.168.5.5', 'Partner.Example', '*.private.test'] });
    expect(await d.checkUrl('https://10.0.0.200/')).toBeNull();
    expect(await d.checkUrl('https://10.0.1.1/')).toMatch(/private/);
    expect(await d.checkUrl('https://[fd00:1::9]/')).toBeNull();
    expect(await d.checkUrl('https://[fd00:2::9]/')).toMatch(/unique-local/);
    expect(await d.checkUrl('https://192.168.5.5/')).toBeNull();
    expect(await d.checkUrl('https://inside.test/')).toBeNull(); // resolves into 10.0.0.0/24
    expect(await d.checkUrl('https://partner.example/')).toBeNull(); // never resolved: trusted by name
    expect(await d.checkUrl('https://a.b.private.test/')).toBeNull();
    expect(() => new WebhookDestinations({ enforce: true, allowList: ['10.0.0.0/33'] })).toThrow(/webhookAllowList: '10\.0\.0\.0\/33'/);
  });

  it('allows everything in DEV', async () => {
    const d = new WebhookDestinations({ enforce: false, lookup: dns });
    expect(await d.checkUrl('http://127.0.0.1:9000/dip')).toBeNull();
    expect(d.checkHost('169.254.169.254')).toBeNull();
  });

  it('refuses at connection time what a name resolves to then, in both lookup forms', async () => {
    let answer = '93.184.215.14';
    const d = new WebhookDestinations({ enforce: true, lookup: fakeDns({ 'rebind.test': () => [answer] }) });
    expect(await d.checkUrl('https://rebind.test/')).toBeNull();
    answer = '127.0.0.1';
    const one = await new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((resolve) => d.lookup('rebind.test', {}, (err, address) => resolve({ err, address })));
    expect(one.err?.code).toBe('EDESTINATIONREFUSED');
    expect(one.err?.message).toMatch(/rebind\.test resolved to 127\.0\.0\.1, a loopback address/);
    const all = await new Promise<NodeJS.ErrnoException | null>((resolve) => d.lookup('rebind.test', { all: true }, (err) => resolve(err)));
    expect(all?.code).toBe('EDESTINATIONREFUSED');
    answer = '93.184.215.14';
    const ok = await new Promise<unknown>((resolve) => d.lookup('rebind.test', { all: true }, (_err, a) => resolve(a)));
    expect(ok).toEqual([{ address: '93.184.215.14', family: 4 }]);
  });
});

describe('webhook destinations on a SIT DIP (registration and delivery)', () => {
  let t: TestDip;
  let sds: TestParticipant;
  let sup: TestParticipant;
  let receiver: WebhookReceiver;
  const calls: ReceivedCall[] = [];
  // rebind.test: a public address when the participant registers it, loopback when the DIP connects.
  let rebindAnswer = '93.184.215.14';
  const dns = fakeDns({
    'rebind.test': () => [rebindAnswer],
    'partner.test': () => ['127.0.0.1'],
    'office.test': () => ['192.168.10.20'],
  });

  beforeAll(async () => {
    t = await startTestDip({ environment: 'SIT', webhookAllowList: ['partner.test', '10.20.0.0/16'], channels: { 'IF-021': { staleAfterMinutes: 0.03, allowShortRetention: true } } }, undefined, { lookup: dns });
    sds = await t.participant('2000000001', ['SDS']);
    sup = await t.participant('1000000001', ['SUP']);
    const tls = await issueServerCertificate(t.dip.pki.ca, { hostnames: ['rebind.test', 'partner.test'], ipAddresses: ['127.0.0.1'], validDays: 1 });
    receiver = await startWebhookReceiver({ host: '127.0.0.1', tls: { key: tls.keyPem, cert: tls.certPem }, trustedCas: [t.dip.pki.ca.certPem], onCall: (c) => calls.push(c) });
  });
  afterAll(async () => {
    await receiver?.close();
    await t?.close();
  });

  it.each([
    ['https://127.0.0.1:8444/admin/dead-letters', /127\.0\.0\.1 is a loopback address \(127\.0\.0\.0\/8\)/],
    ['https://169.254.169.254/latest/meta-data/', /169\.254\.169\.254 is a link-local address .*metadata/],
    ['https://10.0.0.5/hook', /10\.0\.0\.5 is a private address \(10\.0\.0\.0\/8, RFC 1918\)/],
    ['https://172.20.1.1/hook', /private address \(172\.16\.0\.0\/12/],
    ['https://192.168.0.10/hook', /private address \(192\.168\.0\.0\/16/],
    ['https://100.100.1.1/hook', /carrier-grade NAT/],
    ['https://0.0.0.0/hook', /"this network"/],
    ['https://[::1]/hook', /loopback address \(::1\)/],
    ['https://[fd00::5]/hook', /unique-local/],
    ['https://[fe80::5]/hook', /link-local address \(fe80/],
    ['https://[::ffff:10.0.0.5]/hook', /IPv4-mapped IPv6 form of 10\.0\.0\.5/],
    ['https://[::127.0.0.1]/hook', /::7f00:1 is a deprecated IPv4-compatible IPv6 address/],
    ['https://224.0.0.1/hook', /multicast/],
    ['https://office.test/hook', /office\.test resolves to 192\.168\.10\.20, a private address/],
  ])('pubconfig refuses %s', async (url, why) => {
    const a = await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: url });
    expect(a.status).toBe(400);
    expect(a.body.messageArray[0]!.message).toMatch(/^MSG1001/);
    expect(a.body.messageArray[0]!.help).toMatch(/^callbackURL: /);
    expect(a.body.messageArray[0]!.help).toMatch(why);
    expect(a.body.messageArray[0]!.help).toMatch(/webhookAllowList/);
  });

  it('status-message config refuses the same', async () => {
    const a = await sup.client.setStatusWebhook(sup.dipId, { callbackURL: 'https://169.254.169.254/latest/meta-data/iam' });
    expect(a.status).toBe(400);
    expect(a.body.messageArray[0]!.help).toMatch(/link-local/);
    expect((await sup.client.setStatusWebhook(sup.dipId, { callbackURL: 'https://office.test/status' })).status).toBe(400);
  });

  it('accepts what the allow-list names, and public destinations', async () => {
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: 'https://10.20.3.4/hook' })).status).toBe(201);
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: 'https://93.184.215.14/hook' })).status).toBe(201);
  });

  const send = async (suffix: string) => {
    const item = buildIF021({ senderDipId: sds.dipId, senderRole: 'SDS', primaryRecipients: [sup.dipId], uniqueSuffix: suffix, envTag: 'SIT' });
    const a = await sds.client.submit('IF-021', [item]);
    expect(a.status, JSON.stringify(a.body)).toBe(201);
    return a.body.messageArray[0]!.transactionID!;
  };

  it('refuses a name rebound to loopback at connection time: retried, then dead-lettered, the receiver never called', async () => {
    const port = new URL(receiver.url).port;
    rebindAnswer = '93.184.215.14';
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `https://rebind.test:${port}/hook` })).status).toBe(201);
    rebindAnswer = '127.0.0.1'; // the attacker's DNS now answers with the DIP's own loopback
    const tx = await send('rebind1');
    const queue = { recipientDipId: sup.dipId, channel: 'IF-021' };
    const attempts = await until(() => t.dip.backend.archive.attempts(queue, 100), (a) => a.length >= 2, 'two refused attempts');
    for (const a of attempts) {
      expect(a.verdict).toBe('retry');
      expect(a.status).toBeNull();
      expect(a.error).toMatch(/EDESTINATIONREFUSED: rebind\.test resolved to 127\.0\.0\.1, a loopback address \(127\.0\.0\.0\/8\)/);
    }
    // Stale after ~2 s on this channel: set aside like any undeliverable message.
    await until(() => t.dip.backend.deadLetters.deadLetters({ ...queue, limit: 10 }), (d) => d.some((x) => x.transactionId === tx), 'the dead letter');
    expect(calls).toHaveLength(0);
    expect(dns.asked).toContain('rebind.test');
  });

  it('refuses an IP literal at connection time too (a webhook stored before the rules, or in DEV)', async () => {
    await t.dip.backend.registry.putWebhook({ recipientDipId: sup.dipId, channel: 'IF-021', url: `${receiver.url}literal`, maxMessageCount: 10, maxPayloadKb: 1024, registeredBy: sup.dipId });
    const before = (await t.dip.backend.archive.attempts({ recipientDipId: sup.dipId, channel: 'IF-021' }, 1000)).length;
    await send('literal1');
    const attempts = await until(() => t.dip.backend.archive.attempts({ recipientDipId: sup.dipId, channel: 'IF-021' }, 1000), (a) => a.length > before && a.some((x) => x.url.endsWith('/literal')), 'a refused attempt');
    const mine = attempts.filter((a) => a.url.endsWith('/literal'));
    expect(mine[0]!.error).toMatch(/EDESTINATIONREFUSED: 127\.0\.0\.1 is a loopback address/);
    expect(calls).toHaveLength(0);
  });

  it('delivers to a private link on the allow-list (partner.test resolves to 127.0.0.1)', async () => {
    const port = new URL(receiver.url).port;
    expect((await sup.client.setWebhook('IF-021', sup.dipId, { callbackURL: `https://partner.test:${port}/hook` })).status).toBe(201);
    const tx = await send('partner1');
    await waitFor(() => calls.some((c) => c.messages.some((m) => (m as { payload: { CommonBlock: { D0: { transactionID: string } } } }).payload.CommonBlock.D0.transactionID === tx)), 10_000, 'delivery to partner.test');
    expect(calls.every((c) => c.signature.ok)).toBe(true);
  });
});
