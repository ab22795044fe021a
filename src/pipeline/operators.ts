import { createHash, randomBytes } from 'node:crypto';
import { OPERATOR_NAME_PATTERN, OPERATOR_ROLES, type OperatorRole } from '../domain/operators.js';
import type { Clock } from '../ports/clock.js';
import type { OperatorJournal } from '../ports/operator-journal.js';
import type { RegistryStore, StoredRecord } from '../ports/registry.js';

const KIND = 'operator';

/** An operator account as stored: the token only as its SHA-256 (a random 256-bit token needs no slow hash). */
export interface OperatorAccount {
  name: string;
  role: OperatorRole;
  tokenHash: string;
  disabled: boolean;
  createdAt: number;
  createdBy: string;
}

/** What the operator API shows of an account (never the hash). */
export interface OperatorView {
  name: string;
  role: OperatorRole;
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
}

export const hashToken = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');
const newToken = (): string => `dipop_${randomBytes(32).toString('base64url')}`;
const view = (r: StoredRecord): OperatorView => {
  const a = r.doc as OperatorAccount;
  return { name: a.name, role: a.role, disabled: a.disabled, createdAt: new Date(a.createdAt).toISOString(), createdBy: a.createdBy, version: r.version };
};

export class OperatorError extends Error {
  constructor(
    readonly status: 400 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

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

  /** The caller behind a bearer token, if it is an enabled operator's. */
  async identify(token: string): Promise<OperatorIdentity | undefined> {
    const hash = hashToken(token);
    const found = (await this.store.records(KIND)).map((r) => r.doc as OperatorAccount).find((a) => a.tokenHash === hash && !a.disabled);
    return found ? { name: found.name, role: found.role, actor: `operator:${found.name}` } : undefined;
  }

  /** Creates an account and returns its token (shown once). */
  async create(name: string, role: OperatorRole, by: OperatorIdentity): Promise<{ operator: OperatorView; token: string }> {
    if (!OPERATOR_NAME_PATTERN.test(name)) throw new OperatorError(400, `name '${name}': 1 to 64 letters, digits, '.', '-' or '_', starting with a letter or digit`);
    if (!OPERATOR_ROLES.includes(role)) throw new OperatorError(400, `role '${String(role)}': one of ${OPERATOR_ROLES.join(', ')}`);
    if ((await this.store.records(KIND)).some((r) => r.key === name)) throw new OperatorError(409, `operator ${name} exists: change it with PATCH /admin/operators/${name}`);
    const token = newToken();
    const account: OperatorAccount = { name, role, tokenHash: hashToken(token), disabled: false, createdAt: this.clock.now(), createdBy: by.actor };
    const stored = await this.store.putRecord({ kind: KIND, key: name, doc: account, at: this.clock.now(), by: by.actor }, 0);
    await this.record(by, 'operator.create', name, null, view(stored));
    return { operator: view(stored), token };
  }

  /** Changes an account's role, disables or enables it, or issues it a new token (the old one stops at once). */
  async update(name: string, change: { role?: OperatorRole; disabled?: boolean; newToken?: boolean }, by: OperatorIdentity): Promise<{ operator: OperatorView; token?: string }> {
    const current = (await this.store.records(KIND)).find((r) => r.key === name);
    if (!current) throw new OperatorError(404, `no operator ${name}`);
    if (change.role !== undefined && !OPERATOR_ROLES.includes(change.role)) throw new OperatorError(400, `role '${String(change.role)}': one of ${OPERATOR_ROLES.join(', ')}`);
    const before = current.doc as OperatorAccount;
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
