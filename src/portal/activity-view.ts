import { badge, html, isoOrDash, table, type Html } from './html.js';

/** One request of the API activity log as both portals show it. */
export interface ActivityRow {
  at: number;
  listener: string;
  caller: string | null;
  /** The participant a DIP Connection Provider (the caller) called for, when not itself. */
  actingFor?: string | null;
  method: string;
  url: string;
  status: number | null;
  durationMs: number;
  requestId: string;
}

/** Who made a call, as the participant `viewer` reads it: itself, its DIP Connection Provider, or itself for another. */
function madeBy(r: ActivityRow, viewer: string): string {
  if (!r.actingFor) return r.caller ?? '—';
  return r.actingFor === viewer ? `${r.caller ?? '—'} (your connection provider)` : `${r.caller ?? '—'}, for ${r.actingFor}`;
}

/**
 * The activity log as a table, newest first. `viewer` null: the operator's, naming the listener, the
 * caller and whom it called for; a participant's DIP ID: that participant's, naming who made each call.
 */
export function activityTable(caption: string, records: readonly ActivityRow[], viewer: string | null, empty: string): Html {
  const rows = records.map(
    (r) =>
      html`<tr><td>${isoOrDash(r.at)}</td>${viewer === null ? html`<td>${r.listener}</td><td>${r.caller ?? '—'}</td><td>${r.actingFor ?? '—'}</td>` : html`<td>${madeBy(r, viewer)}</td>`}<td>${r.method}</td><td><code>${r.url}</code></td><td>${r.status === null ? badge('bad', 'refused') : badge(r.status < 300 ? 'ok' : r.status < 500 ? 'warn' : 'bad', String(r.status))}</td><td class="num">${r.durationMs} ms</td><td><code>${r.requestId}</code></td></tr>`,
  );
  return table(caption, ['When', ...(viewer === null ? ['Listener', 'Caller', 'For'] : ['Made by']), 'Method', 'URL', 'Answer', 'Took', 'Request ID'], rows, empty);
}
