// The live hub's fan-out: one send per commit and client (one socket write, not one per reading).
// The ports here are the hub's own (a log it taps, clients it sends to); test/web/live.test.ts runs
// the same through the agent's WebSocket, Server-Sent Events and GraphQL clients.
import { describe, expect, it } from 'vitest';
import { encodeRecord } from '../../agent/log/record.js';
import { LiveHub, type LiveClient, type Tappable } from '../../agent/serve/web/live.js';
import { record } from '../helpers/records.js';

class Commits implements Tappable {
  private listener: ((lines: string[]) => void) | undefined;
  tap(listener: (lines: string[]) => void) {
    this.listener = listener;
    return () => (this.listener = undefined);
  }
  commit(seqs: number[], topic = (seq: number) => (seq % 2 ? 'a/x' : 'b/x')): void {
    this.listener?.(seqs.map((seq) => encodeRecord(seq, { ...record(seq, topic(seq)), payloadJson: JSON.stringify({ t: seq, h: 1 }) })));
  }
}

class Client implements LiveClient {
  readonly sends: string[][] = [];
  closedWith: number | undefined;
  constructor(
    readonly subscriptions: Map<string, string[] | undefined>,
    private waiting = 0,
  ) {}
  buffered = () => this.waiting;
  send(readings: string[]): void {
    this.sends.push(readings);
  }
  tooSlow(bytes: number): void {
    this.closedWith = bytes;
  }
}

const seqsOf = (texts: string[]) => texts.map((t) => (JSON.parse(t) as { seq: number }).seq);

describe('LiveHub', () => {
  it("sends each client a commit's readings it asked for in one send, in order, with its fields", () => {
    const log = new Commits();
    const hub = new LiveHub(log, 'pi', { maxClients: 10, maxPerOwner: 10, maxBufferedBytes: 1000 });
    const all = new Client(new Map([['#', undefined]]));
    const alsoAll = new Client(new Map([['#', undefined]]));
    const aOnly = new Client(new Map([['a/#', ['t']]]));
    const aWhole = new Client(new Map([['a/#', undefined]]));
    for (const c of [all, alsoAll, aOnly, aWhole]) expect(hub.add(c, 'viewer')).toBeUndefined();
    log.commit([1, 2, 3, 4, 5]);
    log.commit([6]);
    expect(all.sends.map(seqsOf)).toEqual([[1, 2, 3, 4, 5], [6]]);
    expect(alsoAll.sends).toEqual(all.sends);
    // Clients given every reading whole share one array (their wire form is made once); the others not.
    expect(alsoAll.sends[0]).toBe(all.sends[0]);
    expect(aOnly.sends.map(seqsOf)).toEqual([[1, 3, 5]]); // nothing for the commit of 6 (b/x)
    expect(aWhole.sends.map(seqsOf)).toEqual([[1, 3, 5]]);
    expect(aWhole.sends[0][0]).toBe(all.sends[0][0]); // the same text: made once for all
    expect(aWhole.sends[0]).not.toBe(all.sends[0]);
    expect((JSON.parse(aOnly.sends[0][0]) as { payload: unknown }).payload).toEqual({ t: 1 });
    expect((JSON.parse(all.sends[0][0]) as { payload: unknown }).payload).toEqual({ t: 1, h: 1 });
  });

  it('closes a client past maxBufferedBytes before sending it anything more; one just at it is served', () => {
    const log = new Commits();
    const hub = new LiveHub(log, 'pi', { maxClients: 10, maxPerOwner: 10, maxBufferedBytes: 1000 });
    const slow = new Client(new Map([['#', undefined]]), 1001);
    const atLimit = new Client(new Map([['#', undefined]]), 1000);
    hub.add(slow, 'viewer');
    hub.add(atLimit, 'viewer');
    log.commit([1, 2]);
    expect(slow).toMatchObject({ sends: [], closedWith: 1001 });
    expect(atLimit.sends.map(seqsOf)).toEqual([[1, 2]]);
    expect(atLimit.closedWith).toBeUndefined();
    expect(hub.slowClosed).toBe(1);
    expect(hub.size).toBe(1);
  });
});
