import { randomBytes } from 'node:crypto';
import { OPERATOR_NAME_PATTERN, OPERATOR_ROLES, type OperatorRole } from '../domain/operators.js';
import type { Clock } from '../ports/clock.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { RegistryStore, StoredRecord } from '../ports/registry.js';
import { USERNAME_PATTERN } from './portal-accounts.js';
import { secretHash } from '../security/api-key.js';
import { RefusedError } from './refused.js';

const KIND = 'operator';

/**
 * An operator account as stored. A person signs in with a password and a TOTP code (the credential is
 * kept with the portal accounts) and gets short-lived bearer tokens; an automation account (a script,
 * monitoring) has a long-lived token instead, kept only as its SHA-256 (a random 256-bit token needs no
 * slow hash), and may never be an admin.
 */
export interface OperatorAccount {
  name: string;
  role: OperatorRole;
  /** True for automation accounts; absent on accounts made before people signed in (treated as people). */
  automation?: boolean;
  /** The automation account's token hash; null for a person. */
  tokenHash: string | null;
  disabled: boolean;
  createdAt: number;
  createdBy: string;
}

/** What the operator API shows of an account (never the hash). */
export interface OperatorView {
  name: string;
  role: OperatorRole;
  automation: boolean;
  disabled: boolean;
  createdAt: string;
  createdBy: string;
  version: number;
}

/** Who is calling the operator API. `bootstrap` is the break-glass token in the data directory. */
export interface OperatorIdentity {
  name: string;
  role: OperatorRole;
  /** As written in the journal: `operator:<name>` or `bootstrap`. */
  actor: string;
  /**
   * An automation account (a token, no sessions). Carried with the name because a name is unique only
   * among operator accounts: a participant's portal user may bear an automation account's name, and what
   * is done to "the account's sessions" must never reach that user's (see OperatorSessions).
   */
  automation: boolean;
}

/** A person's account name is their sign-in name (the portal's username rule, src/pipeline/portal-accounts.ts). */
const PERSON_NAME_PATTERN = USERNAME_PATTERN;
const identity = (a: OperatorAccount): OperatorIdentity => ({ name: a.name, role: a.role, actor: `operator:${a.name}`, automation: a.automation === true });

const hashToken = secretHash;

/** The enabled automation account whose token this is (checked against the store's accounts, or a reading of them). */
export function automationAccountFor(accounts: OperatorAccount[], token: string): OperatorIdentity | undefined {
  const hash = hashToken(token);
  const found = accounts.find((a) => a.automation === true && a.tokenHash === hash && !a.disabled);
  return found ? identity(found) : undefined;
}

/** An enabled person's account by name. */
export function personNamed(accounts: OperatorAccount[], name: string): OperatorIdentity | undefined {
  const found = accounts.find((a) => a.name === name && a.automation !== true && !a.disabled);
  return found ? identity(found) : undefined;
}

/** An enabled account by name, a person's or an automation account's (the portals' in-process calls name theirs). */
export function enabledOperatorNamed(accounts: OperatorAccount[], name: unknown): OperatorIdentity | undefined {
  const found = accounts.find((a) => a.name === name && !a.disabled);
  return found ? identity(found) : undefined;
}

/** Whether any admin account exists, enabled or not. */
export const hasAdmin = (accounts: OperatorAccount[]): boolean => accounts.some((a) => a.role === 'admin');
const newToken = (): string => `dipop_${randomBytes(32).toString('base64url')}`;
const view = (r: StoredRecord): OperatorView => {
  const a = r.doc as OperatorAccount;
  return { name: a.name, role: a.role, automation: a.automation === true, disabled: a.disabled, createdAt: new Date(a.createdAt).toISOString(), createdBy: a.createdBy, version: r.version };
};

/**
 * Named operator accounts, kept as registry records (every node sees a new account or a disabled one at
 * once) and every change journalled with who made it.
 */
export class OperatorAccounts {
  constructor(
    private readonly store: Pick<RegistryStore, 'records' | 'putRecord'>,
    private readonly journal: OperatorJournal,
    private readonly clock: Clock,
  ) {}

  async list(): Promise<OperatorView[]> {
    return (await this.store.records(KIND)).map(view);
  }

  /** Every account as stored (what OperatorMemory keeps for when the store cannot be read). */
  async accounts(): Promise<OperatorAccount[]> {
    return (await this.store.records(KIND)).map((r) => r.doc as OperatorAccount);
  }

  /** The automation account behind a long-lived bearer token, if enabled. People's accounts have no such token. */
  async identify(token: string): Promise<OperatorIdentity | undefined> {
    return automationAccountFor(await this.accounts(), token);
  }

  /** An enabled person's account by name (a sign-in or a session names it). */
  async person(name: string): Promise<OperatorIdentity | undefined> {
    return personNamed(await this.accounts(), name);
  }

  /** Whether any admin account exists (enabled or not): from then on the bootstrap token is refused. */
  async adminExists(): Promise<boolean> {
    return hasAdmin(await this.accounts());
  }

  /**
   * Checks a new account before anything is stored (a person's sign-in credential is made beside it, so
   * both are refused together): the name, the role, and that an automation account is not an admin.
   */
  async check(name: string, role: OperatorRole, automation: boolean): Promise<void> {
    if (!OPERATOR_NAME_PATTERN.test(name)) throw new RefusedError(400, `name '${name}': 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit`);
    if (!automation && !PERSON_NAME_PATTERN.test(name)) throw new RefusedError(400, `name '${name}': a person's account name is their sign-in name: 3 to 64 lower-case letters, digits, '.', '_' or '-'`);
    if (!OPERATOR_ROLES.includes(role)) throw new RefusedError(400, `role '${String(role)}': one of ${OPERATOR_ROLES.join(', ')}`);
    if (automation && role === 'admin') throw new RefusedError(400, "role 'admin': automation accounts may be viewer or operator; admins are people who sign in");
    if ((await this.store.records(KIND)).some((r) => r.key === name)) throw new RefusedError(409, `operator ${name} exists: change it with PATCH /admin/operators/${name}`);
  }

  /** Creates an account; an automation account's token is returned (shown once). */
  async create(name: string, role: OperatorRole, by: OperatorIdentity, automation = false): Promise<{ operator: OperatorView; token?: string }> {
    await this.check(name, role, automation);
    const token = automation ? newToken() : undefined;
    const account: OperatorAccount = { name, role, automation, tokenHash: token ? hashToken(token) : null, disabled: false, createdAt: this.clock.now(), createdBy: by.actor };
    const stored = await this.store.putRecord({ kind: KIND, key: name, doc: account, at: this.clock.now(), by: by.actor }, 0);
    await this.record(by, 'operator.create', name, null, view(stored));
    return { operator: view(stored), ...(token ? { token } : {}) };
  }

  /** Changes an account's role, disables or enables it, or issues an automation account a new token (the old one stops at once). */
  async update(name: string, change: { role?: OperatorRole; disabled?: boolean; newToken?: boolean }, by: OperatorIdentity): Promise<{ operator: OperatorView; token?: string }> {
    const current = (await this.store.records(KIND)).find((r) => r.key === name);
    if (!current) throw new RefusedError(404, `no operator ${name}`);
    if (change.role !== undefined && !OPERATOR_ROLES.includes(change.role)) throw new RefusedError(400, `role '${String(change.role)}': one of ${OPERATOR_ROLES.join(', ')}`);
    const before = current.doc as OperatorAccount;
    if (change.newToken && before.automation !== true) throw new RefusedError(400, `newToken: ${name} is a person, who signs in with a password and a TOTP code (POST /admin/session); only automation accounts have tokens`);
    if (change.role === 'admin' && before.automation === true) throw new RefusedError(400, "role 'admin': automation accounts may be viewer or operator; admins are people who sign in");
    const token = change.newToken ? newToken() : undefined;
    const next: OperatorAccount = {
      ...before,
      ...(change.role !== undefined ? { role: change.role } : {}),
      ...(change.disabled !== undefined ? { disabled: change.disabled } : {}),
      ...(token ? { tokenHash: hashToken(token) } : {}),
    };
    const stored = await this.store.putRecord({ kind: KIND, key: name, doc: next, at: this.clock.now(), by: by.actor }, current.version);
    await this.record(by, token ? 'operator.new-token' : 'operator.update', name, view(current), view(stored));
    return { operator: view(stored), ...(token ? { token } : {}) };
  }

  private async record(by: OperatorIdentity, action: string, target: string, before: unknown, after: unknown): Promise<void> {
    await this.journal.append({ at: this.clock.now(), actor: by.actor, action, target, before, after, status: null });
  }
}
