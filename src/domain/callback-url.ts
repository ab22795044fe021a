/**
 * A recipient's callback URL as the DIP calls it, and why one cannot be called.
 *
 * The DIP signs every webhook call over `METHOD;full URL lower-cased;date;hash`, and the recipient
 * rebuilds that URL from the request it received: its scheme, its `Host` header and its request target.
 * So the URL signed must be the URL requested, byte for byte. An HTTP client does not send the string it
 * was given: it parses it the WHATWG way (undici's `request()`, like fetch) and sends the origin's host
 * (lower-cased, the default port left out, a name in punycode) and the path and query as that parser
 * serialises them (percent-encoded, dot segments resolved, an empty `?` and any fragment dropped).
 */

/**
 * Outside DEV, settlement data and alarm notices only leave the DIP over TLS: why `field`'s URL may not be
 * called in `environment` (the same rule and words for message webhooks and alarm webhooks), or null.
 */
export function plainHttpProblem(field: string, url: string, environment: string): string | null {
  return environment !== 'DEV' && !/^https:/i.test(url) ? `${field} must be https in the ${environment} environment (plain http is for DEV only)` : null;
}

/**
 * What an HTTP client requests for this URL: `origin + pathname + search`, exactly as undici builds the
 * request line and `Host` header from it. The DIP signs this string and calls this string, so the two
 * cannot differ. Null when the URL does not parse (one registered before such URLs were refused).
 */
export function requestedUrl(url: string): string | null {
  const parsed = parse(url);
  if (parsed === null) return null;
  // Not `href`: it keeps an empty query's `?`, a fragment and credentials, none of which is sent.
  return `${parsed.origin}${parsed.pathname}${parsed.search}`;
}

/**
 * A base URL (the DIP's `publicUrl`, a receiver's) in the form requests to it are signed over: what
 * requestedUrl() gives for it, without a trailing '/', so `${base}${request target}` is the URL a client
 * requests (`https://DIP.example:443/` is requested as `https://dip.example/…`). Null when it does not
 * parse or carries what no request sends (a user and password, a query, a fragment).
 */
export function requestedBaseUrl(url: string): string | null {
  const parsed = parse(url);
  if (parsed === null || parsed.origin === 'null' || parsed.username !== '' || parsed.password !== '' || url.includes('?') || url.includes('#')) return null;
  return `${parsed.origin}${parsed.pathname.replace(/\/$/, '')}`;
}

/** The URL as the WHATWG parser reads it, or null (URL.parse is Node 22's; Node 20 is supported). */
function parse(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/** A tab, a line break or another control character: the WHATWG parser drops some silently, so the URL called would not be the one given. */
// eslint-disable-next-line no-control-regex -- control characters are what this looks for
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Why the DIP could not call this http(s) URL as written, or null. Only what the URL itself says (the
 * scheme, credentials and the environment's TLS rule are the caller's): each answer names the field,
 * the problem and what to send instead, for a participant reading a 400.
 */
export function callbackUrlShapeProblem(url: string): string | null {
  if (CONTROL.test(url)) return 'callbackURL must not contain tabs, line breaks or other control characters: the URL parser drops some of them silently, so the DIP would call another URL than the one registered';
  if (url.trim() !== url) return 'callbackURL must not begin or end with spaces';
  // Before the query only: there the parser reads it as '/'. In the query it is sent as written, and signed so.
  if ((url.split('?', 1)[0] ?? '').includes('\\')) return "callbackURL must not contain a backslash before its query: URL parsers read it as '/', so the DIP would call another path than the one registered";
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url)?.[1];
  // `https:///x` has no host: the WHATWG parser then takes `x` for the host and calls https://x/.
  const host = authority?.slice(authority.lastIndexOf('@') + 1).replace(/:\d*$/, '');
  if (!host) return "callbackURL names no host: write it as https://host[:port]/path";
  if (url.includes('#')) return 'callbackURL must not carry a fragment (#…): a fragment is never sent to the server, so the call could not reach what it names';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const port = /:(\d*)$/.exec(authority ?? '')?.[1];
    if (port !== undefined && (port === '' || Number(port) > 65_535)) return `callbackURL port '${port}' is not a port: give a number from 1 to 65535, or none for the scheme's default`;
    return `callbackURL host '${host.slice(0, 80)}' is neither a host name nor an IP address`;
  }
  if (parsed.port === '0') return 'callbackURL port 0 cannot be called: give a number from 1 to 65535, or none for the scheme\'s default';
  return hostNameProblem(parsed.hostname);
}

/**
 * DNS limits (RFC 1035 2.3.4) the URL parser does not apply: a name with a label over 63 octets or over
 * 253 in all (as sent, in punycode, without a final dot) resolves nowhere, so every call would fail.
 */
function hostNameProblem(hostname: string): string | null {
  if (hostname.startsWith('[')) return null; // an IPv6 literal
  const name = hostname.replace(/\.$/, '');
  const long = name.split('.').find((label) => label.length > 63);
  if (long !== undefined) return `callbackURL host label '${long.slice(0, 20)}…' is ${long.length} characters long: a DNS label has at most 63, so the name cannot resolve`;
  if (name.length > 253) return `callbackURL host is ${name.length} characters long: a DNS name has at most 253, so it cannot resolve`;
  return null;
}
