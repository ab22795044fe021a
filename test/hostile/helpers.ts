/**
 * Tools for the hostile-input suite: a DIP with short deadlines, requests signed (or mis-signed) at
 * will over real mutual TLS, raw bytes over a TLS socket, forged certificates, and the row count of
 * the real SQLite database.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import Database from 'better-sqlite3';
import { createPrivateKey, webcrypto } from 'node:crypto';
import * as net from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { Agent, Client, type Dispatcher } from 'undici';
import { expect, it } from 'vitest';
import type { KeyAndCert } from '../../src/security/pki.js';
import { Signer, type DipSignatureHeaders } from '../../src/security/signature.js';
import { buildIF021 } from '../../src/sim/messages.js';
import { startTestDip, waitFor, type TestDip, type TestParticipant } from '../helpers/dip-harness.js';
import type { DipConfig } from '../../src/config.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export const SDS_ID = '2000000001';
export const SUP_ID = '1000000001';

export interface HostileDip {
  t: TestDip;
  sds: TestParticipant;
  sup: TestParticipant;
  close(): Promise<void>;
}

/** The suite's listener limits: short deadlines, so slow-client cases finish fast. */
export const HOSTILE_HTTP: DipConfig['http'] = {
  handshakeTimeoutMs: 1_000,
  headersTimeoutMs: 1_000,
  requestTimeoutMs: 2_000,
  uploadIdleTimeoutMs: 2_000,
  refusedUploadLingerMs: 2_000,
  refusedUploadLingerBytes: 16 * 1024 * 1024,
  downloadIdleTimeoutMs: 2_000,
  connectionsCheckingIntervalMs: 100,
  stopDrainMs: 2_000,
  maxHeaderBytes: 16_384,
  maxJsonDepth: 64,
  maxJsonObjectMembers: 1_000,
  maxJsonValues: null,
  // Cases send many requests at once from one participant (undici opens a connection for each); the cap is tested on its own.
  maxConnectionsPerClient: 0,
  maxConnections: null,
  // Every case connects from 127.0.0.1: the cap per address is tested on its own too (handshake-flood.test.ts).
  maxConnectionsPerAddress: 0,
  firstByteTimeoutMs: 1_000,
  authenticatedReservePercent: 25,
};

/** A DIP with short deadlines (so slow-client cases finish fast), a data service and a supplier. */
export async function startHostileDip(overrides: Partial<DipConfig> = {}): Promise<HostileDip> {
  const t = await startTestDip({
    http: HOSTILE_HTTP,
    // The suite sends hundreds of requests a second from one participant; fair use is tested on its own.
    rateLimit: { requestsPerSecond: 0, burst: 1 },
    revocationPollMs: 100,
    ...overrides,
  });
  const sds = await t.participant(SDS_ID, ['SDS']);
  const sup = await t.participant(SUP_ID, ['SUP']);
  return { t, sds, sup, close: () => t.close() };
}

let unique = 0;
/** A valid IF-021 from the data service to the supplier, never sent before. */
export function validItem(sender = SDS_ID, suffix = `h${process.pid}x${Date.now()}x${unique++}`) {
  return buildIF021({ senderDipId: sender, senderRole: 'SDS', primaryRecipients: [SUP_ID], uniqueSuffix: suffix });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

export interface SendOptions {
  method?: string;
  /** Raw request target, sent as is (no normalisation, no encoding). */
  path: string;
  body?: string | Buffer;
  /** The body that is signed, when it differs from the one sent (tampering). */
  signedBody?: string | Buffer;
  /** The URL that is signed, when it differs from the one called. */
  signedUrl?: string;
  signedMethod?: string;
  signedAt?: Date;
  /** Sign with this key and certificate instead of the caller's own. */
  signer?: Signer;
  /** Replace or add headers after signing (undefined removes one). */
  headers?: Record<string, string | string[] | undefined>;
  /** Use these exact signature headers (a replay). */
  signature?: DipSignatureHeaders;
  apiKey?: string | null;
  /** Fail unless the answer's headers, then its body, each arrive within this long. */
  timeoutMs?: number;
}

const agents = new WeakMap<object, Agent>();
const signers = new WeakMap<object, Signer>();

export function agentFor(t: TestDip, who: { credentials: KeyAndCert }): Agent {
  let a = agents.get(who);
  if (!a) {
    a = new Agent({ connect: { ca: t.dip.pki.ca.certPem, cert: who.credentials.certPem, key: who.credentials.keyPem }, keepAliveTimeout: 10_000 });
    agents.set(who, a);
  }
  return a;
}

export function signerFor(who: { credentials: KeyAndCert }): Signer {
  let s = signers.get(who);
  if (!s) {
    s = new Signer(who.credentials.keyPem, who.credentials.certPem);
    signers.set(who, s);
  }
  return s;
}

/** A request signed as `who` (or mis-signed as told), over `who`'s own mutual TLS. */
export async function send(t: TestDip, who: TestParticipant, o: SendOptions): Promise<Answer & { signature: DipSignatureHeaders }> {
  const method = o.method ?? 'POST';
  const body = o.body ?? '';
  const url = `${t.dip.url}${o.path}`;
  const signature =
    o.signature ?? (await (o.signer ?? signerFor(who)).sign(o.signedMethod ?? method, o.signedUrl ?? url, o.signedBody ?? body, o.signedAt ?? new Date()));
  const headers: Record<string, string | string[]> = { 'content-type': 'application/json', ...signature };
  if (o.apiKey !== null) headers['x-api-key'] = o.apiKey ?? who.apiKey;
  for (const [k, v] of Object.entries(o.headers ?? {})) {
    if (v === undefined) delete headers[k];
    else headers[k] = v;
  }
  const res = await agentFor(t, who).request({
    origin: t.dip.url,
    path: o.path,
    method: method,
    headers,
    // A GET carries a body only when one is given (the signature covers it either way).
    body: method === 'HEAD' || (method === 'GET' && o.body === undefined) ? undefined : body,
    ...(o.timeoutMs ? { headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs } : {}),
  });
  return { ...(await answerOf(res)), signature };
}

/** An undici answer read whole: status, headers, text and, when the text is JSON, its value. */
export async function answerOf(res: Dispatcher.ResponseData): Promise<Answer> {
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

export function submit(h: HostileDip, body: string | Buffer, extra: Partial<SendOptions> = {}) {
  return send(h.t, h.sds, { path: '/dip-channel/IF-021', body, ...extra });
}

const ENTRY_KEYS = ['DIPConnectionProviderID', 'correlationID', 'help', 'message', 'recipientID', 'senderID', 'senderUniqueReference', 'sentTimestamp', 'serviceTicketURL', 'transactionID'].sort();

/** The published StandardResponse: messageArray of complete entries and a 25-character timestamp. */
export function expectStandardResponse(a: { status: number; json: unknown; text: string }, what = ''): void {
  const body = a.json as { messageArray?: Array<Record<string, unknown>>; timestamp?: string } | undefined;
  expect(body, `${what}: not JSON: ${a.text.slice(0, 200)}`).toBeTypeOf('object');
  expect(Array.isArray(body?.messageArray), `${what}: ${a.text.slice(0, 300)}`).toBe(true);
  expect(body!.messageArray!.length).toBeGreaterThan(0);
  for (const e of body!.messageArray!) expect(Object.keys(e).sort()).toEqual(ENTRY_KEYS);
  expect(body!.timestamp).toHaveLength(25);
}

/** A refusal: 4xx in the StandardResponse shape, with the help naming why. */
export function expectRefusal(a: { status: number; json: unknown; text: string }, status: number | [number, number], helpLike?: RegExp, what = ''): void {
  if (Array.isArray(status)) {
    expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBeGreaterThanOrEqual(status[0]);
    expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBeLessThanOrEqual(status[1]);
  } else {
    expect(a.status, `${what}: ${a.text.slice(0, 300)}`).toBe(status);
  }
  expectStandardResponse(a, what);
  if (helpLike) {
    const entries = (a.json as { messageArray: Array<{ help: string | null }> }).messageArray;
    expect(entries.map((e) => e.help ?? '').join(' | '), what).toMatch(helpLike);
  }
}

/** The server still takes a valid message. */
export async function expectStillServing(h: HostileDip): Promise<void> {
  const a = await submit(h, JSON.stringify([validItem()]));
  expect(a.status, a.text.slice(0, 300)).toBe(201);
}

/** Rows in the real database's messages table. */
export function messageCount(t: TestDip): number {
  const db = new Database(join(t.config.dataDir, 'dip.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM messages').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Raw TLS

export interface RawResult {
  /** Everything the server sent back. */
  text: string;
  /** The HTTP status of the first response, if one came. */
  status: number | null;
  /** The TLS connection was established and verified by the client (the server may still refuse). */
  secure: boolean;
  error: string | null;
  ms: number;
  /** True when the server closed the connection; false when we gave up waiting. */
  closedByServer: boolean;
}

export interface RawOptions {
  cert?: string;
  key?: string;
  ca?: string;
  /** Bytes written once the TLS connection is up. */
  write?: string | Buffer;
  /** Then these, one every `dribbleMs`. */
  dribble?: Array<string | Buffer>;
  dribbleMs?: number;
  /** Give up after this long. */
  timeoutMs?: number;
  maxVersion?: tls.SecureVersion;
  /** Another of the DIP's TLS listeners (the portals'); the participant listener by default. */
  port?: number;
  /** The address connected to: 127.0.0.1 by default (::1 to connect from the IPv6 loopback). */
  host?: string;
}

/**
 * Opens a TCP connection to `port` and sends nothing, not even a TLS hello: how long until the server
 * closed it (ms), or Infinity when it had not after `giveUpMs`. On real time, as rawTls is: what it
 * measures is Node's own handshake deadline (the listener's `https` options), which no injected clock drives.
 */
export function closedWhenSilent(port: number, giveUpMs: number): Promise<number> {
  const started = Date.now();
  return new Promise<number>((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const giveUp = setTimeout(() => {
      s.destroy();
      resolve(Number.POSITIVE_INFINITY);
    }, giveUpMs);
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(giveUp);
      resolve(Date.now() - started);
    });
  });
}

/** Opens a TLS connection to the DIP, writes raw bytes and collects whatever comes back until it closes. */
export function rawTls(t: TestDip, o: RawOptions): Promise<RawResult> {
  const started = Date.now();
  return new Promise((resolve) => {
    let text = '';
    let secure = false;
    let error: string | null = null;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    let dribbler: NodeJS.Timeout | undefined;
    const socket = tls.connect({
      host: o.host ?? '127.0.0.1',
      port: o.port ?? t.dip.port,
      servername: 'localhost',
      ca: o.ca ?? t.dip.pki.ca.certPem,
      ...(o.cert ? { cert: o.cert, key: o.key } : {}),
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
    });
    const finish = (closedByServer: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(dribbler);
      socket.destroy();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : null, secure, error, ms: Date.now() - started, closedByServer });
    };
    timer = setTimeout(() => finish(false), o.timeoutMs ?? 5_000);
    socket.on('secureConnect', () => {
      secure = true;
      if (o.write !== undefined) socket.write(o.write);
      const rest = [...(o.dribble ?? [])];
      if (rest.length > 0) {
        dribbler = setInterval(() => {
          const next = rest.shift();
          if (next === undefined) clearInterval(dribbler);
          else if (!socket.destroyed) socket.write(next);
        }, o.dribbleMs ?? 200);
      }
    });
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    socket.on('error', (e: Error & { code?: string }) => {
      error = e.code ?? e.message;
    });
    socket.on('close', () => finish(true));
  });
}

/**
 * One kept-alive connection to `origin` (an undici Client holds exactly one), already answered 200 once
 * on GET `path`, so the server has counted it; kept in `opened` for the suite to destroy.
 */
export async function keptAliveConnection(origin: string, connect: tls.ConnectionOptions, path: string, opened: Client[]): Promise<Client> {
  const client = new Client(origin, { connect, keepAliveTimeout: 60_000 });
  opened.push(client);
  const res = await client.request({ path, method: 'GET' });
  await res.body.text();
  expect(res.statusCode).toBe(200);
  return client;
}

/**
 * The cases of a listener's cap per client address (the anonymous listener's, the portals'), declared in
 * the caller's describe: the address's first `cap` connections (`open`, from 127.0.0.1) served and kept;
 * then the listener's own cases of refusals (`refusals`, which refuse `refused` connections in all);
 * then another address's connection (::1; the listener must be on ::) and the address's own connections
 * served (200 on GET `path`); one of them closed frees a place (counted down, a new one served) and the
 * cap holds again with it (one more `write` answered 429); the refusals counted under the listener's
 * label; and the participant listener still takes a message.
 */
export function addressCapCases(o: {
  dip: () => HostileDip;
  listener: 'anonymous' | 'portal';
  port: () => number;
  cap: number;
  path: string;
  write: string;
  open: () => Promise<Client>;
  refusals: () => void;
  refused: number;
}): void {
  const mine: Client[] = [];
  const t = (): TestDip => o.dip().t;
  it(`serves an address's first ${o.cap} connections, kept open`, async () => {
    for (let i = 0; i < o.cap; i++) mine.push(await o.open());
    expect(await metricOf(t(), `dip_${o.listener}_connections`)).toBe(o.cap);
  });

  o.refusals();

  it("serves another address's connection meanwhile (::1), and the address's own connections within the cap", async () => {
    const other = await rawTls(t(), { port: o.port(), host: '::1', write: `GET ${o.path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`, timeoutMs: 5_000 });
    expect(other.status, other.text.slice(0, 300)).toBe(200);
    for (const c of mine) {
      const res = await c.request({ path: o.path, method: 'GET' });
      await res.body.text();
      expect(res.statusCode).toBe(200);
    }
  });

  it("serves a new connection once one of the address's closes, and the cap holds again with it", async () => {
    await mine.shift()!.close();
    // The server counts the connection down when it sees it close, a moment after the client does.
    await waitFor(async () => (await metricOf(t(), `dip_${o.listener}_connections`)) === o.cap - 1, 5_000, 'the closed connection counted down');
    mine.push(await o.open());
    const r = await rawTls(t(), { port: o.port(), write: o.write, timeoutMs: 5_000 });
    expect(r.status, r.text.slice(0, 300)).toBe(429);
  });

  it('counts each connection refused in dip_connections_refused_total, by listener', async () => {
    expect(await metricOf(t(), `dip_connections_refused_total{listener="${o.listener}"}`)).toBe(o.refused + 1); // and the one just above
    expect(await metricOf(t(), 'dip_connections_refused_total{listener="participant"}')).toBe(0);
  });

  it('still serves the participant listener (201), whose connections are not counted here', async () => {
    await expectStillServing(o.dip());
  });
}

/** rawTls's answer read as JSON, with its headers, in the shape expectRefusal reads. */
export function rawAnswerOf(r: RawResult): { status: number; json: unknown; text: string; header: (name: string) => string | undefined } {
  const [head = '', body = ''] = r.text.split('\r\n\r\n');
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  return { status: r.status ?? 0, json, text: r.text, header: (name) => new RegExp(`^${name}: *(.*)$`, 'im').exec(head)?.[1]?.trim() };
}

/** The value of one series (`name` or `name{label="value"}`, as exported) on the DIP's metrics now; NaN when absent. */
export async function metricOf(t: TestDip, series: string): Promise<number> {
  const text = await t.dip.metrics.text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.slice(series.length + 1) ?? NaN);
}

/** Credentials of `who` for rawTls. */
export function tlsOf(who: { credentials: KeyAndCert }): { cert: string; key: string } {
  return { cert: who.credentials.certPem, key: who.credentials.keyPem };
}

/** A signed raw HTTP/1.1 request head + body, for cases undici refuses to send. */
export async function rawSignedRequest(t: TestDip, who: TestParticipant, o: { method?: string; path: string; body?: string; extraHeaderLines?: string[]; connection?: string }): Promise<string> {
  const method = o.method ?? 'POST';
  const body = o.body ?? '';
  const sig = await signerFor(who).sign(method, `${t.dip.url}${o.path}`, body);
  const lines = [
    `${method} ${o.path} HTTP/1.1`,
    `Host: localhost:${t.dip.port}`,
    'Content-Type: application/json',
    `X-API-Key: ${who.apiKey}`,
    ...Object.entries(sig).map(([k, v]) => `${k}: ${v}`),
    ...(o.extraHeaderLines ?? []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    `Connection: ${o.connection ?? 'close'}`,
  ];
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

// ---------------------------------------------------------------------------------------------
// Forged certificates

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;

async function importKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return await webcrypto.subtle.importKey('pkcs8', der, RSA, false, ['sign']);
}

export interface ForgeOptions {
  dipId: string;
  /** Issuer; omitted → self-signed. */
  ca?: KeyAndCert;
  notBefore?: Date;
  notAfter?: Date;
  /** Extended key usages (default clientAuth). */
  eku?: string[];
  /** Corrupt the issuer's signature on the certificate. */
  breakSignature?: boolean;
}

/** A participant-like certificate made by hand: expired, not yet valid, self-signed, wrong EKU… */
export async function forgeCertificate(o: ForgeOptions): Promise<KeyAndCert> {
  const keys = (await webcrypto.subtle.generateKey({ ...RSA, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, true, ['sign', 'verify']));
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  const now = Date.now();
  const subject = `CN=${o.dipId}, O=Forged ${o.dipId}, OU=DEV`;
  const issuerCert = o.ca ? new x509.X509Certificate(o.ca.certPem) : undefined;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(12))).toString('hex').replace(/^[89a-f]/, '1'),
    subject,
    issuer: issuerCert ? issuerCert.subjectName : subject,
    notBefore: o.notBefore ?? new Date(now - 3600_000),
    notAfter: o.notAfter ?? new Date(now + 30 * 86400_000),
    publicKey: keys.publicKey as never,
    signingKey: (o.ca ? await importKey(o.ca.keyPem) : keys.privateKey),
    signingAlgorithm: RSA,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension((o.eku ?? [x509.ExtendedKeyUsage.clientAuth])),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `urn:dip:participant:${o.dipId}` }]),
      ...(issuerCert ? [new x509.AuthorityKeyIdentifierExtension(issuerCert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId)] : []),
    ],
  });
  let der = Buffer.from(cert.rawData);
  if (o.breakSignature) {
    der = Buffer.from(der);
    der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0xff; // inside the signature BIT STRING
  }
  const certPem = `-----BEGIN CERTIFICATE-----\n${der.toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
  return { keyPem, certPem };
}
