// Login sessions: a short-lived signed access token (JWT, HS256) and a refresh token per session.
// Sessions live in memory: logout ends one at once (its access tokens with it), and a restart ends
// them all; so the signing key is made at start and never written anywhere.
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

export class Sessions {
  private readonly sessions = new Map<string, Session & { refreshHash: Buffer }>();

  private readonly key = randomBytes(32);

  constructor(
    private readonly ttl: { tokenMs: number; refreshMs: number },
    private readonly now: () => number = Date.now,
  ) {}

  open(username: string, fingerprint: string): IssuedTokens {
    this.forgetExpired();
    const id = randomBytes(12).toString('base64url');
    const refreshToken = `${id}.${randomBytes(32).toString('base64url')}`;
    const refreshExpiresAt = this.now() + this.ttl.refreshMs;
    this.sessions.set(id, { id, username, fingerprint, expiresAt: refreshExpiresAt, refreshHash: sha256(refreshToken) });
    return { ...this.accessToken(username, id), refreshToken, refreshExpiresAt };
  }

  /** A new access token for the session the refresh token belongs to. */
  refresh(refreshToken: string): IssuedTokens & { username: string; fingerprint: string } {
    const session = this.sessions.get(refreshToken.split('.')[0]);
    if (!session || session.expiresAt <= this.now() || !timingSafeEqual(session.refreshHash, sha256(refreshToken))) throw new TokenRefused('the refresh token is not valid (expired, logged out, or unknown)');
    return { ...this.accessToken(session.username, session.id), refreshToken, refreshExpiresAt: session.expiresAt, username: session.username, fingerprint: session.fingerprint };
  }

  /** The user an access token speaks for, if it is valid and its session is open. */
  verify(token: string): { username: string; sessionId: string; fingerprint: string } {
    let claims: Claims;
    try {
      claims = createVerifier({ key: this.key, algorithms: ['HS256'], clockTimestamp: this.now(), requiredClaims: ['sub', 'sid', 'exp'] })(token) as Claims;
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new TokenRefused(code === 'FAST_JWT_EXPIRED' ? 'the token has expired' : 'the token is not valid');
    }
    const session = this.sessions.get(claims.sid);
    if (!session || session.username !== claims.sub || session.expiresAt <= this.now()) throw new TokenRefused('the session has ended');
    return { username: claims.sub, sessionId: claims.sid, fingerprint: session.fingerprint };
  }

  close(sessionId: string): boolean {
    return this.sessions.delete(sessionId);
  }

  private accessToken(username: string, sid: string): { token: string; expiresAt: number } {
    const now = this.now();
    const token = createSigner({ key: this.key, algorithm: 'HS256', expiresIn: this.ttl.tokenMs, clockTimestamp: now })({ sub: username, sid });
    return { token, expiresAt: Math.floor(now / 1000) * 1000 + this.ttl.tokenMs };
  }

  private forgetExpired(): void {
    const now = this.now();
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }
}
