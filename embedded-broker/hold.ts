// Holding a publisher (TCP backpressure). Aedes reads a client's socket again once every packet of
// the last read is handled, but also on each 'readable' event, so a handler that only delays its
// callback does not stop the reading; Aedes' pause() does. On release, reading goes on as if every
// packet read so far were handled: callbacks that came while paused were ignored by Aedes.
import type { Client } from 'aedes';
import type { Session } from './session.js';

type Pausable = Client & { pause(): void; resume(): void; _parsingBatch: number };

export function holdSender(client: Client, session: Session): void {
  if (session.holds++ === 0) (client as Pausable).pause();
}

export function releaseSender(client: Client, session: Session): void {
  if (--session.holds > 0) return;
  (client as Pausable)._parsingBatch = 1;
  (client as Pausable).resume();
}
