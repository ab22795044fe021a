/**
 * Development / test PKI for OpenDIP (RSA-2048, SHA-256), built on @peculiar/x509.
 *
 *  - a self-signed CA per environment,
 *  - a TLS server certificate (serverAuth + clientAuth, DNS + IP SANs): the DIP also presents it
 *    as its client certificate on outbound mTLS webhook calls,
 *  - participant certificates (clientAuth, digitalSignature, SAN URIs `urn:dip:participant:<DIPID>`):
 *    one certificate serves for mTLS and for message signing,
 *  - the DIP's own message-signing certificate.
 *
 * Not for production: private keys are written unencrypted (mode 0600).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate as NodeX509, createPrivateKey, createPublicKey, generateKeyPair, randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomic } from './files.js';
import { DIP_URN_PREFIX, parseSubjectAltName } from './signature.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export interface KeyAndCert {
  /** PKCS#8 PEM private key ('' when the certificate was issued for a CSR). */
  keyPem: string;
  certPem: string;
}

export interface PkiMaterial {
  ca: KeyAndCert;
  server: KeyAndCert;
  signing: KeyAndCert;
  /** true if any file was (re)created by this call. */
  created: boolean;
}

const RSA_ALG = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const;
/** Back-date notBefore to tolerate clock differences between machines. */
const BACKDATE_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const MIN_RSA_BITS = 2048;
const EKU_SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

interface GeneratedKey {
  keyPem: string;
  spkiDer: Uint8Array<ArrayBuffer>;
}

function generateRsaKey(): Promise<GeneratedKey> {
  // node's async generateKeyPair runs on the thread pool.
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: 2048,
        publicExponent: 0x10001,
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        publicKeyEncoding: { type: 'spki', format: 'der' },
      },
      (err, publicKey, privateKey) => {
        if (err) reject(err);
        else resolve({ keyPem: privateKey, spkiDer: new Uint8Array(publicKey) });
      },
    );
  });
}

async function importSigningKey(keyPem: string): Promise<CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return await webcrypto.subtle.importKey('pkcs8', der, RSA_ALG, false, ['sign']);
}

function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0] ?? 0) & 0x7f; // positive
  if (b[0] === 0) b[0] = 0x01; // keep 16 significant bytes
  return b.toString('hex');
}

function checkValidDays(validDays: number): void {
  if (!(validDays > 0)) throw new Error(`validDays must be > 0, got ${validDays}`);
}

function validity(validDays: number, notAfterLimit?: Date): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  let notAfter = now + validDays * DAY_MS;
  // A leaf must not outlive its issuer.
  if (notAfterLimit && notAfterLimit.getTime() < notAfter) notAfter = notAfterLimit.getTime();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(notAfter) };
}

async function issue(
  ca: KeyAndCert,
  subject: x509.JsonName,
  publicKeySpki: Uint8Array<ArrayBuffer>,
  validDays: number,
  extensions: x509.Extension[],
): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const signingKey = await importSigningKey(ca.keyPem);
  // The authority key identifier must equal the CA's subject key identifier (OpenSSL compares them
  // when matching issuers), whatever method the CA used to compute it.
  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const aki = caSki
    ? new x509.AuthorityKeyIdentifierExtension(caSki)
    : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: caCert.subjectName, // exact DER of the CA subject, so issuer matching is byte-exact
    ...validity(validDays, caCert.notAfter),
    publicKey: publicKeySpki,
    signingKey,
    signingAlgorithm: RSA_ALG,
    extensions: [...extensions, await x509.SubjectKeyIdentifierExtension.create(publicKeySpki), aki],
  });
  return cert.toString('pem') + '\n';
}

// ---------------------------------------------------------------------------------------------

export async function createCertificateAuthority(opts: {
  commonName: string;
  environment: string;
  validDays: number;
}): Promise<KeyAndCert> {
  checkValidDays(opts.validDays); // before the expensive key generation
  const key = await generateRsaKey();
  const subject: x509.JsonName = [{ CN: [opts.commonName] }, { O: ['OpenDIP'] }, { OU: [opts.environment] }];
  const signingKey = await importSigningKey(key.keyPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject,
    issuer: subject,
    ...validity(opts.validDays),
    publicKey: key.spkiDer,
    signingKey,
    signingAlgorithm: RSA_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(key.spkiDer),
    ],
  });
  return { keyPem: key.keyPem, certPem: cert.toString('pem') + '\n' };
}

/**
 * A TLS server certificate from `ca` for the names and addresses given. The DIP's own (the default) also
 * carries clientAuth, for its outbound mTLS webhook calls; `clientAuth: false` makes one for a
 * participant's webhook receiver (`dip pki issue-server`), serverAuth only, with its organisation in O.
 */
export async function issueServerCertificate(
  ca: KeyAndCert,
  opts: { hostnames: string[]; ipAddresses: string[]; validDays: number; commonName?: string; clientAuth?: boolean; organisation?: string },
): Promise<KeyAndCert> {
  const names: x509.JsonGeneralNames = [
    ...opts.hostnames.map((value) => ({ type: 'dns' as const, value })),
    ...opts.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
  ];
  if (names.length === 0) throw new Error('issueServerCertificate: at least one hostname or IP address is required');
  checkValidDays(opts.validDays); // before the expensive key generation
  const key = await generateRsaKey();
  const cn = opts.commonName ?? opts.hostnames[0] ?? opts.ipAddresses[0] ?? 'localhost';
  const usages = opts.clientAuth === false ? [x509.ExtendedKeyUsage.serverAuth] : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  const certPem = await issue(ca, [{ CN: [cn] }, { O: [opts.organisation ?? 'OpenDIP'] }], key.spkiDer, opts.validDays, [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    // clientAuth too (by default): the DIP presents this certificate on its outbound mTLS webhook calls.
    new x509.ExtendedKeyUsageExtension(usages),
    new x509.SubjectAlternativeNameExtension(names),
  ]);
  return { keyPem: key.keyPem, certPem };
}

/** The public key (SPKI DER) of a CSR whose signature holds and whose key is RSA of MIN_RSA_BITS or more; throws why not. */
async function csrPublicKey(csrPem: string): Promise<Uint8Array<ArrayBuffer>> {
  const csr = new x509.Pkcs10CertificateRequest(csrPem);
  if (!(await csr.verify())) throw new Error('issueParticipantCertificate: CSR signature is invalid');
  const spki = new Uint8Array(csr.publicKey.rawData);
  const pub = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  const kt = pub.asymmetricKeyType;
  if (kt !== 'rsa') throw new Error(`issueParticipantCertificate: CSR key must be RSA, got ${kt ?? 'unknown'}`);
  const bits = pub.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new Error(`issueParticipantCertificate: CSR RSA key is ${bits} bits, at least ${MIN_RSA_BITS} required`);
  return spki;
}

/** Why a participant certificate could not be issued for this CSR (unreadable, badly signed, a key too weak), or null. */
export async function csrProblem(csrPem: string): Promise<string | null> {
  try {
    await csrPublicKey(csrPem);
    return null;
  } catch (e) {
    return (e as Error).message.replace(/^issueParticipantCertificate: /, '');
  }
}

export async function issueParticipantCertificate(
  ca: KeyAndCert,
  opts: { organisation: string; dipIds: string[]; environment: string; validDays: number; csrPem?: string },
): Promise<KeyAndCert> {
  const first = opts.dipIds[0];
  if (!first) throw new Error('issueParticipantCertificate: at least one DIP ID is required');
  for (const id of opts.dipIds) {
    if (!/^[\w.-]+$/.test(id)) throw new Error(`issueParticipantCertificate: invalid DIP ID '${id}'`);
  }
  checkValidDays(opts.validDays);
  let keyPem = '';
  let spki: Uint8Array<ArrayBuffer>;
  if (opts.csrPem) {
    spki = await csrPublicKey(opts.csrPem);
  } else {
    const key = await generateRsaKey();
    keyPem = key.keyPem;
    spki = key.spkiDer;
  }
  const subject: x509.JsonName = [{ CN: [first] }, { O: [opts.organisation] }, { OU: [opts.environment] }];
  const certPem = await issue(ca, subject, spki, opts.validDays, [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    new x509.SubjectAlternativeNameExtension(opts.dipIds.map((id) => ({ type: 'url' as const, value: `${DIP_URN_PREFIX}${id}` }))),
  ]);
  return { keyPem, certPem };
}

export async function issueSigningCertificate(
  ca: KeyAndCert,
  opts: { commonName: string; validDays: number },
): Promise<KeyAndCert> {
  checkValidDays(opts.validDays); // before the expensive key generation
  const key = await generateRsaKey();
  const certPem = await issue(ca, [{ CN: [opts.commonName] }, { O: ['OpenDIP'] }], key.spkiDer, opts.validDays, [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation, true),
  ]);
  return { keyPem: key.keyPem, certPem };
}

/**
 * The DIP's encryption certificate (security pattern 2): senders encrypt payloads to it. Its own key,
 * apart from the signing and TLS keys, so each can be rotated or revoked alone.
 */
export async function issueEncryptionCertificate(
  ca: KeyAndCert,
  opts: { commonName: string; validDays: number },
): Promise<KeyAndCert> {
  checkValidDays(opts.validDays);
  const key = await generateRsaKey();
  const certPem = await issue(ca, [{ CN: [opts.commonName] }, { O: ['OpenDIP'] }], key.spkiDer, opts.validDays, [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyEncipherment, true),
  ]);
  return { keyPem: key.keyPem, certPem };
}

/** One revoked certificate, as a CRL lists it. */
export interface CrlEntry {
  /** Serial number, hex (any case, colons allowed). */
  serialNumber: string;
  revokedAt: Date;
  /** RFC 5280 reason code name (keyCompromise, superseded, …); anything else is listed as unspecified. */
  reason?: string;
}

const CRL_REASON_NAMES = Object.keys(x509.X509CrlReason).filter((k) => Number.isNaN(Number(k)));

/** The RFC 5280 reason name matching `reason` (case-insensitive), or undefined. */
export function crlReasonName(reason: string | undefined): string | undefined {
  if (!reason) return undefined;
  return CRL_REASON_NAMES.find((n) => n.toLowerCase() === reason.trim().toLowerCase());
}

function derPositiveInteger(n: number): Uint8Array<ArrayBuffer> {
  let hex = Math.max(0, Math.floor(n)).toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if ((bytes[0] ?? 0) & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return new Uint8Array(Buffer.concat([Buffer.from([0x02, bytes.length]), bytes]));
}

/**
 * An X.509 v2 CRL signed by `ca`, in PEM ("X509 CRL", the label OpenSSL and node's tls `crl` option
 * read). nextUpdate is the CA's own expiry: nothing re-issues the CRL on a schedule, and OpenSSL
 * refuses every handshake once an installed CRL's nextUpdate has passed.
 */
export async function issueCrl(ca: KeyAndCert, entries: CrlEntry[], opts: { crlNumber: number; now?: Date; nextUpdate?: Date }): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const signingKey = await importSigningKey(ca.keyPem);
  const now = opts.now ?? new Date();
  const caSki = caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const aki = caSki ? new x509.AuthorityKeyIdentifierExtension(caSki) : await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey);
  const crl = await x509.X509CrlGenerator.create({
    issuer: caCert.subjectName,
    // Back-dated like the certificates: a CRL "not yet valid" on a peer with a slower clock fails every handshake.
    thisUpdate: new Date(now.getTime() - BACKDATE_MS),
    nextUpdate: opts.nextUpdate ?? caCert.notAfter,
    entries: entries.map((e) => {
      const name = crlReasonName(e.reason);
      const reason = name ? (x509.X509CrlReason as unknown as Record<string, x509.X509CrlReason>)[name] : undefined;
      return {
        serialNumber: e.serialNumber.replace(/:/g, '').toLowerCase(),
        revocationDate: e.revokedAt,
        ...(reason !== undefined && reason !== x509.X509CrlReason.unspecified ? { reason } : {}),
      };
    }),
    signingKey,
    signingAlgorithm: RSA_ALG,
    extensions: [aki, new x509.Extension('2.5.29.20', false, derPositiveInteger(opts.crlNumber))],
  });
  const b64 = crl.toString('base64').match(/.{1,64}/g)?.join('\n') ?? '';
  return `-----BEGIN X509 CRL-----\n${b64}\n-----END X509 CRL-----\n`;
}

/** The CRL number (RFC 5280 5.2.3) of a PEM CRL, 0 when it has none. */
export function crlNumberOf(crlPem: string): number {
  const ext = new x509.X509Crl(crlPem).getExtension('2.5.29.20');
  if (!ext) return 0;
  // DER INTEGER: tag, one length byte (the numbers issueCrl writes are small), big-endian value.
  const der = new Uint8Array(ext.value);
  let n = 0;
  for (const byte of der.subarray(2, 2 + (der[1] ?? 0))) n = n * 256 + byte;
  return n;
}

// ---------------------------------------------------------------------------------------------
// On-disk material

/** File names inside the PKI directory (`<dataDir>/pki`). */
export const PKI_FILES = {
  caKey: 'ca.key.pem',
  caCert: 'ca.cert.pem',
  serverKey: 'server.key.pem',
  serverCert: 'server.cert.pem',
  signingKey: 'dip-signing.key.pem',
  signingCert: 'dip-signing.cert.pem',
} as const;
const FILES = PKI_FILES;

const CA_DAYS = 3650;
export const LEAF_DAYS = 825;
/** Re-issue leaf certificates that expire within this window. */
export const RENEW_BEFORE_MS = 7 * DAY_MS;

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function loadPair(dir: string, keyFile: string, certFile: string): Promise<KeyAndCert | undefined> {
  const k = join(dir, keyFile);
  const c = join(dir, certFile);
  if (!(await exists(k)) || !(await exists(c))) return undefined;
  const [keyPem, certPem] = await Promise.all([readFile(k, 'utf8'), readFile(c, 'utf8')]);
  return { keyPem, certPem };
}

/**
 * Each file replaced atomically, the key first: a start killed half-way, or a running DIP watching the
 * certificate (the server certificate's and signing key's watchers), never reads half a file or a
 * certificate whose key is not yet there.
 */
async function savePair(dir: string, keyFile: string, certFile: string, kc: KeyAndCert): Promise<void> {
  await writeAtomic(join(dir, keyFile), kc.keyPem, 0o600);
  await writeAtomic(join(dir, certFile), kc.certPem, 0o644);
}

/** A loaded leaf is reusable if its key matches, it chains to the CA and is not about to expire (RENEW_BEFORE_MS). */
export function leafUsable(kc: KeyAndCert, ca: NodeX509, now: number): NodeX509 | undefined {
  try {
    const cert = new NodeX509(kc.certPem);
    if (!cert.checkPrivateKey(createPrivateKey(kc.keyPem))) return undefined;
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) return undefined;
    if (Date.parse(cert.validTo) - now < RENEW_BEFORE_MS) return undefined;
    return cert;
  } catch {
    return undefined;
  }
}

/**
 * Create (first call) or load (later calls) the CA, TLS server and DIP signing material in `dir`.
 * A missing, mismatched or nearly expired leaf is re-issued from the existing CA; the server
 * certificate is also re-issued when it lacks one of the requested hostnames / IP addresses or
 * the serverAuth / clientAuth extended key usage.
 * If the CA itself is missing or unusable, everything is regenerated.
 */
export async function ensurePki(
  dir: string,
  opts: { environment: string; hostnames: string[]; ipAddresses: string[] },
): Promise<PkiMaterial> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const now = Date.now();
  let created = false;

  let ca = await loadPair(dir, FILES.caKey, FILES.caCert);
  let caX509: NodeX509 | undefined;
  if (ca) {
    try {
      caX509 = new NodeX509(ca.certPem);
      if (!caX509.ca || !caX509.checkPrivateKey(createPrivateKey(ca.keyPem)) || Date.parse(caX509.validTo) <= now) {
        caX509 = undefined;
      }
    } catch {
      caX509 = undefined;
    }
  }
  if (!ca || !caX509) {
    ca = await createCertificateAuthority({
      commonName: `OpenDIP ${opts.environment} CA`,
      environment: opts.environment,
      validDays: CA_DAYS,
    });
    caX509 = new NodeX509(ca.certPem);
    await savePair(dir, FILES.caKey, FILES.caCert, ca);
    created = true;
  }

  const caPair = ca;
  const caCert = caX509;
  // The two leaves are independent: check / re-issue them concurrently (RSA keygen is the cost).
  const ensureServer = async (): Promise<KeyAndCert> => {
    const server = await loadPair(dir, FILES.serverKey, FILES.serverCert);
    const serverX509 = server ? leafUsable(server, caCert, now) : undefined;
    if (server && serverX509 && serverCoversRequest(serverX509, opts)) return server;
    const issued = await issueServerCertificate(caPair, {
      hostnames: opts.hostnames,
      ipAddresses: opts.ipAddresses,
      validDays: LEAF_DAYS,
    });
    await savePair(dir, FILES.serverKey, FILES.serverCert, issued);
    created = true;
    return issued;
  };
  const ensureSigning = async (): Promise<KeyAndCert> => {
    const signing = await loadPair(dir, FILES.signingKey, FILES.signingCert);
    if (signing && leafUsable(signing, caCert, now)) return signing;
    const issued = await issueSigningCertificate(caPair, {
      commonName: `OpenDIP ${opts.environment} signing`,
      validDays: LEAF_DAYS,
    });
    await savePair(dir, FILES.signingKey, FILES.signingCert, issued);
    created = true;
    return issued;
  };
  const [server, signing] = await Promise.all([ensureServer(), ensureSigning()]);

  return { ca, server, signing, created };
}

/** The environment's CA in `dir`, with the reason when it cannot be read. */
export async function readCertificateAuthority(dir: string): Promise<KeyAndCert> {
  try {
    const [keyPem, certPem] = await Promise.all([readFile(join(dir, FILES.caKey), 'utf8'), readFile(join(dir, FILES.caCert), 'utf8')]);
    return { keyPem, certPem };
  } catch (e) {
    throw new Error(`cannot read the CA in ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * (Re)creates the environment's CA in `dir` (`dip pki ca create`). An existing CA is kept unless
 * `force`: replacing it invalidates every certificate it issued (participants need new ones). The
 * DIP's own leaves are re-issued from the new CA by the next ensurePki().
 */
export async function createEnvironmentCa(dir: string, opts: { environment: string; validDays?: number; force?: boolean }): Promise<KeyAndCert> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const existing = await loadPair(dir, FILES.caKey, FILES.caCert);
  if (existing && !opts.force) {
    let what = 'a CA';
    try {
      const cert = new NodeX509(existing.certPem);
      what = `a CA (${cert.subject.split('\n').join(', ')}, valid until ${new Date(cert.validTo).toISOString()})`;
    } catch {
      // unreadable: still refuse without --force
    }
    throw new Error(`${dir} already holds ${what}: replacing it invalidates every certificate it issued; pass --force to do so`);
  }
  const ca = await createCertificateAuthority({ commonName: `OpenDIP ${opts.environment} CA`, environment: opts.environment, validDays: opts.validDays ?? CA_DAYS });
  // Key first: a reader that sees the new certificate also finds its key.
  await writeAtomic(join(dir, FILES.caKey), ca.keyPem, 0o600);
  await writeAtomic(join(dir, FILES.caCert), ca.certPem, 0o644);
  return ca;
}

/**
 * A new key and certificate for the DIP's message signing, from the environment's CA, replacing the
 * files in `dir` (`dip pki rotate-signing`). Each file is replaced atomically, the certificate last: a
 * running DIP watches the certificate file (src/security/signing-key.ts), so when it sees the new
 * certificate the matching key is already in place. Recipients verify the chain to the CA, so they
 * accept the old and the new certificate alike: no outage.
 */
export async function rotateSigningCertificate(dir: string, opts: { environment: string; validDays?: number }): Promise<KeyAndCert> {
  const ca = await readCertificateAuthority(dir);
  const issued = await issueSigningCertificate(ca, { commonName: `OpenDIP ${opts.environment} signing`, validDays: opts.validDays ?? LEAF_DAYS });
  await writeAtomic(join(dir, FILES.signingKey), issued.keyPem, 0o600);
  await writeAtomic(join(dir, FILES.signingCert), issued.certPem, 0o644);
  return issued;
}

/**
 * The server certificate has every requested hostname / IP address and both EKUs. Certificates
 * issued before the DIP used them for outbound mTLS lack clientAuth: they get re-issued.
 */
function serverCoversRequest(cert: NodeX509, opts: { hostnames: string[]; ipAddresses: string[] }): boolean {
  const eku = cert.keyUsage ?? [];
  if (!eku.includes(EKU_SERVER_AUTH) || !eku.includes(EKU_CLIENT_AUTH)) return false;
  const sans = parseSubjectAltName(cert.subjectAltName);
  const dns = new Set(sans.filter((s) => s.type === 'DNS').map((s) => s.value.toLowerCase()));
  const ips = new Set(sans.filter((s) => s.type === 'IP Address').map((s) => s.value));
  return (
    opts.hostnames.every((h) => dns.has(h.toLowerCase())) &&
    opts.ipAddresses.every((ip) => ips.has(ip) || ips.has(canonicalIp(ip)))
  );
}

/** Node prints IPv6 SANs in full uncompressed upper-case form; normalise for comparison. */
function canonicalIp(ip: string): string {
  if (!ip.includes(':')) return ip;
  try {
    const u = new URL(`http://[${ip}]/`);
    const host = u.hostname.slice(1, -1);
    // expand :: to full form
    const [head = '', tail = ''] = host.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const missing = host.includes('::') ? 8 - h.length - t.length : 0;
    return [...h, ...new Array<string>(missing).fill('0'), ...t].map((p) => p.toUpperCase()).join(':');
  } catch {
    return ip;
  }
}
