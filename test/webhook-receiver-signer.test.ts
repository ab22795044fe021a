import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { createCertificateAuthority, issueParticipantCertificate, issueServerCertificate, issueSigningCertificate, type KeyAndCert } from '../src/security/pki.js';
import { Signer } from '../src/security/signature.js';

/**
 * The environment's CA issues the DIP its signing certificate, and participants theirs (bound to their DIP
 * IDs) and their webhook receivers' TLS certificates, whose keys the participants hold. A certificate
 * chaining to that CA is therefore not enough: a receiver that took it let any participant who learnt
 * another's webhook URL post it "deliveries" (or an alarm "resolved" notice) that verified as the DIP's
 * (found by a newcomer's independent receiver). The reference asks the certificate to "belong to the sender".
 */
describe("a webhook receiver takes only the DIP's signature", () => {
  async function post(signerPair: KeyAndCert, ca: KeyAndCert): Promise<ReceivedCall> {
    const calls: ReceivedCall[] = [];
    const receiver = await startWebhookReceiver({ trustedCas: [ca.certPem], respond: (c) => (calls.push(c), c.signature.ok ? 200 : 401) });
    try {
      const body = JSON.stringify([{ payload: { CommonBlock: {}, CustomBlock: {} } }]);
      const url = `${receiver.url}hook`;
      const headers = await new Signer(signerPair.keyPem, signerPair.certPem).sign('POST', url, body);
      const res = await request(url, { method: 'POST', body, headers: { ...headers, 'content-type': 'application/json' } });
      await res.body.dump();
      expect(res.statusCode).toBe(calls[0]!.signature.ok ? 200 : 401);
      return calls[0]!;
    } finally {
      await receiver.close();
    }
  }

  it("verifies the DIP's signing certificate, and refuses a participant's or a TLS certificate from the same CA, saying why", async () => {
    const ca = await createCertificateAuthority({ commonName: 'Test CA', environment: 'DEV', validDays: 2 });
    const dip = await issueSigningCertificate(ca, { commonName: 'OpenDIP DEV signing', validDays: 2 });
    expect((await post(dip, ca)).signature.ok).toBe(true);

    const participant = await issueParticipantCertificate(ca, { organisation: 'Mallory', dipIds: ['2000000001'], environment: 'DEV', validDays: 2 });
    const asParticipant = (await post(participant, ca)).signature;
    expect(asParticipant.ok).toBe(false);
    if (!asParticipant.ok) expect([asParticipant.reason, asParticipant.detail]).toEqual(['bad-certificate', expect.stringMatching(/2000000001.*participant/)]);

    // `dip pki issue-server` gives a participant's receiver one (serverAuth): the participant holds its key.
    const tls = await issueServerCertificate(ca, { hostnames: ['hooks.mallory.example'], ipAddresses: [], validDays: 2, clientAuth: false });
    const asServer = (await post(tls, ca)).signature;
    expect(asServer.ok).toBe(false);
    if (!asServer.ok) expect([asServer.reason, asServer.detail]).toEqual(['bad-certificate', expect.stringMatching(/TLS/)]);
  });
});
