// The embedded broker: Aedes with our authentication, ACLs, limits, packet guard, $SYS and LevelDB persistence.
import { mkdirSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { Aedes, type Client } from 'aedes';
import mqttPacket from 'mqtt-packet';
import type { AclRule } from './acl.js';
import { makeAuthenticate, type AnonymousPolicy, type Users } from './auth.js';
import { makeAuthorizers } from './authorize.js';
import { ACKED_BY_QUEUE, DROPPED, publishEntry, type MarkedPacket, type PublishHook } from './publish.js';
import { connectionInfo, setConnectionInfo } from './connection-info.js';
import { listenTcp, listenTls, type Listener, type TcpListenerOptions, type TlsListenerOptions } from './listeners.js';
import type { Logger } from './logger.js';
import { LoginGuard, type LoginLimits } from './login-guard.js';
import { PacketGuard, type GuardLimits } from './packet-guard.js';
import { LevelPersistence, type Sealer } from './persistence/level.js';
import { newStats, type BrokerStats } from './stats.js';
import { watchUsers } from './revocation.js';
import { PersistentSessions, type SessionControl } from './persistent-sessions.js';
import { startSysTopics } from './sys.js';

export interface BrokerLimits extends GuardLimits {
  maxClients: number;
  maxPendingLogins: number;
  maxPendingPerAddress: number;
  maxInflightPerClient: number;
  maxQueuedPerClient: number;
  connectTimeoutMs: number;
  drainTimeoutMs: number;
}

export interface BrokerOptions {
  version: string;
  /** Directory for retained messages and persistent sessions. */
  persistenceDir: string;
  /** Encrypts what that directory stores (queued messages, retained payloads, wills). */
  persistenceSealer?: Sealer;
  mqtt?: TcpListenerOptions;
  mqtts?: TlsListenerOptions & { useIdentityAsUsername: boolean; certificateOnlyUsers?: boolean };
  allowAnonymous: AnonymousPolicy;
  acl: AclRule[];
  users: Users;
  limits: BrokerLimits;
  loginThrottle: Omit<LoginLimits, 'maxPendingLogins' | 'maxPendingPerAddress'>;
  /** Share failed-login counts and the password-check slots with another front door (the web API). */
  loginGuard?: LoginGuard;
  sysIntervalSec: number;
  /** A persistent session whose client stays away this long ends (its subscriptions and queue go). */
  persistentSessionExpiryMs: number;
  onPublish?: PublishHook;
  logger: Logger;
}

export interface EmbeddedBroker {
  /** Listener name -> bound host:port. */
  readonly listeners: Record<string, string>;
  /** Serve one MQTT-over-WebSocket connection accepted by the web server. */
  handleStream(stream: Duplex, listener: string, remoteAddress: string): void;
  stats(): BrokerStats;
  /** Persistent sessions: listed, ended. */
  sessions: SessionControl;
  /** Publish from the broker itself (QoS 0); `retain` keeps it for later subscribers, an empty retained payload clears it. */
  publish(topic: string, payload: string, retain: boolean): void;
  /** Stop listening, disconnect clients, flush persistence. */
  close(): Promise<void>;
}

interface ClientInternals {
  _parser: { parse(buf: Buffer): number };
}

/** Aedes that does not route packets its hooks dropped, and routes QoS 1 packets acknowledged by a PubackQueue as QoS 1. */
class EdgeAedes extends Aedes {
  override publish(packet: MarkedPacket, client: unknown, done?: unknown): void {
    if (packet[DROPPED]) {
      const cb = typeof client === 'function' ? client : done;
      if (typeof cb === 'function') cb();
      return;
    }
    if (packet[ACKED_BY_QUEUE]) packet.qos = 1;
    (super.publish as (...args: unknown[]) => void)(packet, client, done);
  }
}

export async function startBroker(opts: BrokerOptions): Promise<EmbeddedBroker> {
  // mqtt-packet otherwise pre-builds a Buffer for each of the 65,536 two-byte numbers on its first
  // packet: 6 MB of heap, and 65,536 objects every full GC has to mark, to save a 2-byte allocation.
  mqttPacket.writeToStream.cacheNumbers = false;
  const { limits, logger } = opts;
  const stats = newStats();
  mkdirSync(opts.persistenceDir, { recursive: true });
  const persistence = new LevelPersistence({
    path: opts.persistenceDir,
    maxQueuedPerClient: limits.maxQueuedPerClient,
    onQueueFull: () => stats.queueDropped++,
    onWriteError: (err) => logger.error({ err: err.message }, 'session store write failed'),
    volatileRetainedPrefixes: ['$SYS/'],
    sealer: opts.persistenceSealer,
  });
  const loginGuard =
    opts.loginGuard ??
    new LoginGuard(
      { ...opts.loginThrottle, maxPendingLogins: limits.maxPendingLogins, maxPendingPerAddress: limits.maxPendingPerAddress },
      logger,
    );
  const authorizePublish = publishEntry({ maxInflightPerClient: limits.maxInflightPerClient, onPublish: opts.onPublish }, stats, logger);
  const authorizers = makeAuthorizers(stats, logger);
  const aedes: Aedes = new EdgeAedes({
    persistence,
    connectTimeout: limits.connectTimeoutMs,
    drainTimeout: limits.drainTimeoutMs,
    maxInflightInbound: limits.maxInflightPerClient,
    maxTopicLevels: limits.maxTopicLevels,
    authenticate: makeAuthenticate(
      () => aedes,
      {
        allowAnonymous: opts.allowAnonymous,
        useIdentityAsUsername: opts.mqtts?.useIdentityAsUsername ?? false,
        certificateOnlyUsers: opts.mqtts?.certificateOnlyUsers ?? false,
        maxClients: limits.maxClients,
        acl: opts.acl,
        users: opts.users,
        owners: {
          sessionOwner: (id) => persistence.sessionOwner(id),
          setSessionOwner: (id, owner) => persistence.setSessionOwner(id, owner),
          endIfStale: (id) => sessions.endIfStale(id),
        },
        guard: loginGuard,
      },
      stats,
      logger,
    ),
    authorizePublish,
    ...authorizers,
  });
  await aedes.listen();
  const sessions = new PersistentSessions(aedes, persistence, opts.users, opts.persistentSessionExpiryMs, logger);
  aedes.on('clientError', (client, err) => logger.debug({ clientId: client.id, err: err.message }, 'client error'));
  aedes.on('connectionError', (client, err) =>
    logger.debug({ remote: connectionInfo(client.conn).remoteAddress, err: err.message }, 'connection error'),
  );

  function handle(conn: Duplex): void {
    // Nothing unauthenticated grows without bound: past the caps a connection is closed at once.
    if (!loginGuard.admit(conn, connectionInfo(conn).remoteAddress)) {
      stats.connectionsRefused++;
      conn.destroy();
      return;
    }
    const client = aedes.handle(conn) as Client & ClientInternals;
    guard(client, conn);
  }

  /** Put the raw-packet checks in front of Aedes' parser for this connection. */
  function guard(client: ClientInternals, conn: Duplex): void {
    const check = new PacketGuard(limits);
    const parser = client._parser;
    const parse = parser.parse.bind(parser);
    parser.parse = (buf: Buffer) => {
      const violation = check.feed(buf);
      if (!violation) return parse(buf);
      if (violation.okBytes > 0) parse(buf.subarray(0, violation.okBytes));
      stats.malformedPackets++;
      logger.warn({ remote: connectionInfo(conn).remoteAddress, reason: violation.reason }, 'protocol violation, closing connection');
      if (violation.connackCode !== undefined) conn.end(Buffer.from([0x20, 0x02, 0x00, violation.connackCode]));
      else conn.destroy();
      return 0;
    };
  }

  const listeners: Listener[] = [];
  const maxConnections = limits.maxClients + 64;
  try {
    if (opts.mqtt) listeners.push(await listenTcp('mqtt', opts.mqtt, maxConnections, handle));
    if (opts.mqtts) listeners.push(await listenTls('mqtts', opts.mqtts, maxConnections, handle));
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    await persistence.destroy();
    throw err;
  }
  const currentStats = () => ({ ...stats, clientsConnected: aedes.connectedClients });
  const stopSys = startSysTopics(aedes, currentStats, opts.sysIntervalSec, opts.version);
  const stopWatching = watchUsers(aedes, opts.users, opts.acl, logger);
  const ended = () => {
    stopSys();
    stopWatching();
    sessions.close();
  };

  return {
    listeners: Object.fromEntries(listeners.map((l) => [l.name, l.address])),
    handleStream(stream, listener, remoteAddress) {
      setConnectionInfo(stream, { listener, remoteAddress });
      handle(stream);
    },
    stats: currentStats,
    publish(topic, payload, retain) {
      aedes.publish({ cmd: 'publish', topic, payload: Buffer.from(payload), qos: 0, retain, dup: false }, () => {});
    },
    sessions,
    async close() {
      ended();
      await Promise.all(listeners.map((l) => l.close()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await persistence.destroy();
    },
  };
}
