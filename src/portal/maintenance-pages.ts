import type { PublicNotice } from '../domain/maintenance.js';
import { utcAndUk } from '../domain/uk-time.js';
import { html, table, type Html } from './html.js';
import { csrfField, type Signed } from './session.js';

/** What a notice covers, as a page shows it. */
const covers = (n: PublicNotice): string => (n.scope === 'dip' ? 'The whole DIP' : n.channels.join(', '));

/** Notices as a table; `withdraw` adds a withdraw button per published notice (operator portal). */
export function noticeTable(caption: string, notices: PublicNotice[], withdraw?: { action: string; signed: Signed }): Html {
  const rows = notices.map(
    (n) => html`<tr><td>${n.id}</td><td>${utcAndUk(Date.parse(n.start))}</td><td>${utcAndUk(Date.parse(n.end))}</td><td>${covers(n)}</td><td>${n.text}</td><td>${n.state} (v${String(n.version)})</td>${withdraw ? html`<td>${n.state === 'published' ? html`<form method="post" action="${withdraw.action}" class="inline">${csrfField(withdraw.signed)}<input type="hidden" name="id" value="${n.id}"><button type="submit" class="danger">Withdraw<span class="skip"> ${n.id}</span></button></form>` : ''}</td>` : ''}</tr>`,
  );
  const headings = ['Notice', 'Start', 'End', 'Covers', 'Text', 'State', ...(withdraw ? [''] : [])];
  return table(caption, headings, rows, 'No maintenance announced.');
}

/** The operator's form to publish a notice (POST /admin/maintenance through the operator API). */
export function publishForm(action: string, signed: Signed): Html {
  return html`<form method="post" action="${action}">${csrfField(signed)}<fieldset><legend>Publish a maintenance notice</legend>
<label for="mn-start">Start (UTC)</label><input type="datetime-local" id="mn-start" name="start" required>
<label for="mn-end">End (UTC)</label><input type="datetime-local" id="mn-end" name="end" required>
<label for="mn-channels">Channels (comma-separated; empty: the whole DIP)</label><input type="text" id="mn-channels" name="channels" placeholder="IF-021, IF-022" autocomplete="off">
<label for="mn-text">What participants are told</label><textarea id="mn-text" name="text" required maxlength="4000" rows="4"></textarea>
<button type="submit">Publish and notify</button></fieldset></form>`;
}

/** A browser's datetime-local value (no zone) read as UTC, as the form's labels say; anything else as given. */
export const utcFromForm = (v: string): string => (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2})?$/.test(v) ? `${v}Z` : v);

/**
 * Where a participant's administrators are e-mailed maintenance notices (ParticipantProfile.maintenanceEmail):
 * the address in force, and, for its administrators, a form to change it or to stop the e-mails (the opt-out).
 */
export function maintenanceMailForm(action: string, signed: Signed, email: string | null, admin: boolean): Html {
  const now = email ? html`Notices of maintenance that concerns you are e-mailed to <strong>${email}</strong> as they are published, amended or withdrawn.` : 'Notices of maintenance are not e-mailed to your administrators.';
  if (!admin) return html`<h2>E-mail</h2><p>${now} Your administrators change this.</p>`;
  return html`<h2>E-mail</h2><p>${now}</p>
<form method="post" action="${action}">${csrfField(signed)}<label for="mn-email">Address for maintenance notices</label><input type="email" id="mn-email" name="email" required maxlength="254" value="${email ?? ''}" autocomplete="email">
<button type="submit">Send notices here</button></form>
${email ? html`<form method="post" action="${action}">${csrfField(signed)}<input type="hidden" name="stop" value="yes"><button type="submit" class="secondary">Stop e-mailing maintenance notices</button></form>` : ''}`;
}
