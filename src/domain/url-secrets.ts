/**
 * URLs an operator or participant gives the DIP may carry secrets: a user and password before the host,
 * or a key in the query string (`?code=…`, the way many hosted endpoints are called). What the DIP keeps
 * or shows of such a URL (journal, logs, error texts) is its shown form.
 */

/** Whether the URL, read as the WHATWG parser reads it (https:///user:pw@host has a user too), names a user or password. */
export function carriesCredentials(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.username !== '' || parsed.password !== '';
  } catch {
    return /@/.test(url.split(/[?#]/, 1)[0] ?? '');
  }
}

/**
 * One part of a query (between '&'s) with its value hidden: `name=…`. A part without '=' is hidden whole:
 * a bare token (`?s3cr3tToken`) is often the secret itself, and a flag's name tells little. An empty part
 * stays empty, so the separators show as they were sent.
 */
export function maskedQueryPart(part: string): string {
  const eq = part.indexOf('=');
  if (eq >= 0) return `${part.slice(0, eq)}=…`;
  return part === '' ? '' : '…';
}

/**
 * The URL without user, password or fragment, each query value replaced by '…' (the names stay, to tell
 * calls apart; a part without '=' is replaced whole). Otherwise as an HTTP client requests it: host, path and the query's names and separators
 * as the URL parser serialises them (`?api+key=…&flag`, not re-encoded), so a journalled call can be
 * matched with what its recipient received and signed.
 */
/**
 * A record with its webhook URL in its shown form: how every list of alarm subscriptions (API answers,
 * portal pages) shows it, to whoever reads it, the subscriber's key in its query being the subscriber's.
 */
export const withShownWebhook = <S extends { webhookUrl: string | null }>(s: S): S => ({ ...s, webhookUrl: s.webhookUrl === null ? null : shownUrl(s.webhookUrl) });

export function shownUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL: show no more than the part before any query, without what could be a user and password.
    return (url.split(/[?#]/, 1)[0] ?? '').replace(/^([^:/]*:\/*)[^/@]*@/, '$1').slice(0, 200);
  }
  // Split as sent, not through searchParams: that decodes names ('+' becomes a space), and re-encoding
  // them gives another string than was requested.
  const query = parsed.search === '' ? '' : `?${parsed.search.slice(1).split('&').map(maskedQueryPart).join('&')}`;
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${query}`;
}
