// Subscribe and forward decisions against each client's ACL: a denied subscription gets 0x80 in
// its SUBACK; a delivery the client may no longer read is not sent. (Publishing: ./publish.ts.)
import type { AedesPublishPacket, Client, Subscription } from 'aedes';
import type { Logger } from './logger.js';
import { sessionOf } from './session.js';
import type { BrokerStats } from './stats.js';

export function makeAuthorizers(stats: BrokerStats, logger: Logger) {
  function authorizeSubscribe(client: Client, sub: Subscription, cb: (err: Error | null, sub?: Subscription | null) => void): void {
    const session = sessionOf(client);
    if (session?.acl.canSubscribe(sub.topic)) return cb(null, sub);
    stats.subscribeDenied++;
    logger.debug({ clientId: client.id, filter: sub.topic }, 'subscription denied');
    cb(null, null);
  }

  /** Every delivery, queued ones included, against the client's current ACL: a stale session never reads what its client may not. */
  function authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const session = sessionOf(client);
    if (!session?.acl.canSubscribe(packet.topic)) {
      stats.forwardDenied++;
      return null;
    }
    stats.messagesSent++;
    return packet;
  }

  return { authorizeSubscribe, authorizeForward };
}
