import { describe, expect, it } from 'vitest';
import { Outbox } from '../src/topology/protocol.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('Outbox (one packet per turn of the event loop)', () => {
  it('sends what one turn gives, continuations included, as one packet in order, and the next turn\'s in the next', async () => {
    const packets: number[][] = [];
    const outbox = new Outbox<number>((p) => packets.push(p));
    outbox.send(1);
    // A promise continuation of the same turn (as a settlement issued after its attempt record) joins it.
    void Promise.resolve().then(() => outbox.send(2));
    outbox.send(3);
    expect(packets).toEqual([]);
    await nextTurn();
    outbox.send(4);
    await nextTurn();
    expect(packets).toEqual([[1, 3, 2], [4]]);
  });

  it('flush() sends at once and leaves nothing for the turn\'s end', async () => {
    const packets: string[][] = [];
    const outbox = new Outbox<string>((p) => packets.push(p));
    outbox.send('a');
    outbox.flush();
    expect(packets).toEqual([['a']]);
    outbox.flush();
    await nextTurn();
    expect(packets).toEqual([['a']]);
  });
});
