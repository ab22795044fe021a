/**
 * The webhook receiver recipients run (src/client/webhook-receiver.ts, `dip listen`) must take calls signed
 * by the DIP only. Participants' certificates come from the same environment CA as the DIP's signing
 * certificate, so a chain to that CA proves nothing about who signed: any participant could post a delivery,
 * an alarm or a maintenance notice to another's webhook with its own key and pass for the DIP.
 */
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWebhookReceiver, type ReceivedCall, type WebhookReceiver } from '../src/client/webhook-receiver.js';
import { createCertificateAuthority, issueParticipantCertificate, issueSigningCertificate, type KeyAndCert } from '../src/security/pki.js';
import { Signer } from '../src/security/signature.js';
import { buildIF021 } from '../src/sim/messages.js';

describe("the webhook receiver takes the DIP's signature only", () => {
  let ca: KeyAndCert;
  let dipSigning: KeyAndCert;
  let participant: KeyAndCert;
  let receiver: WebhookReceiver;
  const taken: ReceivedCall[] = [];

  beforeAll(async () => {
    ca = await createCertificateAuthority({ commonName: 'OpenDIP test CA', environment: 'DEV', validDays: 30 });
    dipSigning = await issueSigningCertificate(ca, { commonName: 'OpenDIP signing', validDays: 30 });
    participant = await issueParticipantCertificate(ca, { organisation: 'Org 2000000001', dipIds: ['2000000001'], environment: 'DEV', validDays: 30 });
    receiver = await startWebhookReceiver({ trustedCas: [ca.certPem], onCall: (c) => taken.push(c) });
  });
  afterAll(async () => receiver?.close());

  const post = async (who: KeyAndCert) => {
    const body = JSON.stringify([buildIF021({ senderDipId: '2000000001', senderRole: 'SDS', primaryRecipients: ['1000000001'], uniqueSuffix: `w${taken.length}` })]);
    const url = `${receiver.url}dip`;
    const headers = await new Signer(who.keyPem, who.certPem).sign('POST', url, body);
    const res = await request(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
    return { status: res.statusCode, text: await res.body.text() };
  };

  it("takes a delivery signed with the DIP's signing certificate (200)", async () => {
    expect((await post(dipSigning)).status).toBe(200);
    expect(taken).toHaveLength(1);
  });

  it("refuses a delivery signed with a participant's certificate from the same CA (401), and hands nothing over", async () => {
    expect((await post(participant)).status).toBe(401);
    expect(taken).toHaveLength(1);
  });
});
