// Credentials inside URLs, masked wherever config or an error is shown or logged.
import { describe, expect, it } from 'vitest';
import { redactUrl, redactUrlsIn } from '../agent/config/redact-url.js';

describe('redactUrl', () => {
  it('masks the password and every query value; keeps the user, host, port and path', () => {
    expect(redactUrl('postgres://edge:s3cr%40t@db:5432/fleet?sslmode=require')).toBe('postgres://edge:***@db:5432/fleet?sslmode=***');
    expect(redactUrl('https://h.example/hook?token=abc&token=def#frag')).toBe('https://h.example/hook?token=***');
    expect(redactUrl('mqtt://broker:1883')).toBe('mqtt://broker:1883');
    expect(redactUrl('not a url: pass=1')).toBe('not a url: pass=1');
  });

  it('masks URLs it cannot parse as well as it can', () => {
    expect(redactUrl('http://u:p@[bad/x?k=v')).toBe('http://u:***@[bad/x?k=***');
  });

  it('masks every URL inside a message', () => {
    expect(redactUrlsIn('Request cannot be constructed from a URL that includes credentials: http://a:b@h/x?t=1 (and mqtt://c:d@m)')).toBe(
      'Request cannot be constructed from a URL that includes credentials: http://a:***@h/x?t=*** (and mqtt://c:***@m)',
    );
  });
});
