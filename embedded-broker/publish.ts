// The data path's entry: a PUBLISH a client may send walks these steps (as Aedes' handlers do):
//   refusal             $SYS and the ACL (a refused message is acknowledged and dropped: MQTT 3.1.1
//                       has no negative PUBACK, and an error would disconnect)
//   accept              hand it to ingest (onPublish), which says when it is safe
//   acknowledgeInOrder  QoS 1: the PUBACK waits in the client's queue until the message is safe
//   answerWhenSafe      QoS 0 held by ingest, or QoS 2 (PUBREC): the sender waits until then
import type { Client, PublishPacket } from 'aedes';
import { holdSender, releaseSender } from './hold.js';
import type { Logger } from './logger.js';
import { PubackQueue } from './pubacks.js';
import { sessionOf, type Session } from './session.js';
import type { BrokerStats } from './stats.js';

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
 * When an accepted message is safe (the QoS 1 PUBACK, QoS 2 PUBREC, waits for it), and whether its
 * publisher's socket must not be read until then (TCP backpressure). A rejected `safe` disconnects
 * the client, which will resend.
 */
export interface Acceptance {
  safe: Promise<void>;
  holdSender: boolean;
}

/** Called for each message a client may publish, before it is acknowledged; nothing returned: safe now. */
export type PublishHook = (message: InboundMessage) => Acceptance | undefined;

/** Marks a packet that is acknowledged but must not be routed (see EdgeAedes.publish). */
export const DROPPED = Symbol('dropped');
/** Marks a QoS 1 packet whose PUBACK the broker's PubackQueue sends: Aedes handles it as QoS 0 (see EdgeAedes.publish). */
export const ACKED_BY_QUEUE = Symbol('acked by queue');

export type MarkedPacket = PublishPacket & { [DROPPED]?: true; [ACKED_BY_QUEUE]?: true };

export interface PublishOptions {
  /** QoS 1 messages a client may have unacknowledged before its socket is read only as they are acknowledged. */
  maxInflightPerClient: number;
  onPublish?: PublishHook;
}

/** Aedes' authorizePublish, as the data path's entry. */
/** How a publish is answered once ingest has (or has not) taken it. */
type Answer = (
  client: Client,
  session: Session,
  packet: MarkedPacket,
  acceptance: Acceptance | undefined,
  cb: (err?: Error | null) => void,
) => void;

export function publishEntry(opts: PublishOptions, stats: BrokerStats, logger: Logger) {
  function refusal(session: Session, topic: string): string | undefined {
    if (topic.startsWith('$SYS')) return '$SYS is reserved for the broker';
    if (!session.acl.canPublish(topic)) return 'not allowed by ACL';
    return undefined;
  }

  function receivePublish(client: Client | null, packet: MarkedPacket, cb: (err?: Error | null) => void): void {
    if (!client) return cb(null); // a will restored from a previous run
    const session = sessionOf(client);
    if (!session) return cb(new Error('no session'));
    stats.messagesReceived++;
    let acceptance: Acceptance | undefined;
    try {
      acceptance = accept(client, session, packet);
    } catch (err) {
      return cb(err as Error);
    }
    if (packet.qos === 1) acknowledgeInOrder(client, session, packet, acceptance, cb);
    else answerWhenSafe(client, session, packet, acceptance, cb);
  }

  /** Refused packets are marked to be acknowledged and dropped; the rest go to the hook. */
  function accept(client: Client, session: Session, packet: MarkedPacket): Acceptance | undefined {
    const reason = refusal(session, packet.topic);
    if (reason) {
      packet[DROPPED] = true;
      stats.publishDenied++;
      logger.debug({ clientId: client.id, topic: packet.topic, reason }, 'publish dropped');
      return undefined;
    }
    return opts.onPublish?.({
      topic: packet.topic,
      payload: packet.payload as Buffer,
      qos: packet.qos,
      retain: packet.retain,
      clientId: client.id,
      username: session.identity.username,
    });
  }

  /** QoS 0 held by the hook, or QoS 2 (Aedes sends PUBREC after cb): the sender waits until the message is safe. */
  const answerWhenSafe: Answer = (client, session, packet, acceptance, cb) => {
    if (!acceptance || (packet.qos === 0 && !acceptance.holdSender)) return cb(null);
    holdSender(client, session);
    const release = (err?: Error) => {
      cb(err ?? null);
      releaseSender(client, session);
    };
    acceptance.safe.then(() => release(), release);
  };

  /** The PUBACK waits in the client's queue; its socket is read on unless the hook or a full window says hold. */
  const acknowledgeInOrder: Answer = (client, session, packet, acceptance, cb) => {
    session.pubacks ??= new PubackQueue(client.conn, {
      fail(err) {
        logger.warn({ clientId: client.id, err: err.message }, 'message not made safe, disconnecting the client');
        client.close();
      },
      full: () => holdSender(client, session),
      drained: () => releaseSender(client, session),
    });
    const hold = (acceptance?.holdSender ?? false) || session.pubacks.length >= opts.maxInflightPerClient;
    if (hold) holdSender(client, session);
    packet[ACKED_BY_QUEUE] = true;
    packet.qos = 0;
    session.pubacks.add(packet.messageId!, acceptance?.safe, hold ? () => releaseSender(client, session) : undefined);
    cb(null);
  };

  return receivePublish;
}
