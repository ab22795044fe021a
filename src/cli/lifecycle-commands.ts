import { InvalidArgumentError, type Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { loadConfig } from '../config.js';
import { adminCall, forgetSession, login, sessionFile, type EnrolmentAnswer, type EnrolmentRefusal, type TotpEnrolmentOffer } from './admin-client.js';
import { passwordProblem } from '../security/portal-credentials.js';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';

const print = (v: unknown): void => {
  process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
};
const call = async (method: Parameters<typeof adminCall>[1], path: string, body?: unknown): Promise<void> => print(await adminCall(loadConfig(), method, path, body));
const query = (o: Record<string, string | number | undefined>): string => {
  const q = new URLSearchParams(Object.entries(o).filter((e): e is [string, string | number] => e[1] !== undefined).map(([k, v]) => [k, String(v)]));
  return q.size ? `?${q.toString()}` : '';
};

/** The dip commands of participant and channel lifecycle, operators and the journal (all need the running DIP). */
export function registerLifecycleCommands(program: Command): void {
  registerOperatorCommands(program);
  registerChannelCommands(program);
  registerRegisterCommands(program);
  registerMaintenanceCommands(program);
}

/** Maintenance notices (spec 5.13.5). */
function registerMaintenanceCommands(program: Command): void {
  const m = program.command('maintenance').description('maintenance notices: participants see them on the API and are told by e-mail and webhook (operator)');
  m.command('list').description('every notice, newest first (withdrawn and past ones too)').action(() => call('GET', '/admin/maintenance'));
  m.command('show').argument('<id>', 'e.g. MN-1').description("a notice's versions, oldest first").action((id: string) => call('GET', `/admin/maintenance/${encodeURIComponent(id)}`));
  m
    .command('publish')
    .requiredOption('--start <time>', 'ISO-8601 with a zone, e.g. 2026-12-05T02:00:00Z')
    .requiredOption('--end <time>', 'ISO-8601 with a zone')
    .requiredOption('--text <text>', 'what is maintained and what participants should expect')
    .option('--channels <ids>', 'comma-separated, e.g. IF-021,IF-022 (default: the whole DIP)', list)
    .action((o: { start: string; end: string; text: string; channels?: string[] }) => call('POST', '/admin/maintenance', { start: o.start, end: o.end, text: o.text, ...(o.channels ? { channels: o.channels } : {}) }));
  m
    .command('amend')
    .description('change a notice (each option given replaces what is in force); subscribers are told again')
    .argument('<id>')
    .option('--start <time>')
    .option('--end <time>')
    .option('--text <text>')
    .option('--channels <ids>', 'comma-separated', list)
    .option('--whole-dip', 'the notice covers the whole DIP again')
    .option('--expect-version <n>', 'refuse if another change came after this version', Number)
    .action((id: string, o: { start?: string; end?: string; text?: string; channels?: string[]; wholeDip?: boolean; expectVersion?: number }) =>
      call('PATCH', `/admin/maintenance/${encodeURIComponent(id)}`, {
        ...(o.start ? { start: o.start } : {}),
        ...(o.end ? { end: o.end } : {}),
        ...(o.text ? { text: o.text } : {}),
        ...(o.wholeDip ? { channels: null } : o.channels ? { channels: o.channels } : {}),
        ...(o.expectVersion !== undefined ? { expectedVersion: o.expectVersion } : {}),
      }),
    );
  m.command('withdraw').argument('<id>').description('the maintenance will not take place; subscribers are told').action((id: string) => call('POST', `/admin/maintenance/${encodeURIComponent(id)}/withdraw`, {}));
}

/** The central register feed and offboarding. */
function registerRegisterCommands(program: Command): void {
  const reg = program.command('register').description('the central register feed (spec 5.7.1; operator)');
  reg
    .command('import')
    .argument('<file>', 'a JSON array of marketParticipantDetail (ISDPublication company details)')
    .option('--snapshot', 'the file is the whole register: DIP IDs it does not list are ended now')
    .action(async (file: string, o: { snapshot?: boolean }) => {
      const feed = JSON.parse(await readFile(file, 'utf8')) as unknown;
      await call('POST', '/admin/register/apply', { feed, source: `file:${basename(file)}`.replace(/[^\w.:/@-]/g, '_'), snapshot: o.snapshot ?? false });
    });
  reg
    .command('pull')
    .description("fetch the feed from the register's endpoint (the DIP makes the call) and apply it")
    .requiredOption('--url <url>', 'e.g. https://register.example/companyDetails')
    .option('--header <header>', 'the endpoint\'s credentials, e.g. "Authorization: Bearer …" (repeatable)', collect, [])
    .option('--snapshot', 'the feed is the whole register')
    .action((o: { url: string; header: string[]; snapshot?: boolean }) => {
      const headers = Object.fromEntries(o.header.map((h) => [h.slice(0, h.indexOf(':')).trim().toLowerCase(), h.slice(h.indexOf(':') + 1).trim()]));
      return call('POST', '/admin/register/pull', { url: o.url, headers, snapshot: o.snapshot ?? false });
    });
  reg.command('list').action(() => call('GET', '/admin/register'));
  program
    .command('offboard')
    .description('offboard a participant by hand: certificates revoked, API key and webhooks removed, queues dead-lettered, history kept')
    .argument('<dipId>')
    .option('--reason <text>')
    .action((dipId: string, o: { reason?: string }) => call('POST', `/admin/participants/${encodeURIComponent(dipId)}/offboard`, o.reason ? { reason: o.reason } : {}));
  const roles = program.command('optional-roles').description('roles participants may sign up for themselves');
  roles.command('show').action(() => call('GET', '/admin/optional-roles'));
  roles
    .command('set')
    .argument('<roles>', 'comma-separated, e.g. OBS,TPS (empty: none)')
    .action((r: string) => call('PUT', '/admin/optional-roles', { roles: list(r) }));
}

const list = (v: string): string[] => v.split(',').map((x) => x.trim()).filter(Boolean);
const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** Channel management while running (spec 5.3). */
function registerChannelCommands(program: Command): void {
  const ch = program.command('channel').description('channels while the DIP runs: settings, pause, resume, withdraw, history, roll back (operator)');
  ch.command('list').action(() => call('GET', '/admin/channels'));
  ch.command('show').argument('<id>', 'e.g. IF-021').action((id: string) => call('GET', `/admin/channels/${encodeURIComponent(id)}`));
  ch.command('history').argument('<id>').action((id: string) => call('GET', `/admin/channels/${encodeURIComponent(id)}/history`));
  ch
    .command('set')
    .description("change a channel's overrides (each given replaces the one in force; --reset drops one back to the catalogue's)")
    .argument('<id>')
    .option('--sender-roles <roles>', 'comma-separated, e.g. SDS,ADS', list)
    .option('--receiver-roles <roles>', 'comma-separated', list)
    .option('--always-roles <roles>', 'receiving roles whose every holder gets every message', list)
    .option('--always-participants <ids>', 'DIP IDs that get every message', list)
    .option('--stale-after-minutes <n>', 'dead-letter undelivered messages older than this', Number)
    .option('--allow-short-retention', 'a --stale-after-minutes below the 14 days spec 5.4 keeps messages for is meant')
    .option('--retention-days <n>', "archive retention of this channel's messages", Number)
    .option('--pattern <n>', 'security pattern 0-3 (spec 5.2.2)', Number)
    .option('--obfuscate <role=path>', "what a receiving role's copy goes without, e.g. MSS=CustomBlock.B905List[].existingMAP (repeatable; replaces the channel's obfuscation; --reset obfuscation drops it)", collect, [])
    .option('--opt-in', 'participants may opt into the channel themselves')
    .option('--no-opt-in', 'participants may not opt in')
    .option('--reset <field>', 'drop an override, e.g. receiverRoles (repeatable)', collect, [])
    .option('--note <text>', 'why (kept in the history)')
    .option('--expect-version <n>', 'refuse if another change came after this version', Number)
    .action(async (id: string, o: Record<string, unknown> & { reset: string[]; obfuscate: string[] }) => {
      const given = new Map<string, unknown>();
      if (o.obfuscate.length > 0) {
        const rules = new Map<string, string[]>();
        for (const r of o.obfuscate) {
          const at = r.indexOf('=');
          if (at <= 0 || at === r.length - 1) throw new InvalidArgumentError(`--obfuscate ${r}: ROLE=path under payload, e.g. MSS=CustomBlock.B905List[].existingMAP`);
          const role = r.slice(0, at);
          rules.set(role, [...(rules.get(role) ?? []), r.slice(at + 1)]);
        }
        given.set('obfuscation', Object.fromEntries(rules));
      }
      const map: Array<[string, string]> = [
        ['senderRoles', 'senderRoles'],
        ['receiverRoles', 'receiverRoles'],
        ['alwaysRoles', 'alwaysRoles'],
        ['alwaysParticipants', 'alwaysParticipants'],
        ['staleAfterMinutes', 'staleAfterMinutes'],
        ['allowShortRetention', 'allowShortRetention'],
        ['retentionDays', 'archiveRetentionDays'],
        ['pattern', 'securityPattern'],
      ];
      for (const [option, field] of map) if (o[option] !== undefined) given.set(field, o[option]);
      for (const field of o.reset) given.set(field, null);
      const settings = Object.fromEntries(given);
      const answer = await adminCall(loadConfig(), 'PATCH', `/admin/channels/${encodeURIComponent(id)}`, {
        ...(Object.keys(settings).length ? { settings } : {}),
        ...(o.optIn !== undefined ? { optIn: o.optIn } : {}),
        ...(o.note !== undefined ? { note: o.note } : {}),
        ...(o.expectVersion !== undefined ? { expectedVersion: o.expectVersion } : {}),
      });
      print(answer);
      // Taken as they are, but said where the operator looks.
      const warnings = (answer as { warnings?: unknown }).warnings;
      if (Array.isArray(warnings)) for (const w of warnings) process.stderr.write(`warning: ${String(w)}\n`);
    });
  for (const verb of ['pause', 'resume', 'withdraw'] as const) {
    ch
      .command(verb)
      .argument('<id>')
      .option('--note <text>', 'why (kept in the history)')
      .action((id: string, o: { note?: string }) => call('POST', `/admin/channels/${encodeURIComponent(id)}/${verb}`, o.note ? { note: o.note } : {}));
  }
  ch
    .command('rollback')
    .description('put an earlier settings version in force again (as a new version)')
    .argument('<id>')
    .requiredOption('--to <version>', 'the version to go back to (see history)', Number)
    .option('--note <text>')
    .action((id: string, o: { to: number; note?: string }) => call('POST', `/admin/channels/${encodeURIComponent(id)}/rollback`, { version: o.to, ...(o.note ? { note: o.note } : {}) }));
}

/**
 * The answers `dip login` asks for. On a terminal each is asked for, the password without echo; otherwise
 * they are read as lines from standard input (password, then code, then any new password), so scripts and
 * tests can pipe them.
 */
let stdinLines: AsyncIterator<string> | undefined;

async function ask(questions: Array<{ prompt: string; secret: boolean }>): Promise<string[]> {
  const answers: string[] = [];
  if (!process.stdin.isTTY) {
    // One reader for the process: a sign-in asks twice (the enrolment's code comes after its secret is
    // shown), and a second reader would miss lines the first had already taken in.
    stdinLines ??= createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    const lines = stdinLines;
    for (const q of questions) {
      const next = await lines.next();
      if (next.done) throw new Error(`standard input ended before the ${q.prompt.replace(/: $/, '').toLowerCase()}`);
      answers.push(String(next.value));
    }
    return answers;
  }
  for (const q of questions) {
    let muted = false;
    const output = new Writable({
      write(chunk: Buffer, _enc, done) {
        if (!muted) process.stderr.write(chunk);
        done();
      },
    });
    const rl = createInterface({ input: process.stdin, output, terminal: true });
    const answer = new Promise<string>((resolve) => rl.question(q.prompt, resolve));
    muted = q.secret;
    answers.push(await answer);
    rl.close();
    if (q.secret) process.stderr.write('\n');
  }
  return answers;
}

/** The new password, asked for twice on a terminal (read once from a pipe). */
const newPasswordQuestions = () => [{ prompt: 'New password (12 characters or more): ', secret: true }, ...(process.stdin.isTTY ? [{ prompt: 'New password again: ', secret: true }] : [])];

/**
 * A new password, checked here before it is sent (the DIP's own rule, and the same twice), and asked for
 * again until it passes: a refusal by the DIP would cost a round trip, and at a first sign-in a mistake
 * must not end the enrolment. From a pipe, until its lines run out.
 */
async function chooseNewPassword(): Promise<string> {
  for (;;) {
    const answers = await ask(newPasswordQuestions());
    const chosen = answers[0] ?? '';
    const problem = answers.length === 2 && answers[0] !== answers[1] ? 'the two new passwords differ' : passwordProblem(chosen);
    if (!problem) return chosen;
    process.stderr.write(`${problem}: type it again\n`);
  }
}

/** Operator accounts and the journal. */
function registerOperatorCommands(program: Command): void {
  program
    .command('login')
    .description('sign in as an operator (name, password, TOTP code): the session token is kept for the dip commands that follow, until it expires. At your first sign-in leave the code empty: your TOTP secret is shown, to add to your authenticator app, and a code from it finishes the sign-in')
    .requiredOption('--name <name>', 'your operator account')
    .option('--code <code>', 'the code from your authenticator app (asked for when not given)')
    .option('--new-password', 'choose a new password as you sign in (required at your first sign-in: your administrator chose the first one); asked for twice on a terminal, read as the line after the code otherwise')
    .action(async (o: { name: string; code?: string; newPassword?: boolean }) => {
      const config = loadConfig();
      const [password = '', code = o.code ?? ''] = await ask([{ prompt: 'Password: ', secret: true }, ...(o.code ? [] : [{ prompt: 'Code from your authenticator app (empty at your first sign-in): ', secret: false }])]);
      const own = o.newPassword ? await chooseNewPassword() : undefined;
      // The password this enrolment's answers carry: chosen once, asked for again only when the DIP refused it.
      let mine = own;
      const enrol = async (offer: TotpEnrolmentOffer, refusal?: EnrolmentRefusal): Promise<EnrolmentAnswer> => {
        if (refusal) {
          process.stderr.write(`${refusal.error}\ntry again (the same secret, until ${offer.expiresAt})\n`);
          if (refusal.passwordAgain) mine = undefined;
        } else {
          process.stdout.write(
            `Your account has no second factor yet. Add this secret to your authenticator app by ${offer.expiresAt}, then type the code it shows:\n  secret: ${offer.secret}\n  otpauth URI: ${offer.otpauthUri}\n`,
          );
        }
        let enrolCode = '';
        // An empty line is no code: asked again rather than sent as a wrong one (which counts as a failure).
        while (enrolCode === '') [enrolCode = ''] = (await ask([{ prompt: 'Code from your authenticator app: ', secret: false }])).map((c) => c.trim());
        // A password of your own goes with the confirmation when your administrator chose the one in force.
        if ((offer.newPasswordRequired || refusal?.passwordAgain === true) && mine === undefined) mine = await chooseNewPassword();
        return { code: enrolCode, ...(mine === undefined ? {} : { newPassword: mine }) };
      };
      const session = await login(config, { name: o.name, password, code, ...(own === undefined ? {} : { newPassword: own }) }, enrol);
      const passwordChosen = mine !== undefined;
      process.stdout.write(`signed in as ${o.name} until ${session.expiresAt}${session.enrolled ? ', your authenticator set up' : ''}${passwordChosen ? ', with your new password' : ''} (session kept in ${session.file})\n`);
    });
  program
    .command('logout')
    .description('end your operator sessions (API and portal) and forget the kept token')
    .action(async () => {
      const config = loadConfig();
      await adminCall(config, 'DELETE', '/admin/session');
      forgetSession(config);
      process.stdout.write(`signed out; ${sessionFile(config)} removed\n`);
    });
  const op = program.command('operator').description('operator accounts (admin; needs the running DIP). Sign in first with dip login (or DIP_OPERATOR_TOKEN for an automation account; the bootstrap token only until the first admin account exists)');
  op.command('list').action(() => call('GET', '/admin/operators'));
  op.command('whoami').action(() => call('GET', '/admin/whoami'));
  op
    .command('add')
    .description("create an operator account: a person's prints their first password (they set up their TOTP at their first dip login or portal sign-in), an automation account's its token (shown once)")
    .requiredOption('--name <name>', 'the person (their sign-in name, e.g. alice) or the automation (e.g. monitoring)')
    .requiredOption('--role <role>', 'viewer, operator or admin (admin: people only)')
    .option('--display-name <name>', "the person's full name")
    .option('--automation', 'an account for a script: a long-lived token instead of a password and TOTP; viewer or operator only')
    .action((o: { name: string; role: string; displayName?: string; automation?: boolean }) =>
      call('POST', '/admin/operators', { name: o.name, role: o.role, ...(o.displayName ? { displayName: o.displayName } : {}), ...(o.automation ? { automation: true } : {}) }),
    );
  op
    .command('set')
    .description("change an operator's role, disable or enable the account, or issue a new token (the old one stops at once)")
    .argument('<name>')
    .option('--role <role>', 'viewer, operator or admin')
    .option('--disable', 'the account can no longer call')
    .option('--enable', 'the account can call again')
    .option('--new-token', 'issue an automation account a new token (printed once)')
    .action((name: string, o: { role?: string; disable?: boolean; enable?: boolean; newToken?: boolean }) =>
      call('PATCH', `/admin/operators/${encodeURIComponent(name)}`, {
        ...(o.role ? { role: o.role } : {}),
        ...(o.disable ? { disabled: true } : o.enable ? { disabled: false } : {}),
        ...(o.newToken ? { newToken: true } : {}),
      }),
    );
  op
    .command('reset-totp')
    .description("reset the TOTP of a person who lost their authenticator (admin): their sessions end, and the new first password printed (once) signs in to set up a new TOTP and choose their own password")
    .argument('<name>')
    .action((name: string) => call('POST', `/admin/operators/${encodeURIComponent(name)}/totp-reset`));
  program
    .command('journal')
    .description('every administrative act: who, what, on what, when, before and after (newest first)')
    .option('--actor <actor>', 'e.g. operator:alice, bootstrap, cli:alice, register:file, participant:1000000001')
    .option('--action <action>', 'e.g. channel.pause')
    .option('--target <target>', 'e.g. IF-021 or a DIP ID')
    .option('--from <time>', 'entries at or after, ISO-8601 with a zone, e.g. 2026-12-06T00:00:00Z')
    .option('--to <time>', 'entries before, ISO-8601 with a zone')
    .option('--before <id>', 'entries with a smaller ID (the next page: the last ID shown)')
    .option('--limit <n>', 'how many', '100')
    .action((o: { actor?: string; action?: string; target?: string; from?: string; to?: string; before?: string; limit: string }) =>
      call('GET', `/admin/journal${query({ actor: o.actor, action: o.action, target: o.target, from: o.from, to: o.to, before: o.before, limit: o.limit })}`),
    );
}
