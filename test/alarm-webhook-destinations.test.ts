/**
 * Alarm webhooks obey the destination rules of message webhooks on every connection (security review
 * of the alarms work): registration refused internal URLs, but each notice was POSTed with undici's
 * global dispatcher, so a name rebound to an internal address after registration (DNS rebinding) was
 * called. Now the alarm channel connects through the same destination-checked agent.
 */
import type { LookupFunction } from 'node:net';
import { createServer, type Server } from 'node:http';
import { buildConnector, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destinationCheckedAgent } from '../src/adapters/http/webhook-client.js';
import { SmtpAlarmChannel } from '../src/adapters/mail/alarm-channel.js';
import type { AlarmNotice } from '../src/ports/alarms.js';
import { WebhookDestinations } from '../src/security/webhook-destinations.js';

/** Every name resolves to this machine: a public-looking name rebound to loopback. */
const rebound: LookupFunction = ((_hostname: string, options: { all?: boolean }, callback: (err: null, a: unknown, f?: number) => void) => {
  if (options.all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
  else callback(null, '127.0.0.1', 4);
}) as LookupFunction;

const notice: AlarmNotice = { kind: 'raised', condition: { key: 'dead-letter:x', rule: 'dead-letter', participant: null, summary: 'a dead letter', since: 0 }, at: 0 };

describe('alarm webhooks and internal networks', () => {
  let server: Server;
  let port: number;
  const received: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      received.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('outside DEV, refuses an internal address and a name that resolves to one when it connects', async () => {
    const channel = new SmtpAlarmChannel(null, new WebhookDestinations({ enforce: true, lookup: rebound }));
    try {
      await expect(channel.webhook(`http://127.0.0.1:${port}/literal`, notice)).rejects.toMatchObject({ code: 'EDESTINATIONREFUSED' });
      await expect(channel.webhook(`http://alarms.example.net:${port}/rebound`, notice)).rejects.toMatchObject({ code: 'EDESTINATIONREFUSED', message: /loopback/ });
      expect(received).toEqual([]);
    } finally {
      await channel.close();
    }
  });

  it('in DEV (rules not enforced), the same URLs are called', async () => {
    const channel = new SmtpAlarmChannel(null, new WebhookDestinations({ enforce: false, lookup: rebound }));
    try {
      await channel.webhook(`http://127.0.0.1:${port}/literal`, notice);
      await channel.webhook(`http://alarms.example.net:${port}/rebound`, notice);
      expect(received).toEqual(['/literal', '/rebound']);
    } finally {
      await channel.close();
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
