/**
 * Server-rendered HTML: every interpolated value is escaped unless it is itself markup made here, so
 * nothing a participant typed (a callback URL, a display name) can become markup or script.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

function render(v: Part): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return (v as readonly Part[]).map(render).join('');
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

export function when(condition: unknown, part: () => Html): Html | null {
  return condition ? part() : null;
}

export interface Nav {
  href: string;
  label: string;
}

export interface PageOptions {
  title: string;
  /** The portal's name in the header. */
  portal: string;
  nav: Nav[];
  /** The current path, to mark the current page in the navigation. */
  path: string;
  /** Who is signed in, with a sign-out form; absent on sign-in pages. */
  user?: { name: string; signOutAction: string; csrf: string };
  flash?: { kind: 'ok' | 'error'; text: string | Html } | null;
  body: Html;
}

export function page(o: PageOptions): string {
  const current = (href: string) => href.split('?')[0] === o.path.split('?')[0];
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · ${o.portal}</title>
<link rel="stylesheet" href="/assets/portal.css">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <span class="brand">${o.portal}</span>
  ${when(o.nav.length > 0, () => html`<nav aria-label="Main"><ul>${o.nav.map((n) => html`<li><a href="${n.href}"${current(n.href) ? new Html(' aria-current="page"') : ''}>${n.label}</a></li>`)}</ul></nav>`)}
  ${when(o.user, () => html`<form method="post" action="${o.user!.signOutAction}" class="signout"><span>${o.user!.name}</span> <input type="hidden" name="_csrf" value="${o.user!.csrf}"><button type="submit">Sign out</button></form>`)}
</header>
<main id="main">
<h1>${o.title}</h1>
${when(o.flash, () => html`<p class="flash ${o.flash!.kind}" role="${o.flash!.kind === 'error' ? 'alert' : 'status'}">${o.flash!.text}</p>`)}
${o.body}
</main>
</body>
</html>`.text}`;
}

/** A table with a caption; rows already rendered. */
export function table(caption: string, headings: string[], rows: Html[], empty = 'None.'): Html {
  if (rows.length === 0) return html`<p>${empty}</p>`;
  return html`<table><caption>${caption}</caption><thead><tr>${headings.map((h) => html`<th scope="col">${h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>`;
}

export const isoOrDash = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '—' : new Date(ms).toISOString().replace('.000Z', 'Z'));

/**
 * A bar chart as inline SVG (no script, no external image): one bar per label, with the values as text
 * beside the bars so the numbers are there for screen readers and for anyone who cannot tell colours apart.
 */
export function barChart(title: string, bars: Array<{ label: string; value: number; kind?: 'ok' | 'warn' | 'bad' }>): Html {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const rowH = 26;
  const width = 560;
  const labelW = 170;
  const height = bars.length * rowH + 10;
  return html`<figure class="chart"><figcaption>${title}</figcaption>
<svg role="img" aria-label="${`${title}: ${bars.map((b) => `${b.label} ${b.value}`).join(', ')}`}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">
${bars.map((b, i) => {
  const w = Math.round(((width - labelW - 60) * b.value) / max);
  const y = i * rowH + 5;
  return html`<text x="0" y="${y + 17}" class="label">${b.label}</text><rect x="${labelW}" y="${y}" width="${w}" height="${rowH - 8}" class="bar ${b.kind ?? 'ok'}"></rect><text x="${labelW + w + 6}" y="${y + 17}" class="value">${b.value}</text>`;
})}
</svg></figure>`;
}

/** Long text (a message, a certificate): scrollable, so focusable and named for keyboard and screen-reader users. */
export function codeBlock(label: string, text: string): Html {
  return html`<pre tabindex="0" role="region" aria-label="${label}">${text}</pre>`;
}
