// Topic filters as MQTT 3.1.1 section 4.7 matches them, checked against the plain split('/')
// reading of the rules on random filters and topics.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topicMatches } from '../mqtt-topic/topic.js';

/** The rules read directly: level by level over split('/'). */
function reference(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

describe('topicMatches', () => {
  it("matches the specification's examples", () => {
    const cases: [string, string, boolean][] = [
      ['sport/tennis/player1/#', 'sport/tennis/player1', true],
      ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
      ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
      ['sport/#', 'sport', true],
      ['sport/tennis/+', 'sport/tennis/player1', true],
      ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
      ['sport/+', 'sport', false],
      ['sport/+', 'sport/', true],
      ['+/+', '/finance', true],
      ['/+', '/finance', true],
      ['+', '/finance', false],
      ['#', '$SYS/broker', false],
      ['+/monitor/Clients', '$SYS/monitor/Clients', false],
      ['$SYS/#', '$SYS/broker', true],
      ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
      ['a/b', 'a/b', true],
      ['a/b', 'a/bc', false],
      ['a/bc', 'a/b', false],
      ['a/b', 'a/b/c', false],
      ['', '', true],
    ];
    for (const [filter, topic, expected] of cases) expect([filter, topic, topicMatches(filter, topic)]).toEqual([filter, topic, expected]);
  });

  it('agrees with the rules read level by level on random filters and topics', () => {
    const level = fc.constantFrom('', 'a', 'b', 'ab', '$x', '+', '#');
    const path = fc.array(level, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('/'));
    fc.assert(
      fc.property(path, path, (filter, topic) => topicMatches(filter, topic) === reference(filter, topic)),
      { numRuns: 20_000 },
    );
  });
});
