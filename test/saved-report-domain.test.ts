import { describe, expect, it } from 'vitest';
import { ownerOf, readSavedReport, reportOwner, systemOwner, type SavedReportInput } from '../src/domain/saved-report.js';

const input: SavedReportInput = { name: 'mine', report: 'throughput', period: 'day', channels: '', sender: '', recipient: '', every: 'none', format: '', email: '' };
const catalogue = (id: string) => (['IF-021', 'IF-022'].includes(id.toUpperCase()) ? id.toUpperCase() : undefined);

describe('saved report definitions', () => {
  // Failed before: a channel was kept as typed, and the report compares channel IDs as stored, so a
  // report saved with "if-021" (the portal's form, the API) always showed nothing.
  it("keeps channels in the catalogue's spelling, each once, and names the unknown ones", () => {
    const read = readSavedReport({ ...input, channels: 'if-021, IF-021,If-022' }, catalogue);
    expect(read).toMatchObject({ ok: true, definition: { channels: ['IF-021', 'IF-022'] } });
    expect(readSavedReport({ ...input, channels: 'if-021,IF-999,nope' }, catalogue)).toEqual({ ok: false, problem: 'channels: IF-999, nope are no channel of this DIP' });
  });

  it("keys a participant's system, its users and the operators apart, whatever names they bear", () => {
    const keys = [systemOwner('1000000001'), reportOwner({ participantDipId: '1000000001', username: '1000000001' }), reportOwner({ participantDipId: null, username: '1000000001' })];
    expect(new Set(keys).size).toBe(3);
    expect(keys.map(ownerOf)).toEqual([{ realm: 'participant', dipId: '1000000001' }, { realm: 'user', username: '1000000001' }, { realm: 'operator', username: '1000000001' }]);
    expect(ownerOf('bootstrap')).toBeUndefined();
  });
});
