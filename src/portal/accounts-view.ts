import type { PortalAccount } from '../ports/portal-accounts.js';
import { firstPasswordLapse } from '../pipeline/portal-accounts.js';
import { levelOf, USER_LEVELS } from '../domain/portal-levels.js';
import { html, isoOrDash, type Html } from './html.js';
import { csrfField, type Signed } from './session.js';

/** Account tables and forms shared by the user portal (a participant's users) and the operator portal. */

/**
 * `manage.resetAction`: where a lost authenticator is reset (the user portal's administrators; the
 * operator portal resets operators' factors through the operator API's own route); `manage.levelAction`:
 * where a participant's user's level is changed (the user portal's administrators). The third column is
 * a participant's user's level (src/domain/portal-levels.ts), an operator's administrator flag.
 */
export function userRows(accounts: PortalAccount[], manage: { action: string; csrf: Signed; self: string; resetAction?: string; levelAction?: string } | null): Html[] {
  return accounts.map(
    (a) => html`<tr><td>${a.username}</td><td>${a.displayName}</td><td>${a.participantDipId === null ? (a.admin ? 'yes' : 'no') : levelOf(a)}</td><td>${isoOrDash(a.createdAt)} by ${a.createdBy}</td><td>${a.disabled ? html`<span class="badge bad">disabled</span>` : html`<span class="badge ok">active</span>`}${a.totpSecretSealed === null ? html` <span class="badge warn">authenticator not set up</span>` : ''}</td>
<td>${manage && a.username !== manage.self ? html`<form method="post" action="${manage.action}" class="inline">${csrfField(manage.csrf)}<input type="hidden" name="username" value="${a.username}"><input type="hidden" name="disable" value="${a.disabled ? 'no' : 'yes'}"><button type="submit" class="${a.disabled ? 'secondary' : 'danger'}">${a.disabled ? 'Enable' : 'Disable'}<span class="skip"> ${a.username}</span></button></form>` : ''}
${manage?.resetAction && a.username !== manage.self ? html`<form method="post" action="${manage.resetAction}" class="inline">${csrfField(manage.csrf)}<input type="hidden" name="username" value="${a.username}"><button type="submit" class="secondary">Reset authenticator<span class="skip"> of ${a.username}</span></button></form>` : ''}
${manage?.levelAction && a.username !== manage.self ? levelForm(manage.levelAction, manage.csrf, a) : ''}</td></tr>`,
  );
}

/** A participant's user's level, changed in place: a choice of the levels and a button naming the user. */
function levelForm(action: string, csrf: Signed, a: PortalAccount): Html {
  const id = `level-${a.username}`;
  return html`<form method="post" action="${action}" class="inline">${csrfField(csrf)}<input type="hidden" name="username" value="${a.username}"><label for="${id}" class="skip">Level of ${a.username}</label><select id="${id}" name="level">${levelOptions(levelOf(a))}</select> <button type="submit" class="secondary">Change level<span class="skip"> of ${a.username}</span></button></form>`;
}

const levelOptions = (selected: string): Html[] => USER_LEVELS.map((l) => html`<option value="${l}"${selected === l ? ' selected' : ''}>${l}</option>`);

/**
 * `offer`: 'levels', the level (a participant's users, on the user portal's Users page and the operator
 * portal's participant page: viewer unless chosen, the least privilege); 'none' (operators, whose roles
 * are set elsewhere).
 */
export function newUserForm(action: string, signed: Signed, offer: 'levels' | 'none', legend = 'New user'): Html {
  return html`<form method="post" action="${action}">${csrfField(signed)}<fieldset><legend>${legend}</legend>
<label for="new-username">Username</label><input type="text" id="new-username" name="username" required pattern="[a-z0-9][a-z0-9._\\-]{2,63}" autocomplete="off">
<label for="new-name">Name</label><input type="text" id="new-name" name="displayName" required maxlength="100" autocomplete="off">
${offer === 'levels' ? html`<label for="new-level">Level</label><select id="new-level" name="level">${levelOptions('viewer')}</select>` : ''}
<button type="submit">Create user</button></fieldset></form>`;
}

/**
 * Shown once to the administrator who created the account (or reset its authenticator): the first
 * password, of which only a hash is kept. Never a TOTP secret: the person sets theirs up at their first
 * sign-in (the next, after a reset), so nobody else ever holds their second factor.
 */
export function enrolmentPanel(e: { username: string; displayName: string; password: string; passwordExpiresAt: number | string }, after: 'created' | 'reset' = 'created'): Html {
  const when = after === 'created' ? 'first' : 'next';
  return html`<section class="enrolment" aria-labelledby="enrolment-title"><h2 id="enrolment-title">Hand these to ${e.displayName}</h2>
<p>Shown once: the DIP keeps only a hash of the password.</p>
<dl class="facts"><dt>Username</dt><dd><code id="enrolled-username">${e.username}</code></dd>
<dt>Password</dt><dd><code id="enrolled-password">${e.password}</code></dd>
<dt>Password expires</dt><dd id="enrolled-password-expiry">${firstPasswordLapse(new Date(e.passwordExpiresAt).getTime())}</dd>
<dt>Authenticator</dt><dd id="enrolled-totp-later">set up by ${e.displayName} at their ${when} sign-in, with an authenticator app of their own; they choose their own password then too</dd></dl></section>`;
}
