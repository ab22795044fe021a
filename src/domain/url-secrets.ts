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

/** The URL without user, password or fragment, each query value replaced by '…' (the names stay, to tell calls apart). */
export function shownUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL: show no more than the part before any query, without what could be a user and password.
    return (url.split(/[?#]/, 1)[0] ?? '').replace(/^([^:/]*:\/*)[^/@]*@/, '$1').slice(0, 200);
  }
  const names = [...parsed.searchParams.keys()];
  const query = names.length === 0 ? '' : `?${names.map((n) => `${encodeURIComponent(n)}=…`).join('&')}`;
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${query}`;
}
