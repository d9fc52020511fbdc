// Persistent sessions (clean=false) are listed, ended on request, and end by themselves when their
// client stays away longer than the expiry (Mosquitto's persistent_client_expiration) or their user
// is removed, so a client id claimed by someone once is not held against its owner for ever.
import type { Aedes, Client } from 'aedes';
import type { Users } from './auth.js';
import type { Logger } from './logger.js';
import type { LevelPersistence, StoredSession } from './persistence/level.js';

export interface SessionInfo extends StoredSession {
  connected: boolean;
  /** When it ends if its client stays away (ISO 8601); none while connected. */
  expiresAt?: string;
}

export interface SessionControl {
  list(): SessionInfo[];
  /** End a session (its client, if connected, is disconnected first); false if there is none. */
  end(clientId: string): Promise<boolean>;
}

export class PersistentSessions implements SessionControl {
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly aedes: Aedes,
    private readonly store: LevelPersistence,
    private readonly users: Users,
    private readonly expiryMs: number,
    private readonly logger: Logger,
  ) {
    aedes.on('clientDisconnect', (client) => {
      if (!client.clean) store.seen(client.id);
    });
    this.timer = setInterval(() => void this.sweep(), Math.min(10_000, Math.max(500, expiryMs / 4)));
    this.timer.unref();
  }

  list(): SessionInfo[] {
    return this.store.persistentSessions().map((s) => {
      const connected = this.client(s.clientId) !== undefined;
      return { ...s, connected, ...(connected ? {} : { expiresAt: new Date(s.seenAt + this.expiryMs).toISOString() }) };
    });
  }

  async end(clientId: string, why = 'ended by an operator'): Promise<boolean> {
    if (this.store.sessionOwner(clientId) === undefined) return false;
    const client = this.client(clientId);
    if (client) await new Promise<void>((resolve) => client.close(() => resolve()));
    this.store.endSession(clientId);
    this.logger.info({ clientId, why }, 'persistent session ended');
    return true;
  }

  /** Called as a client logs in with this id: a session past its expiry, or of a removed user, is ended first. */
  async endIfStale(clientId: string): Promise<void> {
    const s = this.store.persistentSessions().find((x) => x.clientId === clientId);
    const why = s && (await this.staleness(s));
    if (why) await this.end(clientId, why);
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** End the sessions that expired, and those whose user is gone. */
  private async sweep(): Promise<void> {
    for (const s of this.store.persistentSessions()) {
      const why = await this.staleness(s);
      if (why) await this.end(s.clientId, why);
    }
  }

  /** Why a session should end now, if it should. */
  private async staleness(s: StoredSession): Promise<string | undefined> {
    if (!this.client(s.clientId) && Date.now() - s.seenAt > this.expiryMs) return 'expired';
    const isUser = s.owner !== '' && !s.owner.startsWith('cert:');
    if (isUser && (await this.users.roles(s.owner)) === null) return `user ${s.owner} removed`;
    return undefined;
  }

  private client(clientId: string): Client | undefined {
    return (this.aedes as Aedes & { clients: Record<string, Client | undefined> }).clients[clientId];
  }
}
