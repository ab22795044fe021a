/**
 * A recipient's callback URL as the DIP calls it.
 *
 * The DIP signs every webhook call over `METHOD;full URL lower-cased;date;hash`, and the recipient
 * rebuilds that URL from the request it received: its scheme, its `Host` header and its request target.
 * So the URL signed must be the URL requested, byte for byte. An HTTP client does not send the string it
 * was given: it parses it the WHATWG way (undici's `request()`, like fetch) and sends the origin's host
 * (lower-cased, the default port left out, a name in punycode) and the path and query as that parser
 * serialises them (percent-encoded, dot segments resolved, an empty `?` and any fragment dropped).
 */

/**
 * What an HTTP client requests for this URL: `origin + pathname + search`, exactly as undici builds the
 * request line and `Host` header from it. The DIP signs this string and calls this string, so the two
 * cannot differ. Null when the URL does not parse (one registered before such URLs were refused).
 */
export function requestedUrl(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return null;
  }
  // Not `href`: it keeps an empty query's `?`, a fragment and credentials, none of which is sent.
  return `${parsed.origin}${parsed.pathname}${parsed.search}`;
}
