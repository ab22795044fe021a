import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { classifyPgError } from '../src/adapters/postgres/errors.js';
import { commitInDoubt } from '../src/adapters/postgres/in-doubt.js';

/** A server's error answer as node-postgres raises it (a DatabaseError with SQLSTATE and severity). */
function serverError(code: string, severity: string, message = 'refused'): pg.DatabaseError {
  const e = new pg.DatabaseError(message, 0, 'error');
  e.code = code;
  e.severity = severity;
  return e;
}

/** A socket error as node's net module raises it. */
function socketError(code: string): Error {
  return Object.assign(new Error(`connect ${code} /run/postgresql/.s.PGSQL.5432`), { code, errno: -2, syscall: 'connect', address: '/run/postgresql/.s.PGSQL.5432' });
}

describe('PostgreSQL errors: which ones a caller may retry (503) and which are permanent (500)', () => {
  // faults6: a pg_hba.conf reject and a Unix socket gone while the server was down answered senders
  // 500 "internal error" and halted queues as a permanent storage error.
  it('a connection the server refuses by its access rules (class 28) is unavailable, not permanent', () => {
    expect(classifyPgError(serverError('28000', 'FATAL', 'pg_hba.conf rejects connection for host "[local]"'))).toMatchObject({ kind: 'unavailable', code: '28000' });
    expect(classifyPgError(serverError('28P01', 'FATAL', 'password authentication failed'))).toMatchObject({ kind: 'unavailable' });
  });

  it('a Unix socket that is not there (ENOENT: the server is down) is unavailable', () => {
    expect(classifyPgError(socketError('ENOENT'))).toMatchObject({ kind: 'unavailable', code: 'ENOENT' });
    expect(classifyPgError(socketError('ECONNREFUSED'))).toMatchObject({ kind: 'unavailable' });
  });

  it('a file the configuration names that is not there (ENOENT from open: a client certificate) is permanent, not a wait (settle2)', () => {
    const missingCert = Object.assign(new Error("ENOENT: no such file or directory, open '/etc/opendip/pg-client.crt'"), { code: 'ENOENT', errno: -2, syscall: 'open', path: '/etc/opendip/pg-client.crt' });
    expect(classifyPgError(missingCert)).toMatchObject({ kind: 'permanent', code: 'ENOENT' });
    expect(classifyPgError(missingCert).message).toMatch(/pg-client\.crt/);
  });

  it('an error in the statement or the data stays permanent', () => {
    expect(classifyPgError(serverError('23505', 'ERROR', 'duplicate key'))).toMatchObject({ kind: 'permanent' });
    expect(classifyPgError(serverError('22003', 'ERROR', 'out of range for type bigint'))).toMatchObject({ kind: 'permanent' });
  });
});

describe('commitInDoubt: an error answering COMMIT that does not say the transaction did not commit', () => {
  it('a PANIC while the commit record is flushed (a full WAL disk) is in doubt, whatever its SQLSTATE', () => {
    // faults6: "PANIC: could not write to file pg_wal/xlogtemp…: No space left on device" (53100) at COMMIT;
    // the server then restarts all sessions, and the commit may or may not be in the WAL it recovers.
    expect(commitInDoubt(serverError('53100', 'PANIC', 'could not write to file "pg_wal/xlogtemp.22938": No space left on device'))).toBe(true);
    expect(commitInDoubt(serverError('XX000', 'FATAL'))).toBe(true);
  });

  it('an ERROR the server answered COMMIT with says it did not commit', () => {
    expect(commitInDoubt(serverError('53100', 'ERROR', 'could not extend file'))).toBe(false);
    expect(commitInDoubt(serverError('40001', 'ERROR', 'could not serialize access'))).toBe(false);
    expect(commitInDoubt(serverError('57P01', 'FATAL', 'terminating connection due to administrator command'))).toBe(true);
    expect(commitInDoubt(new Error('Connection terminated unexpectedly'))).toBe(true);
  });
});
