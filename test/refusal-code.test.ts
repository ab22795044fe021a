/**
 * The MSG code a refused submission is counted under (dip_refusals_total{code}): the failing item's, not
 * the MSG1000 every other item of a batch refused whole is answered with.
 */
import { describe, expect, it } from 'vitest';
import { MSG, type MsgText } from '../src/domain/response-codes.js';
import { standardResponse } from '../src/domain/standard-response.js';
import { refusalCode } from '../src/pipeline/ingest.js';

const answer = (status: number, codes: MsgText[]) => ({ status, response: standardResponse(new Date(0), '0000000000', '2000000001', codes.map((message) => ({ message }))) });

describe('refusalCode', () => {
  it('is null for an accepted batch', () => {
    expect(refusalCode(answer(201, [MSG.success, MSG.success]))).toBeNull();
  });

  it("is the failing item's code wherever it stands in the batch", () => {
    expect(refusalCode(answer(400, [MSG.schemaFailure, MSG.processingFailed]))).toBe('MSG1001');
    expect(refusalCode(answer(400, [MSG.processingFailed, MSG.processingFailed, MSG.duplicateReference]))).toBe('MSG1006');
    expect(refusalCode(answer(403, [MSG.processingFailed, MSG.senderDipIdInvalid, MSG.primaryRecipientInvalid]))).toBe('MSG1009');
  });

  it('is MSG1000 for a batch refused whole for the DIP’s own reasons (overload, a paused channel, the store)', () => {
    expect(refusalCode(answer(503, [MSG.processingFailed]))).toBe('MSG1000');
  });
});
