/**
 * Alarm webhooks obey the destination rules of message webhooks on every connection (security review
 * of the alarms work): registration refused internal URLs, but each notice was POSTed with undici's
 * global dispatcher, so a name rebound to an internal address after registration (DNS rebinding) was
 * called. Now the alarm channel connects through the same destination-checked agent.
 *
 * And they are signed as webhook calls are (an independent test found none signed: anyone who learnt
 * the URL could forge a RESOLVED notice): over the URL as requested, the body left as it was; over a
 * string of their own (`NOTICE;…`), so that none verifies as a delivery at a message webhook.
 */
import type { LookupFunction } from 'node:net';
import { createServer, type Server } from 'node:http';
import { buildConnector, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destinationCheckedAgent } from '../src/adapters/http/webhook-client.js';
import { SmtpAlarmChannel } from '../src/adapters/mail/alarm-channel.js';
import { API_VERSION_HEADER, DIP_API_VERSION } from '../src/domain/api-version.js';
import { listenOutput } from '../src/cli/listen-output.js';
import { LruMap } from '../src/domain/lru-map.js';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import type { AlarmNotice, MaintenanceEvent, NoticeSigner } from '../src/ports/alarms.js';
import { createCertificateAuthority, issueSigningCertificate } from '../src/security/pki.js';
import { Signer, verifyChain, verifyDipSignature } from '../src/security/signature.js';
import { WebhookDestinations } from '../src/security/webhook-destinations.js';

/** Every name resolves to this machine: a public-looking name rebound to loopback. */
const rebound: LookupFunction = ((_hostname: string, options: { all?: boolean }, callback: (err: null, a: unknown, f?: number) => void) => {
  if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}) as LookupFunction;

/** The destination rules do not depend on the signature: these cases sign nothing. */
const unsigned: NoticeSigner = { signNotice: () => Promise.resolve({}) };

const notice: AlarmNotice = { kind: 'raised', condition: { key: 'dead-letter:x', rule: 'dead-letter', participant: null, summary: 'a dead letter', since: 0 }, at: 0, asOf: 0 };

/** An alarm channel that signs its webhook notices as the DIP does, with a signing certificate of a fresh CA. */
async function signingChannel() {
  const ca = await createCertificateAuthority({ commonName: 'test CA', environment: 'TEST', validDays: 2 });
  const signing = await issueSigningCertificate(ca, { commonName: 'the DIP', validDays: 2 });
  const signer = new Signer(signing.keyPem, signing.certPem);
  const channel = new SmtpAlarmChannel(null, new WebhookDestinations({ enforce: false, lookup: rebound }), { signNotice: async (method, url, body) => ({ ...(await signer.signNotice(method, url, body)) }) }, 'DEV');
  return { ca, signer, channel };
}

describe('alarm webhooks and internal networks', () => {
  let server: Server;
  let port: number;
  const received: string[] = [];
  /** Each call as the server saw it: the URL rebuilt from Host and the request target, headers, body. */
  const calls: Array<{ url: string; headers: Record<string, string | string[] | undefined>; body: Buffer }> = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      received.push(req.url ?? '');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        calls.push({ url: `http://${req.headers.host ?? ''}${req.url ?? ''}`, headers: req.headers, body: Buffer.concat(chunks) });
        res.statusCode = req.url?.startsWith('/refuse') ? 500 : 200;
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('outside DEV, refuses an internal address and a name that resolves to one when it connects', async () => {
    const channel = new SmtpAlarmChannel(null, new WebhookDestinations({ enforce: true, lookup: rebound }), unsigned, 'PROD');
    try {
      await expect(channel.webhook(`https://127.0.0.1:${port}/literal`, notice)).rejects.toMatchObject({ code: 'EDESTINATIONREFUSED' });
      await expect(channel.webhook(`https://alarms.example.net:${port}/rebound`, notice)).rejects.toMatchObject({ code: 'EDESTINATIONREFUSED', message: /loopback/ });
      expect(received).toEqual([]);
    } finally {
      await channel.close();
    }
  });

  it('in DEV (rules not enforced), the same URLs are called', async () => {
    const channel = new SmtpAlarmChannel(null, new WebhookDestinations({ enforce: false, lookup: rebound }), unsigned, 'DEV');
    try {
      await channel.webhook(`http://127.0.0.1:${port}/literal`, notice);
      await channel.webhook(`http://alarms.example.net:${port}/rebound`, notice);
      expect(received).toEqual(['/literal', '/rebound']);
    } finally {
      await channel.close();
    }
  });

  // A subscription stored before alarm webhooks had to be https outside DEV: its notices are not sent in clear.
  it('outside DEV, does not call a plain http webhook URL, saying why (the notice fails, logged as every failed notice)', async () => {
    const channel = new SmtpAlarmChannel(null, new WebhookDestinations({ enforce: false, lookup: rebound }), unsigned, 'PROD');
    try {
      const before = received.length;
      await expect(channel.webhook(`http://127.0.0.1:${port}/plain?code=s3cret`, notice)).rejects.toMatchObject({
        code: 'EPLAINHTTP',
        message: `webhook http://127.0.0.1:${port}/plain?code=… not called: webhookUrl must be https in the PROD environment (plain http is for DEV only); subscribe again with an https URL`,
      });
      expect(received.length).toBe(before);
    } finally {
      await channel.close();
    }
  });

  // secrev3 M2: the failure's message (logged) named the URL whole, its key with it.
  it("a failed notice's error names the URL in its shown form, not its query's key", async () => {
    const channel = new SmtpAlarmChannel(null, new WebhookDestinations({ enforce: false, lookup: rebound }), unsigned, 'DEV');
    try {
      await expect(channel.webhook(`http://127.0.0.1:${port}/refuse?code=s3cret`, notice)).rejects.toThrow(new Error(`webhook http://127.0.0.1:${port}/refuse?code=… answered 500`));
    } finally {
      await channel.close();
    }
  });

  it('signs each notice with the X-DIP-* headers over the URL as requested, its body unchanged', async () => {
    const { ca, channel } = await signingChannel();
    try {
      // Written otherwise than requested (a dot segment, an empty query): the subscriber sees /signed only.
      await channel.webhook(`http://127.0.0.1:${port}/x/../signed?`, notice);
      const call = calls.find((c) => c.url.endsWith('/signed'));
      expect(call?.url).toBe(`http://127.0.0.1:${port}/signed`);
      expect(call!.body.toString('utf8')).toBe(JSON.stringify(notice));
      expect(call!.headers['content-type']).toBe('application/json');
      // As every message webhook call and every participant API answer says it (README "API versions").
      expect(call!.headers[API_VERSION_HEADER]).toBe(DIP_API_VERSION);
      const verified = verifyDipSignature({ method: 'POST', url: call!.url, body: call!.body, headers: call!.headers, now: new Date(), maxSkewMs: 300_000, notice: true });
      expect(verified).toMatchObject({ ok: true, stringToSign: expect.stringMatching(/^NOTICE;POST;http:\/\/127\.0\.0\.1:\d+\/signed;/) });
      expect(verified.ok && verifyChain(verified.certificate.pem, [ca.certPem])).toBe(true);
      // Security review: signed as a message call, a notice subscribed at another recipient's message
      // webhook verified there as a genuine DIP delivery. Its own string to sign verifies as no call.
      expect(verifyDipSignature({ method: 'POST', url: call!.url, body: call!.body, headers: call!.headers, now: new Date(), maxSkewMs: 300_000 })).toMatchObject({ ok: false, reason: 'bad-signature' });
    } finally {
      await channel.close();
    }
  });

  // A probe's subscriber, with a receiver built with `dip listen`, had every notice refused (400: the
  // receiver took only arrays of messages), so alarms and maintenance notices never reached it.
  it('the receiver `dip listen` runs takes each notice (alarm, maintenance), verifies its signature, and prints it; a forged one is refused', async () => {
    const { ca, signer, channel } = await signingChannel();
    const taken: ReceivedCall[] = [];
    // As `dip listen` starts it, bar the port: no `respond`, so the receiver's own answer is what is tested.
    const receiver = await startWebhookReceiver({ trustedCas: [ca.certPem], onCall: (c) => taken.push(c) });
    const maintenance: MaintenanceEvent = {
      type: 'maintenance',
      kind: 'published',
      notice: { id: 'MN-1', version: 1, start: '2026-12-05T02:00:00.000Z', end: '2026-12-05T03:00:00.000Z', text: 'Database upgrade', scope: 'dip', channels: [], state: 'published', publishedAt: '2026-12-03T10:00:00.000Z', changedAt: '2026-12-03T10:00:00.000Z' },
      at: 1,
    };
    try {
      await channel.webhook(`${receiver.url}alarms`, notice);
      await channel.webhook(`${receiver.url}alarms`, maintenance);
      expect(taken.map((c) => [c.signature.ok, c.messages, c.notice])).toEqual([
        [true, [], { type: 'alarm', kind: 'raised', body: notice }],
        [true, [], { type: 'maintenance', kind: 'published', body: maintenance }],
      ]);
      // What `dip listen` prints of each: the notice and that its signature was verified.
      expect(taken.flatMap((c) => listenOutput(c, new LruMap(10)))).toEqual([
        { notice: 'alarm raised', signature: 'verified', body: notice },
        { notice: 'maintenance published', signature: 'verified', body: maintenance },
      ]);
      // Anyone who learns the URL could post a RESOLVED notice to hide a live alarm: unsigned, refused.
      const forged = await request(`${receiver.url}alarms`, { method: 'POST', body: JSON.stringify({ ...notice, kind: 'resolved' }), headers: { 'content-type': 'application/json' } });
      expect(forged.statusCode).toBe(401);
      await forged.body.dump();
      // A notice signed as a delivery is no notice of the DIP's (so none is a delivery at a message webhook).
      const asDelivery = Buffer.from(JSON.stringify({ ...notice, kind: 'resolved' }));
      const replayed = await request(`${receiver.url}alarms`, { method: 'POST', body: asDelivery, headers: { 'content-type': 'application/json', ...(await signer.sign('POST', `${receiver.url}alarms`, asDelivery)) } });
      expect(replayed.statusCode).toBe(401);
      await replayed.body.dump();
      // A signed body that is neither messages nor a notice is still a 400.
      const body = Buffer.from(JSON.stringify({ hello: 'world' }));
      const odd = await request(`${receiver.url}alarms`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(await signer.sign('POST', `${receiver.url}alarms`, body)) } });
      expect(odd.statusCode).toBe(400);
      await odd.body.dump();
      expect(taken).toHaveLength(2);
    } finally {
      await channel.close();
      await receiver.close();
    }
  });

  it('the destination-checked agent takes no connector of its caller, which would replace the checks', async () => {
    // Once exported with a second parameter, a connector that connects anywhere: the rules were gone.
    const anywhere = buildConnector({});
    // @ts-expect-error a replacement connector is no longer accepted
    const agent = destinationCheckedAgent({ destinations: new WebhookDestinations({ enforce: true, lookup: rebound }) }, anywhere);
    try {
      await expect(request(`http://127.0.0.1:${port}/bypass`, { method: 'POST', body: '{}', dispatcher: agent })).rejects.toMatchObject({ code: 'EDESTINATIONREFUSED' });
      expect(received).not.toContain('/bypass');
    } finally {
      await agent.close();
    }
  });
});
