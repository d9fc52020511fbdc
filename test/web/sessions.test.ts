// Login sessions: refresh tokens rotate, a replaced one used again ends the session (after a short
// grace for two tabs), and logout ends a session by its refresh token or an expired access token.
import { describe, expect, it } from 'vitest';
import { Sessions, TokenRefused } from '../../agent/serve/web/auth/sessions.js';

function clocked() {
  const clock = { now: 1_000_000 };
  return { clock, sessions: new Sessions({ tokenMs: 60_000, refreshMs: 7 * 86_400_000 }, () => clock.now) };
}

describe('login sessions', () => {
  it('rotates refresh tokens; a replaced one used after the grace ends the session, the thief and the owner alike', () => {
    const { clock, sessions } = clocked();
    const first = sessions.open('vera', 'fp');
    const second = sessions.refresh(first.refreshToken);
    expect(second.refreshToken).toBeDefined();
    const third = sessions.refresh(second.refreshToken!);
    expect(sessions.verify(third.token).username).toBe('vera');
    clock.now += 11_000;
    expect(() => sessions.refresh(second.refreshToken!)).toThrow(/used before: the session is ended/);
    expect(() => sessions.refresh(third.refreshToken!)).toThrow(TokenRefused);
    expect(() => sessions.verify(third.token)).toThrow(/session has ended/);
  });

  it('takes a token replaced in the last 10 s once more without rotating (two tabs); an unknown secret is refused without ending anything', () => {
    const { clock, sessions } = clocked();
    const first = sessions.open('vera', 'fp');
    const second = sessions.refresh(first.refreshToken);
    clock.now += 5_000;
    const twin = sessions.refresh(first.refreshToken);
    expect(twin.refreshToken).toBeUndefined();
    expect(sessions.verify(twin.token).username).toBe('vera');
    const [id] = first.refreshToken.split('.');
    expect(() => sessions.refresh(`${id}.forged`)).toThrow(/not valid/);
    expect(sessions.refresh(second.refreshToken!).refreshToken).toBeDefined(); // the session lives on
  });

  it('logout ends a session by its refresh token, or by an access token past its expiry; not by a forged one', () => {
    const { clock, sessions } = clocked();
    const a = sessions.open('vera', 'fp');
    const b = sessions.open('vera', 'fp');
    clock.now += 120_000; // both access tokens expired
    expect(() => sessions.verify(a.token)).toThrow(/expired/);
    expect(sessions.end({ access: `${a.token.slice(0, -4)}AAAA` })).toBe(false);
    expect(sessions.end({ access: a.token })).toBe(true);
    expect(() => sessions.refresh(a.refreshToken)).toThrow(TokenRefused);
    expect(sessions.end({ refresh: b.refreshToken })).toBe(true);
    expect(() => sessions.refresh(b.refreshToken)).toThrow(TokenRefused);
    const c = sessions.open('vera', 'fp'); // control: a session nobody ended
    expect(sessions.refresh(c.refreshToken).username).toBe('vera');
  });
});
