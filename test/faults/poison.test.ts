// Payloads nobody expected: each is refused where it is found, dead-lettered with its reason, and
// the readings around it go on (the positive control in each test).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { breaksLimits } from '../../agent/ingest/json-limits.js';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

const agents: InProcessAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) {
    await a.stop();
    cleanup(a.dir);
  }
});

async function agentWith(extra: Record<string, unknown> = {}) {
  const agent = await startAgent({ store: { gatherMs: 50 }, ...extra });
  agents.push(agent);
  return agent;
}

describe('JSON limits before parsing', () => {
  const limits = { maxDepth: 3, maxStringBytes: 8, maxKeys: 2 };

  it('measures depth, string length and keys, skipping brackets inside strings', () => {
    expect(breaksLimits('[[[1]]]', limits)).toBeUndefined();
    expect(breaksLimits('[[[[1]]]]', limits)).toBe('nested deeper than 3 levels');
    expect(breaksLimits('["[[[[[[", {"a": 1}]', limits)).toBeUndefined();
    expect(breaksLimits('"123456789"', limits)).toBe('a string at offset 0 is longer than 8 bytes');
    expect(breaksLimits('"\\"\\"\\"\\"\\""', limits)).toBe('a string at offset 0 is longer than 8 bytes'); // escapes count as sent
    expect(breaksLimits('"ééé"', { ...limits, maxStringBytes: 6 })).toBeUndefined();
    expect(breaksLimits('"éééé"', { ...limits, maxStringBytes: 6 })).toMatch(/longer than 6 bytes/);
    expect(breaksLimits('{"a":1,"b":{"c":1,"d":2}}', limits)).toBeUndefined();
    expect(breaksLimits('{"a":1,"b":2,"c":3}', limits)).toBe('an object at depth 1 has more than 2 keys');
    // Values that are strings are not keys; arrays have no keys.
    expect(breaksLimits('{"a":"x","b":["y","z","w"]}', limits)).toBeUndefined();
  });

  it('scans a payload nested 1,000,000 deep without overflowing the stack', () => {
    expect(breaksLimits(nested(1_000_000), { ...limits, maxDepth: 64 })).toBe('nested deeper than 64 levels');
  });
});

describe('poison payloads through the real broker', () => {
  it('dead-letters payloads past the limits with their reason and PUBACK; the connection stays open and the rest is stored', async () => {
    const agent = await agentWith();
    const client = await connect(agent.mqttUrl, { clientId: 'poison' });
    const poison = [
      nested(2_000),
      nested(100_000),
      JSON.stringify({ s: 'x'.repeat(70_000) }),
      JSON.stringify(Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [`k${i}`, i]))),
    ];
    await client.publishAsync('t/ok', '{"n":1}', { qos: 1 });
    for (const p of poison) await client.publishAsync('t/poison', p, { qos: 1 }); // each gets its PUBACK
    await client.publishAsync('t/ok', '{"n":2}', { qos: 1 });
    expect(client.connected).toBe(true);
    const letters = await agent.runtime.log.deadLetters(10);
    expect(letters.map((d) => d.reasons[0].message).reverse()).toEqual([
      'payload refused: nested deeper than 64 levels',
      'payload refused: nested deeper than 64 levels',
      'payload refused: a string at offset 5 is longer than 65536 bytes',
      'payload refused: an object at depth 1 has more than 1000 keys',
    ]);
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
    expect((await agent.runtime.store!.target.query({})).map((r) => r.payload)).toEqual([{ n: 1 }, { n: 2 }]);
    await client.endAsync();
  });

  it('isolates a reading the SQLite store refuses (nested past SQLite JSON limit): it is dead-lettered as the store consumer, the batch around it is stored', async () => {
    const agent = await agentWith({ ingest: { limits: { maxDepth: 5000 } }, store: { gatherMs: 300 } });
    const client = await connect(agent.mqttUrl, { clientId: 'deep' });
    // One batch: 40 good readings with the poison in the middle.
    await Promise.all(
      Array.from({ length: 41 }, (_, i) => client.publishAsync('t/x', i === 20 ? nested(2_000) : JSON.stringify({ i }), { qos: 1 })),
    );
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
    const stored = await agent.runtime.store!.target.query({});
    expect(stored.map((r) => (r.payload as { i: number }).i)).toEqual([
      ...Array(20).keys(),
      ...Array.from({ length: 20 }, (_, i) => i + 21),
    ]);
    const [letter] = await agent.runtime.log.deadLetters(1);
    expect(letter).toMatchObject({ consumer: 'store', topic: 't/x', clientId: 'deep', seq: 21 });
    expect(letter.reasons[0].message).toMatch(/^SQLITE_CONSTRAINT_CHECK/);
    expect(agent.runtime.store?.status()).toMatchObject({ name: 'store', state: 'ok', lagRecords: 0, deadLettered: 1 });
    // Later readings are stored too (the consumer did not wedge), also after a restart.
    await client.publishAsync('t/x', '{"i":99}', { qos: 1 });
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
    expect((await agent.runtime.store!.target.query({ afterSeq: 41 })).map((r) => r.payload)).toEqual([{ i: 99 }]);
    await client.endAsync();
  });

  it('leaves a store the Pi OS tools read: sqlite3 3.40 and Python select the view and json_extract payloads', async () => {
    const agent = await agentWith();
    const client = await connect(agent.mqttUrl, { clientId: 'reader' });
    await client.publishAsync('sensors/a', '{"temperature":21.5,"ok":true}', { qos: 1 });
    await client.publishAsync('sensors/b', '{"temperature":-3}', { qos: 1 });
    expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
    await client.endAsync();
    const db = join(agent.dir, 'data', 'store.db');
    const version = execFileSync('sqlite3', ['--version']).toString();
    const rows = execFileSync('sqlite3', [
      '-json',
      db,
      "select topic, payload, json_extract(payload, '$.temperature') as t from readings order by seq",
    ]).toString();
    expect({ version: version.slice(0, 4), rows: JSON.parse(rows) }).toEqual({
      version: expect.stringMatching(/^3\.\d/),
      rows: [
        { topic: 'sensors/a', payload: '{"temperature":21.5,"ok":true}', t: 21.5 },
        { topic: 'sensors/b', payload: '{"temperature":-3}', t: -3 },
      ],
    });
    const python = execFileSync('python3', [
      '-c',
      // The README's way: Python's module defines sqlar_uncompress (the sqlite3 shell has its own).
      `import sqlite3, json, zlib; c = sqlite3.connect(${JSON.stringify(db)}); c.create_function('sqlar_uncompress', 2, lambda data, size: data if len(data) == size else zlib.decompress(data)); print(json.dumps(c.execute("select topic, json_extract(payload, '$.temperature') from readings order by seq").fetchall()))`,
    ]).toString();
    expect(JSON.parse(python)).toEqual([
      ['sensors/a', 21.5],
      ['sensors/b', -3],
    ]);
  });
});
