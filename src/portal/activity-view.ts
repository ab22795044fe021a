import { badge, html, isoOrDash, table, type Html } from './html.js';

/** One request of the API activity log as both portals show it. */
export interface ActivityRow {
  at: number;
  listener: string;
  caller: string | null;
  method: string;
  url: string;
  status: number | null;
  durationMs: number;
  requestId: string;
}

/** The activity log as a table, newest first; the operator's also names the listener and the caller. */
export function activityTable(caption: string, records: readonly ActivityRow[], everyone: boolean, empty: string): Html {
  const rows = records.map(
    (r) => html`<tr><td>${isoOrDash(r.at)}</td>${everyone ? html`<td>${r.listener}</td><td>${r.caller ?? '—'}</td>` : ''}<td>${r.method}</td><td><code>${r.url}</code></td><td>${r.status === null ? badge('bad', 'refused') : badge(r.status < 300 ? 'ok' : r.status < 500 ? 'warn' : 'bad', String(r.status))}</td><td class="num">${r.durationMs} ms</td><td><code>${r.requestId}</code></td></tr>`,
  );
  return table(caption, ['When', ...(everyone ? ['Listener', 'Caller'] : []), 'Method', 'URL', 'Answer', 'Took', 'Request ID'], rows, empty);
}
