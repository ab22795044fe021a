import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_BODY_BYTES, startWebhookReceiver, type ReceivedCall } from '../src/client/webhook-receiver.js';
import { LruMap } from '../src/domain/lru-map.js';
import { listenOutput } from '../src/cli/listen-output.js';
import { createCertificateAuthority, issueSigningCertificate } from '../src/security/pki.js';
import { Signer } from '../src/security/signature.js';

/**
 * `dip listen` and startWebhookReceiver face whoever can reach the webhook URL, before any signature is
 * checked: a body is read only up to a bound (413 beyond it, which the DIP does not retry), and what the
 * receiver remembers per signing certificate, or per transaction ID, is bounded too.
 */
describe('a webhook receiver bounds what a caller can make it hold', () => {
  /** POSTs `declared` (Content-Length) or chunked bytes, a chunk at a time until the receiver answers. */
  function postLarge(url: string, opts: { contentLength?: number; chunk: number; maxChunks: number }): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (opts.contentLength !== undefined) headers['content-length'] = String(opts.contentLength);
      const req = httpRequest(url, { method: 'POST', headers });
      let answered = false;
      req.on('response', (res: IncomingMessage) => {
        answered = true;
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString('utf8') }));
      });
      // The receiver closes the connection after its 413: the rest of the upload fails to send, as it should.
      req.on('error', (err) => (answered ? undefined : reject(err)));
      const piece = Buffer.alloc(opts.chunk, 0x20);
      let sent = 0;
      const pump = (): void => {
        while (!answered && sent < opts.maxChunks) {
          sent++;
          if (!req.write(piece)) return void req.once('drain', pump);
        }
        if (!answered) req.end();
      };
      pump();
    });
  }

  it('answers 413 to a Content-Length past the cap without reading the body, and to a chunked body once it passes the cap', async () => {
    const calls: ReceivedCall[] = [];
    const receiver = await startWebhookReceiver({ trustedCas: [], maxBodyBytes: 64 * 1024, onCall: (c) => calls.push(c) });
    try {
      const declared = await postLarge(`${receiver.url}hook`, { contentLength: 1024 * 1024 * 1024, chunk: 16 * 1024, maxChunks: 1 });
      expect(declared.status).toBe(413);
      expect(JSON.parse(declared.body)).toEqual({ status: 413, help: expect.stringMatching(/65536 bytes/) });
      // Chunked: no length to judge up front; 4 MiB offered, the answer comes once 64 KiB have arrived.
      const chunked = await postLarge(`${receiver.url}hook`, { chunk: 16 * 1024, maxChunks: 256 });
      expect(chunked.status).toBe(413);
      expect(calls).toEqual([]);
      // Under the cap, a call is read and judged as before (here: unsigned, so 401).
      const small = await request(`${receiver.url}hook`, { method: 'POST', body: '[]', headers: { 'content-type': 'application/json' } });
      await small.body.dump();
      expect(small.statusCode).toBe(401);
    } finally {
      await receiver.close();
    }
  });

  it("defaults to a cap above the DIP's largest default delivery (one message of its 10 MiB body limit)", () => {
    expect(DEFAULT_MAX_BODY_BYTES).toBeGreaterThan(10 * 1024 * 1024);
  });

  it('remembers at most trustCacheEntries signing certificates, however many a caller signs with', async () => {
    const ca = await createCertificateAuthority({ commonName: 'Test CA', environment: 'DEV', validDays: 2 });
    const stranger = await createCertificateAuthority({ commonName: 'Stranger CA', environment: 'DEV', validDays: 2 });
    const receiver = await startWebhookReceiver({ trustedCas: [ca.certPem], trustCacheEntries: 2 });
    try {
      for (let i = 0; i < 4; i++) {
        const signer = await issueSigningCertificate(stranger, { commonName: `signer ${i}`, validDays: 2 });
        const body = JSON.stringify([{ payload: { CommonBlock: {}, CustomBlock: {} } }]);
        const url = `${receiver.url}hook`;
        const headers = await new Signer(signer.keyPem, signer.certPem).sign('POST', url, body);
        const res = await request(url, { method: 'POST', body, headers: { ...headers, 'content-type': 'application/json' } });
        await res.body.dump();
        expect(res.statusCode).toBe(401);
      }
      expect(receiver.trustCacheSize()).toBe(2);
    } finally {
      await receiver.close();
    }
  });

  it("dip listen's duplicate check remembers a bounded number of transaction IDs", () => {
    const seen = new LruMap<string, true>(2);
    const call = (id: string): ReceivedCall => ({
      messages: [{ payload: { CommonBlock: { D0: { transactionID: id } } } }],
      notice: null,
      firstSeq: 1,
      lastSeq: 1,
      acknowledgedSeq: null,
      signature: { ok: false, reason: 'missing-headers', detail: '', stringToSign: '' } as unknown as ReceivedCall['signature'],
      receivedAt: 0,
    });
    const duplicate = (id: string) => (listenOutput(call(id), seen)[0] as { duplicate: boolean }).duplicate;
    expect([duplicate('a'), duplicate('b'), duplicate('a'), duplicate('c')]).toEqual([false, false, true, false]);
    expect(seen.size).toBe(2);
    // 'b' was the least recently seen: forgotten, so taken as new; 'a' (seen again) is still known.
    expect([duplicate('a'), duplicate('b')]).toEqual([true, false]);
  });
});

describe('LruMap', () => {
  it('drops the least recently used entry past its bound', () => {
    const m = new LruMap<string, number>(2);
    m.set('a', 1).set('b', 2);
    expect(m.get('a')).toBe(1);
    m.set('c', 3);
    expect([m.has('a'), m.has('b'), m.has('c'), m.size]).toEqual([true, false, true, 2]);
    expect(() => new LruMap(0)).toThrow(RangeError);
  });
});
