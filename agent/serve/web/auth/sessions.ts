// Login sessions: a short-lived signed access token (JWT, HS256) and a refresh token per session.
// Sessions live in memory: logout ends one at once (its access tokens with it), and a restart ends
// them all; so the signing key is made at start and never written anywhere. A refresh token is
// good for one refresh: each gives the next, and the use of one already replaced ends the session
// (someone else holds a copy), as OAuth 2.0's refresh token rotation does.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createSigner, createVerifier } from 'fast-jwt';

export interface Session {
  id: string;
  username: string;
  /** The user's password fingerprint at login: a new password ends the session. */
  fingerprint: string;
  expiresAt: number;
}

interface Claims {
  sub: string;
  sid: string;
}

export interface IssuedTokens {
  token: string;
  /** Access token expiry, ms since the epoch. */
  expiresAt: number;
  refreshToken: string;
  refreshExpiresAt: number;
}

/** Why a token was refused: the caller tells an expired one from a forged one. */
export class TokenRefused extends Error {}

const sha256 = (s: string) => createHash('sha256').update(s).digest();

/**
 * A refresh token replaced this recently is not taken for theft: two tabs of the page refreshing at
 * once. It gets an access token, and no new refresh token (the other tab's cookie holds it).
 */
const REUSE_GRACE_MS = 10_000;

interface Held extends Session {
  refreshHash: Buffer;
  previousHash?: Buffer;
  rotatedAt: number;
}

const same = (a: Buffer | undefined, b: Buffer) => a !== undefined && timingSafeEqual(a, b);

export class Sessions {
  private readonly sessions = new Map<string, Held>();

  private readonly key = randomBytes(32);

  constructor(
    private readonly ttl: { tokenMs: number; refreshMs: number },
    private readonly now: () => number = Date.now,
  ) {}

  open(username: string, fingerprint: string): IssuedTokens {
    this.forgetExpired();
    const id = randomBytes(12).toString('base64url');
    const refreshToken = newRefreshToken(id);
    const refreshExpiresAt = this.now() + this.ttl.refreshMs;
    this.sessions.set(id, {
      id,
      username,
      fingerprint,
      expiresAt: refreshExpiresAt,
      refreshHash: sha256(refreshToken),
      rotatedAt: this.now(),
    });
    return { ...this.accessToken(username, id), refreshToken, refreshExpiresAt };
  }

  /**
   * A new access token and the next refresh token for the session this refresh token belongs to.
   * A token already replaced ends the session, unless it was replaced just now (then no new
   * refresh token: `refreshToken` is undefined).
   */
  refresh(refreshToken: string): Omit<IssuedTokens, 'refreshToken'> & { refreshToken?: string; username: string; fingerprint: string } {
    const session = this.sessions.get(refreshToken.split('.')[0]);
    const presented = sha256(refreshToken);
    if (!session || session.expiresAt <= this.now())
      throw new TokenRefused('the refresh token is not valid (expired, logged out, or unknown)');
    const who = { refreshExpiresAt: session.expiresAt, username: session.username, fingerprint: session.fingerprint };
    if (same(session.previousHash, presented) && this.now() - session.rotatedAt <= REUSE_GRACE_MS)
      return { ...this.accessToken(session.username, session.id), ...who };
    if (same(session.previousHash, presented)) {
      this.sessions.delete(session.id);
      throw new TokenRefused('this refresh token was used before: the session is ended (log in again)');
    }
    if (!same(session.refreshHash, presented)) throw new TokenRefused('the refresh token is not valid (expired, logged out, or unknown)');
    const next = newRefreshToken(session.id);
    Object.assign(session, { previousHash: session.refreshHash, refreshHash: sha256(next), rotatedAt: this.now() });
    return { ...this.accessToken(session.username, session.id), refreshToken: next, ...who };
  }

  close(sessionId: string): boolean {
    return this.sessions.delete(sessionId);
  }

  /** End the session a refresh token, or an access token even if expired, belongs to (logout). */
  end(token: { refresh?: string; access?: string }): boolean {
    let ended = false;
    if (token.refresh) {
      const session = this.sessions.get(token.refresh.split('.')[0]);
      const presented = sha256(token.refresh);
      if (session && (same(session.refreshHash, presented) || same(session.previousHash, presented)))
        ended = this.sessions.delete(session.id);
    }
    if (token.access) {
      try {
        const { sid } = createVerifier({ key: this.key, algorithms: ['HS256'], ignoreExpiration: true, requiredClaims: ['sub', 'sid'] })(
          token.access,
        ) as Claims;
        ended = this.sessions.delete(sid) || ended;
      } catch {
        // not a token of ours: nothing to end
      }
    }
    return ended;
  }

  /** The user an access token speaks for, if it is valid and its session is open. */
  verify(token: string): { username: string; sessionId: string; fingerprint: string } {
    let claims: Claims;
    try {
      claims = createVerifier({ key: this.key, algorithms: ['HS256'], clockTimestamp: this.now(), requiredClaims: ['sub', 'sid', 'exp'] })(
        token,
      ) as Claims;
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new TokenRefused(code === 'FAST_JWT_EXPIRED' ? 'the token has expired' : 'the token is not valid');
    }
    const session = this.sessions.get(claims.sid);
    if (!session || session.username !== claims.sub || session.expiresAt <= this.now()) throw new TokenRefused('the session has ended');
    return { username: claims.sub, sessionId: claims.sid, fingerprint: session.fingerprint };
  }

  private accessToken(username: string, sid: string): { token: string; expiresAt: number } {
    const now = this.now();
    const token = createSigner({ key: this.key, algorithm: 'HS256', expiresIn: this.ttl.tokenMs, clockTimestamp: now })({
      sub: username,
      sid,
    });
    return { token, expiresAt: Math.floor(now / 1000) * 1000 + this.ttl.tokenMs };
  }

  private forgetExpired(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }
}

function newRefreshToken(sessionId: string): string {
  return `${sessionId}.${randomBytes(32).toString('base64url')}`;
}
