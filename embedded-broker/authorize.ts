// Publish and subscribe decisions. A denied publish is acknowledged and dropped (MQTT 3.1.1 has no
// negative PUBACK, and an error would disconnect); a denied subscription gets 0x80 in its SUBACK.
import type { AedesPublishPacket, Client, PublishPacket, Subscription } from 'aedes';
import { sessionOf } from './session.js';
import type { BrokerStats } from './stats.js';
import type { Logger } from './logger.js';

/** An accepted message as handed to the agent's ingest. */
export interface InboundMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  clientId: string;
  username?: string;
}

/**
 * Called for each accepted message before it is acknowledged: the QoS 1 PUBACK (and QoS 2 PUBREC)
 * waits for the returned promise. A rejection disconnects the client, which will resend.
 */
export type PublishHook = (message: InboundMessage) => Promise<void> | void;

/** Marks a packet that is acknowledged but must not be routed (see EdgeAedes.publish). */
export const DROPPED = Symbol('dropped');

export interface AuthorizeOptions {
  maxInflightPerClient: number;
  onPublish?: PublishHook;
}

export function makeAuthorizers(opts: AuthorizeOptions, stats: BrokerStats, log: Logger) {
  function drop(packet: PublishPacket, client: Client, reason: string, cb: (err?: Error | null) => void) {
    (packet as PublishPacket & { [DROPPED]?: true })[DROPPED] = true;
    stats.publishDenied++;
    log.debug({ clientId: client.id, topic: packet.topic, reason }, 'publish dropped');
    cb(null);
  }

  function authorizePublish(client: Client | null, packet: PublishPacket, cb: (err?: Error | null) => void): void {
    if (!client) return cb(null); // a will restored from a previous run
    const session = sessionOf(client);
    if (!session) return cb(new Error('no session'));
    stats.messagesReceived++;
    if (packet.topic.startsWith('$SYS')) return drop(packet, client, '$SYS is reserved for the broker', cb);
    if (!session.acl.canPublish(packet.topic)) return drop(packet, client, 'not allowed by ACL', cb);
    if (!opts.onPublish) return cb(null);
    if (packet.qos > 0 && session.inflight >= opts.maxInflightPerClient) {
      return cb(new Error(`more than ${opts.maxInflightPerClient} unacknowledged messages in flight`));
    }
    if (packet.qos > 0) session.inflight++;
    const settle = (err?: Error | null) => {
      if (packet.qos > 0) session.inflight--;
      cb(err ?? null);
    };
    try {
      const result = opts.onPublish({
        topic: packet.topic,
        payload: packet.payload as Buffer,
        qos: packet.qos,
        retain: packet.retain,
        clientId: client.id,
        username: session.identity.username,
      });
      if (result) result.then(() => settle(), settle);
      else settle();
    } catch (err) {
      settle(err as Error);
    }
  }

  function authorizeSubscribe(client: Client, sub: Subscription, cb: (err: Error | null, sub?: Subscription | null) => void): void {
    const session = sessionOf(client);
    if (session?.acl.canSubscribe(sub.topic)) return cb(null, sub);
    stats.subscribeDenied++;
    log.debug({ clientId: client.id, filter: sub.topic }, 'subscription denied');
    cb(null, null);
  }

  function authorizeForward(_client: Client, packet: AedesPublishPacket): AedesPublishPacket {
    stats.messagesSent++;
    return packet;
  }

  return { authorizePublish, authorizeSubscribe, authorizeForward };
}
