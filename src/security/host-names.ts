import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * The names a loopback listener is reached by from its own machine. A browser sends one of them only when
 * its page is really on this machine's loopback: a page of another site that rebinds its own name to
 * 127.0.0.1 (DNS rebinding) still sends its own name as Host.
 */
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'] as const;

/** Whether an address or a name as compared (normalName) is this machine's loopback. */
export const isLoopback = (address: string): boolean => address === 'localhost' || address === '::1' || (isIP(address) === 4 && address.startsWith('127.'));

/** A DNS name (RFC 1123 labels, a final dot allowed) or an IP address, as an allow-list entry or a Host's name. */
const NAME = /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/;

/**
 * A name as compared: lower-case, without a final dot (`LocalHost.` is `localhost`); an IPv6 address
 * without brackets, in its shortest form (a certificate lists `::1` as `0:0:0:0:0:0:0:1`).
 */
function normalName(name: string): string | null {
  const lower = name.toLowerCase();
  const bare = lower.startsWith('[') && lower.endsWith(']') ? lower.slice(1, -1) : lower;
  if (isIP(bare) === 6) return new URL(`https://[${bare}]/`).hostname.slice(1, -1);
  if (isIP(bare) === 4 || NAME.test(bare)) return bare.endsWith('.') ? bare.slice(0, -1) : bare;
  return null;
}

/**
 * The name a Host header gives (RFC 9110 7.2: `name[:port]`, an IPv6 address in brackets), as
 * normalName holds it; null when the header is no such thing (a user part, a path, spaces, an IPv6
 * address without brackets). The port is not judged: an SSH tunnel or a port forward reaches the
 * listener on another port with the same name, and a rebinding page is told apart by its name alone.
 */
export function hostHeaderName(header: string): string | null {
  const m = /^(\[[0-9a-f:.]+\]|[^[\]:]+)(?::\d{1,5})?$/i.exec(header);
  return m?.[1] ? normalName(m[1]) : null;
}

/**
 * The names a listener bound to `bound` answers to: its address, the loopback names when that is a
 * loopback address, and the operator's `extra` names (config, e.g. `operators.allowedHosts`: a name a
 * reverse proxy or a tunnel passes on). Throws naming `setting` for an entry that is no name or address.
 */
export function knownHostNames(bound: string, extra: readonly string[], setting: string): ReadonlySet<string> {
  const names = new Set(configuredNames([bound], 'the listener address'));
  if (isLoopback(bound)) for (const n of LOOPBACK_NAMES) names.add(n);
  for (const n of configuredNames(extra, setting)) names.add(n);
  return names;
}

/** Configured names as compared (normalName); throws naming `setting` for an entry that is no name or address. */
function configuredNames(entries: readonly string[], setting: string): string[] {
  return entries.map((name) => {
    const normal = normalName(name);
    if (normal === null) throw new Error(`configuration: ${setting} '${name}' is not a host name or an IP address (no scheme, port or path)`);
    return normal;
  });
}

/**
 * Whether a request's Host header names the listener (`known`, from knownHostNames). A request without
 * one passes: every browser sends Host (HTTP/1.1 requires it, and Node refuses an HTTP/1.1 request
 * without it), so only a program on the machine, never a page, omits it.
 */
export function hostKnown(header: string | undefined, known: ReadonlySet<string>): boolean {
  if (header === undefined) return true;
  const name = hostHeaderName(header);
  if (name === null) return false;
  if (known.has(name)) return true;
  // A certificate's wildcard (`*.nodes.example`) covers one label, never an IP address (RFC 6125 6.4.3).
  const dot = name.indexOf('.');
  return isIP(name) === 0 && dot > 0 && known.has(`*${name.slice(dot)}`);
}

/**
 * The names a TLS client can reach a listener by with `certificatePem` as its certificate: its DNS and
 * IP subjectAltNames, as they are compared (a wildcard kept as `*.rest`).
 */
function certificateNames(certificatePem: string): string[] {
  const names: string[] = [];
  // Node lists them as `DNS:a, IP Address:b`, quoting (JSON) a value holding a comma or a quote: no name does.
  for (const entry of (new X509Certificate(certificatePem).subjectAltName ?? '').split(', ')) {
    const m = /^(DNS|IP Address):(.+)$/.exec(entry);
    if (!m?.[2]) continue;
    const wildcard = m[1] === 'DNS' && m[2].startsWith('*.');
    const normal = normalName(wildcard ? m[2].slice(2) : m[2]);
    if (normal !== null) names.push(wildcard ? `*.${normal}` : normal);
  }
  return names;
}

/**
 * The names the participant listener bound to `bound` answers to: those its server certificate vouches for
 * (a client that verifies TLS can call it by no other), publicUrl's host, and `allowed` (config
 * `allowedHosts`: a name a reverse proxy passes on). The loopback names only where they name this listener
 * and no other DIP: when it is bound to a loopback address, when `allowed` lists them, or when it has no
 * other name (a development DIP, whose certificate covers only them). Elsewhere a signature made for
 * `https://localhost/…`, at any DIP, would verify here too, and every DIP listening on all addresses would
 * take it within the skew window. Throws naming `setting` for an entry that is no name.
 */
export function listenerHostNames(o: { bound: string; certificatePem: string | null; publicUrl: string | null; allowed: readonly string[]; setting: string }): ReadonlySet<string> {
  const names = new Set<string>();
  if (o.publicUrl !== null) {
    const normal = normalName(new URL(o.publicUrl).hostname);
    if (normal !== null) names.add(normal);
  }
  if (o.certificatePem !== null) for (const n of certificateNames(o.certificatePem)) names.add(n);
  if (isLoopback(o.bound)) for (const n of knownHostNames(o.bound, [], o.setting)) names.add(n);
  else if ([...names].every(isLoopback)) for (const n of LOOPBACK_NAMES) names.add(n);
  else for (const n of names) if (isLoopback(n)) names.delete(n);
  for (const n of configuredNames(o.allowed, o.setting)) names.add(n);
  return names;
}
