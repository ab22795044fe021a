import { describe, expect, it } from 'vitest';
import { readClaim, registerCheck } from '../src/domain/onboarding.js';
import type { RegisterEntry } from '../src/domain/register.js';
import { defaultUsername } from '../src/pipeline/onboarding.js';

const csr = '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----';
const input = { companyName: 'New Energy Ltd', mpids: 'newe, NEWF newe', roles: 'sup', contactName: 'Nia', contactEmail: 'nia@newenergy.example', csrPem: csr };
const entry = (dipId: string, rows: Array<[mpid: string, role: string, from: number, to: number | null]>): RegisterEntry => ({
  dipId, companyRegNumber: '09876543', companyName: `Company ${dipId}`, rows: rows.map(([mpid, role, from, to]) => ({ mpid, marketRole: null, role, from, to })),
});

describe('an onboarding claim', () => {
  it('is read in any case, lists without repeats, sorted', () => {
    expect(readClaim(input)).toEqual({ claim: { ...input, mpids: ['NEWE', 'NEWF'], roles: ['SUP'], csrPem: `${csr}\n` } });
  });

  it('names each field that is wrong, and only those', () => {
    const read = readClaim({ ...input, companyName: 'X', contactName: 'Nia\r\nBcc: all@example.net', contactEmail: 'nia@newenergy.example\r\nBcc: x@y.z', roles: 'SUP, supplier' });
    expect(read).toEqual({
      problems: {
        companyName: 'company name: 2 to 200 characters on one line',
        roles: "roles: 'SUPPLIER' is not a DIP role (3 to 5 letters, e.g. SUP)",
        contactName: 'contact name: 1 to 100 characters on one line',
        contactEmail: 'e-mail: an address such as name@company.example',
      },
    });
  });

  it('takes the register\'s DIP ID and roles in force now; names what differs and why it cannot be approved', () => {
    const now = 10_000;
    const entries = [entry('1000000001', [['NEWE', 'SUP', 0, null], ['NEWF', 'SUP', 0, null], ['NEWE', 'MDS', 0, 5_000], ['NEWE', 'LDSO', 20_000, null]]), entry('1000000002', [['OTHR', 'SUP', 0, null], ['GONE', 'SUP', 0, 5_000]])];
    expect(registerCheck({ mpids: ['NEWE', 'NEWF'], roles: ['MDS', 'SUP'] }, entries, now)).toEqual({
      dipId: '1000000001', companyName: 'Company 1000000001', unknownMpids: [], dipIds: ['1000000001'], registerRoles: ['SUP'], rolesNotInRegister: ['MDS'], rolesNotClaimed: [], problem: null,
    });
    expect(registerCheck({ mpids: ['NEWE', 'OTHR'], roles: ['SUP'] }, entries, now)).toMatchObject({ dipId: null, dipIds: ['1000000001', '1000000002'], problem: 'the MPIDs are registered under 2 DIP IDs (1000000001, 1000000002): one application per DIP ID' });
    // A row that ended is no registration now.
    expect(registerCheck({ mpids: ['GONE'], roles: ['SUP'] }, entries, now)).toMatchObject({ dipId: null, unknownMpids: ['GONE'], problem: 'the register has no DIP ID for GONE now' });
  });

  it("makes the contact's username from the address and the DIP ID", () => {
    expect(defaultUsername('Nia.Newton+dip@newenergy.example', '1000000001')).toBe('nia.newtondip.1000000001');
    expect(defaultUsername('__@x.example', '10000000AB')).toBe('admin.10000000ab');
  });
});
