// Chaos: random and mutated payloads against strict schemas. Each reading is either stored, and then
// fits its schema, or dead-lettered with a reason; none is both, none is lost, and a sensor sending
// good readings beside them has every one stored.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { chaos, record, scale, type Chaos } from './chaos.js';

const READINGS = scale(3000, 30_000);

const schemas = [
  {
    name: 'climate',
    topics: ['chaos/climate/+'],
    mode: 'strict',
    timestamp: 'ts',
    fields: {
      ts: { type: 'timestamp', required: true },
      t: { type: 'float', min: -40, max: 85, required: true },
      rh: { type: 'float', min: 0, max: 100 },
      room: { type: 'string', tag: true, pattern: '^[a-z]+$' },
      state: { type: 'string', enum: ['ok', 'fault'] },
      n: 'integer',
    },
  },
  { name: 'door', topics: ['chaos/door/+'], mode: 'strict', fields: { open: { type: 'boolean', required: true }, count: 'integer' } },
];

/** A value of any JSON type, nested a little. */
function anyValue(r: Chaos, depth = 0): unknown {
  switch (r.int(0, depth > 2 ? 5 : 7)) {
    case 0:
      return null;
    case 1:
      return r.next() < 0.5;
    case 2:
      return r.pick([0, -1, 1e308, -41, 86, 50.5, 2 ** 53 + 1, 1.5]);
    case 3:
      return r.pick(['', 'ok', 'fault', 'Kitchen', 'kitchen', '2026-12-03T10:00:00Z', 'x'.repeat(r.int(0, 300)), '\u0000']);
    case 4:
      return Math.round(r.next() * 2e9);
    case 5:
      return new Date(Date.now() - r.int(0, 1e9)).toISOString();
    case 6:
      return Array.from({ length: r.int(0, 4) }, () => anyValue(r, depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: r.int(0, 5) }, () => [r.pick(['t', 'rh', 'ts', 'open', 'x', 'room']), anyValue(r, depth + 1)]),
      );
  }
}

/** A good climate reading, then maybe a field changed, dropped or added, or its text cut or garbled. */
function payload(r: Chaos): Buffer {
  const good: Record<string, unknown> = {
    ts: new Date().toISOString(),
    t: 20 + r.next() * 5,
    rh: r.next() * 100,
    room: 'hall',
    n: r.int(0, 100),
  };
  const kind = r.int(0, 6);
  if (kind === 1) good[r.pick(Object.keys(good))] = anyValue(r);
  if (kind === 2) delete good[r.pick(Object.keys(good))];
  if (kind === 3) good[r.pick(['extra', 'state', 'T'])] = anyValue(r);
  const text = kind === 4 ? JSON.stringify(anyValue(r)) : JSON.stringify(good);
  if (kind === 5) return Buffer.from(text.slice(0, r.int(0, text.length)));
  if (kind === 6) return Buffer.from(Array.from({ length: r.int(0, 64) }, () => r.int(0, 255)));
  return Buffer.from(text);
}

describe('chaos: random payloads against strict schemas', () => {
  let agent: InProcessAgent;
  beforeAll(async () => {
    agent = await startAgent({ ingest: { schemas, unmatched: 'reject', deadLetters: { maxCount: 100_000 } } });
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it(
    `stores or dead-letters each of ${READINGS.toLocaleString('en-US')} readings, never both, never neither`,
    async () => {
      const r = chaos('payloads');
      const started = performance.now();
      const fuzzer = await connect(agent.mqttUrl, { clientId: 'fuzzer' });
      const sensor = await connect(agent.mqttUrl, { clientId: 'good-sensor' });
      let good = 0;
      for (let i = 0; i < READINGS; i++) {
        const topic = r.pick(['chaos/climate/a', 'chaos/climate/b', 'chaos/door/front', 'chaos/unknown']);
        const body = topic.includes('door')
          ? Buffer.from(JSON.stringify(r.next() < 0.5 ? { open: r.next() < 0.5 } : anyValue(r)))
          : payload(r);
        await fuzzer.publishAsync(topic, body, { qos: 1 });
        if (i % 10 === 0) {
          await sensor.publishAsync('chaos/climate/good', JSON.stringify({ ts: new Date().toISOString(), t: 21, room: 'lab' }), { qos: 1 });
          good++;
        }
      }
      await Promise.all([fuzzer.endAsync(), sensor.endAsync()]);
      expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);

      const stats = agent.runtime.ingestStats;
      const stored = await agent.runtime.store!.target.query({ topic: 'chaos/#', limit: 1_000_000 });
      const letters = await agent.runtime.log.deadLetters(100_000);
      const storedGood = stored.filter((x) => x.topic === 'chaos/climate/good').length;
      const misfits = stored.filter((x) => {
        const p = x.payload as Record<string, unknown>;
        if (x.topic.startsWith('chaos/door/'))
          return typeof p.open !== 'boolean' || Object.keys(p).some((k) => !['open', 'count'].includes(k));
        return (
          typeof p.t !== 'number' ||
          p.t < -40 ||
          p.t > 85 ||
          Object.keys(p).some((k) => !['ts', 't', 'rh', 'room', 'state', 'n'].includes(k))
        );
      });
      const found = {
        'readings sent': READINGS + good,
        stored: stored.length,
        'dead-lettered': letters.length,
        'dead letters without a reason': letters.filter((d) => d.reasons.length === 0 || !d.reasons[0].message).length,
        'stored readings that break their schema': misfits.length,
        "the good sensor's readings stored": `${storedGood} of ${good}`,
        // what to look at when the sum is off
        'seqs stored twice': stored.length - new Set(stored.map((x) => x.seq)).size,
        'dead letters listed twice': letters.length - new Set(letters.map((d) => d.id)).size,
        'dead letters from a consumer (the store, the rollups)': letters
          .filter((d) => d.consumer)
          .map((d) => `${d.consumer}: ${d.reasons[0]?.message}`)
          .join('; '),
        "ingest's count (accepted + dead-lettered)": stats.accepted + stats.deadLettered,
      };
      expect(stored.length + letters.length, `a reading lost or counted twice ${r.replay} ${JSON.stringify(found)}`).toBe(READINGS + good);
      expect(stats.accepted + stats.deadLettered).toBe(READINGS + good);
      expect(found['dead letters without a reason'], r.replay).toBe(0);
      expect(
        misfits.map((m) => m.payload),
        `stored readings that break their schema ${r.replay}`,
      ).toEqual([]);
      expect(storedGood, r.replay).toBe(good);
      // The controls: both outcomes happened often.
      expect(stored.length).toBeGreaterThan(READINGS / 10);
      expect(letters.length).toBeGreaterThan(READINGS / 10);
      record({
        scenario: 'payloads',
        title: 'random and mutated payloads (wrong types, ranges, missing and extra fields, cut and garbled JSON) against strict schemas',
        seed: r.seed,
        full: READINGS > 3000,
        seconds: Math.round((performance.now() - started) / 1000),
        did: { readings: READINGS, schemas: schemas.length, 'unmatched topics': 'rejected' },
        found,
      });
    },
    scale(120_000, 900_000),
  );
});
