import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, startAgent, type InProcessAgent } from '../../../../test/helpers/agent.js';
import { connect } from '../../../../test/helpers/mqtt.js';
import { startInfluxd, startVictoriaMetrics, until } from '../../../../test/helpers/servers.js';
import { statusOf, untilStatus } from '../../../../test/helpers/sync.js';

const envSchema = {
  name: 'env',
  measurement: 'environment',
  topics: ['sensors/+/env'],
  timestamp: 'ts',
  fields: { ts: 'timestamp', temperature: 'float', count: 'integer', ok: 'boolean', note: 'string', site: { type: 'string', tag: true } },
};

type Series = { name: string; columns: string[]; values: unknown[][] }[];
async function series(query: (q: string) => Promise<unknown>, q: string): Promise<Series> {
  const body = (await query(q)) as { results: { series?: Series; error?: string }[] };
  if (body.results[0].error) throw new Error(body.results[0].error);
  return body.results[0].series ?? [];
}

async function publishAll(agent: InProcessAgent, messages: [string, unknown][]): Promise<void> {
  const client = await connect(agent.mqttUrl, { clientId: 'pi-5' });
  for (const [topic, payload] of messages)
    await client.publishAsync(topic, typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });
  await client.endAsync();
}

const drained = (agent: InProcessAgent, name: string) => untilStatus(agent, name, (s) => s.lagRecords === 0 && s.sent.records > 0);

describe('InfluxDB 1.x sink (v1 API)', () => {
  let influx: Awaited<ReturnType<typeof startInfluxd>>;
  beforeAll(async () => {
    influx = await startInfluxd();
    await influx.createDatabase('telemetry');
  });
  afterAll(async () => {
    await influx.stop();
  });

  it('writes points built from the schema: measurement, tags, typed fields, device time in ms, gzip bodies', async () => {
    const agent = await startAgent({
      ingest: { schemas: [envSchema] },
      sinks: [{ name: 'metrics', type: 'influx', url: influx.url, version: 1, database: 'telemetry', batch: { maxAgeMs: 50 } }],
    });
    try {
      const base = 1764496800000;
      await publishAll(agent, [
        ...Array.from(
          { length: 30 },
          (_, i) =>
            [
              'sensors/pi-5/env',
              { ts: base + i, temperature: 20 + i / 4, count: i, ok: i % 2 === 0, note: `n "${i}"`, site: 'north, 2' },
            ] as [string, unknown],
        ),
        ['misc/raw', { level: 3 }],
      ]);
      const s = await drained(agent, 'metrics');
      expect(s.sent.bytesOut).toBeLessThan(s.sent.bytesIn); // gzip
      const [env] = await series(influx.query, 'SELECT * FROM "telemetry".."environment" ORDER BY time');
      expect(env.values).toHaveLength(30);
      const row = Object.fromEntries(env.columns.map((c, i) => [c, env.values[3][i]]));
      expect(row).toEqual({
        time: base + 3,
        agent: 'test-agent',
        topic: 'sensors/pi-5/env',
        site: 'north, 2',
        temperature: 20.75,
        count: 3,
        ok: false,
        note: 'n "3"',
      });
      const [fields] = await series(influx.query, 'SHOW FIELD KEYS ON "telemetry" FROM "environment"');
      expect(Object.fromEntries(fields.values as [string, string][])).toEqual({
        count: 'integer',
        note: 'string',
        ok: 'boolean',
        temperature: 'float',
      });
      const [mqtt] = await series(influx.query, 'SELECT * FROM "telemetry".."mqtt"');
      expect(mqtt.columns).toEqual(['time', 'agent', 'level', 'topic']);
      expect(mqtt.values[0].slice(1)).toEqual(['test-agent', 3, 'misc/raw']);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('keeps 1,000 readings of one series in one millisecond apart (ns time, the sequence below the ms), and a resend of them overwrites, not adds', async () => {
    await influx.createDatabase('samems');
    const ts = 1764496800123;
    const readings = Array.from(
      { length: 1000 },
      (_, i) => ['sensors/pi-5/env', { ts, temperature: i / 10, site: 'one' }] as [string, unknown],
    );
    for (let run = 0; run < 2; run++) {
      // The second agent, on a new data directory with the same agent id, numbers the same readings
      // the same way: what a resend after a crash would send.
      const agent = await startAgent({
        ingest: { schemas: [envSchema] },
        sinks: [{ name: 'metrics', type: 'influx', url: influx.url, database: 'samems', batch: { maxAgeMs: 50 } }],
      });
      try {
        await publishAll(agent, readings);
        await untilStatus(agent, 'metrics', (st) => st.lagRecords === 0 && st.sent.records === 1000);
        const [points] = await series(influx.query, 'SELECT count(temperature) FROM "samems".."environment"');
        expect(points.values[0][1]).toBe(1000);
        const [span] = await series(influx.query, 'SELECT first(temperature), last(temperature) FROM "samems".."environment"');
        expect(span.values[0].slice(1)).toEqual([0, 99.9]);
      } finally {
        await agent.stop();
        cleanup(agent.dir);
      }
    }
  });

  it('a 400 partial write: the refused reading goes to dead letters, the others are stored once', async () => {
    await influx.createDatabase('partial');
    const agent = await startAgent({
      sinks: [{ name: 'metrics', type: 'influx', url: influx.url, database: 'partial', batch: { maxAgeMs: 300 } }],
    });
    try {
      // `v` becomes a float field; one reading then sends it as a string: InfluxDB drops that point (field type conflict).
      await publishAll(agent, [['a/b', { v: 0 }]]);
      await drained(agent, 'metrics');
      await publishAll(
        agent,
        Array.from({ length: 12 }, (_, i) => ['a/b', i === 5 ? { v: 'text' } : { v: i + 1 }] as [string, unknown]),
      );
      await untilStatus(agent, 'metrics', (s) => s.lagRecords === 0 && s.deadLettered === 1);
      const [points] = await series(influx.query, 'SELECT count(v) FROM "partial".."mqtt"');
      expect(points.values[0][1]).toBe(12);
      const [dl] = await agent.runtime.log.deadLetters(1);
      expect(dl).toMatchObject({ sink: 'metrics', seq: 7, topic: 'a/b' });
      expect(dl.reasons[0].message).toMatch(/^influx: HTTP 400: partial write: field type conflict/);
      expect((await statusOf(agent, 'metrics')).state).toBe('ok');
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('a line InfluxDB cannot parse is named in its 400: that reading alone goes to dead letters, in one round trip', async () => {
    await influx.createDatabase('unparsable');
    const agent = await startAgent({
      ingest: { schemas: [{ name: 'site', topics: ['s/#'], fields: { site: { type: 'string', tag: true }, v: 'float' } }] },
      sinks: [{ name: 'metrics', type: 'influx', url: influx.url, database: 'unparsable', batch: { maxAgeMs: 300 } }],
    });
    try {
      // A tag value ending in a backslash escapes the space after it: the line no longer parses.
      await publishAll(
        agent,
        Array.from({ length: 6 }, (_, i) => ['s/x', { site: i === 2 ? 'trailing\\' : `ok-${i}`, v: i }] as [string, unknown]),
      );
      const s = await untilStatus(agent, 'metrics', (st) => st.lagRecords === 0 && st.deadLettered === 1);
      expect(s.sent.requests).toBe(1);
      const [dl] = await agent.runtime.log.deadLetters(1);
      expect(dl).toMatchObject({ sink: 'metrics', seq: 3 });
      expect(dl.reasons[0].message).toMatch(
        /^influx: HTTP 400: partial write: unable to parse 'site,agent=test-agent,site=trailing\\,topic=s\/x /,
      );
      const [points] = await series(influx.query, 'SELECT count(v) FROM "unparsable".."site"');
      expect(points.values[0][1]).toBe(5);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('several requests on the wire at once; the cursor passes a batch only once every earlier one is confirmed', async () => {
    await influx.createDatabase('window');
    const held: (() => void)[] = [];
    let requests = 0;
    const front = http.createServer((req, res) => {
      const forward = () => {
        const upstream = http.request(`${influx.url}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        req.pipe(upstream);
      };
      // The first request waits until the test lets it through; the others go straight on.
      if (requests++ === 0) held.push(forward);
      else forward();
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    const agent = await startAgent({
      sinks: [{ name: 'metrics', type: 'influx', url, database: 'window', requests: 3, batch: { maxRecords: 100, maxAgeMs: 3000 } }],
    });
    try {
      await publishAll(
        agent,
        Array.from({ length: 600 }, (_, i) => ['w/x', { i }] as [string, unknown]),
      );
      // Batches 2 and 3 are sent and confirmed while batch 1 is still out; batch 4 waits for it
      // (three unconfirmed at most), and the cursor stays before batch 1.
      await untilStatus(agent, 'metrics', (s) => s.sent.records === 200);
      await new Promise((r) => setTimeout(r, 300));
      expect(requests).toBe(3);
      expect(agent.runtime.log.cursor('sink:metrics')).toBe(0);
      held[0]();
      await untilStatus(agent, 'metrics', (s) => s.lagRecords === 0 && s.sent.records === 600);
      expect(agent.runtime.log.cursor('sink:metrics')).toBe(agent.runtime.log.lastSeq);
      const [points] = await series(influx.query, 'SELECT count(i) FROM "window".."mqtt"');
      expect(points.values[0][1]).toBe(600);
      expect(requests).toBe(6);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      front.close();
    }
  });

  it('429/503 with Retry-After: waits as told, then delivers', async () => {
    await influx.createDatabase('busy');
    let refusals = 2;
    const times: number[] = [];
    const front = http.createServer((req, res) => {
      times.push(Date.now());
      if (refusals-- > 0) return void res.writeHead(refusals === 1 ? 503 : 429, { 'Retry-After': '1' }).end('{"error":"busy"}');
      const upstream = http.request(`${influx.url}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
    const agent = await startAgent({
      sinks: [{ name: 'metrics', type: 'influx', url, database: 'busy', batch: { maxAgeMs: 10 }, retry: { initialMs: 10, maxMs: 20 } }],
    });
    try {
      await publishAll(agent, [['a/b', { v: 1 }]]);
      await drained(agent, 'metrics');
      expect(times).toHaveLength(3);
      expect(times[1] - times[0]).toBeGreaterThanOrEqual(900);
      expect(times[2] - times[1]).toBeGreaterThanOrEqual(900);
      // The first refusal was a 503, the second a 429.
      expect((await statusOf(agent, 'metrics')).lastError?.message).toMatch(/HTTP 429: busy/);
      const [points] = await series(influx.query, 'SELECT count(v) FROM "busy".."mqtt"');
      expect(points.values[0][1]).toBe(1);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
      front.close();
    }
  });
});

describe('InfluxDB v2 write API (VictoriaMetrics)', () => {
  let vm: Awaited<ReturnType<typeof startVictoriaMetrics>>;
  beforeAll(async () => {
    vm = await startVictoriaMetrics();
  });
  afterAll(async () => {
    await vm.stop();
  });

  it('writes through /api/v2/write with org, bucket and token, gzip bodies', async () => {
    const agent = await startAgent({
      ingest: { schemas: [envSchema] },
      sinks: [
        { name: 'vm', type: 'influx', url: vm.url, version: 2, org: 'acme', bucket: 'telemetry', token: 't0ken', batch: { maxAgeMs: 50 } },
      ],
    });
    try {
      const base = Date.now() - 60_000;
      await publishAll(
        agent,
        Array.from(
          { length: 20 },
          (_, i) => ['sensors/pi-5/env', { ts: base + i * 1000, temperature: i + 0.5, count: i, site: 'south' }] as [string, unknown],
        ),
      );
      await drained(agent, 'vm');
      const exported = await until(async () => {
        await fetch(`${vm.url}/internal/force_flush`);
        const text = await (await fetch(`${vm.url}/api/v1/export?${new URLSearchParams({ 'match[]': 'environment_temperature' })}`)).text();
        return text.trim() && text;
      });
      const line = JSON.parse(exported.trim().split('\n')[0]) as { metric: Record<string, string>; values: number[]; timestamps: number[] };
      expect(line.metric).toMatchObject({
        __name__: 'environment_temperature',
        agent: 'test-agent',
        site: 'south',
        topic: 'sensors/pi-5/env',
      });
      expect(line.values).toEqual(Array.from({ length: 20 }, (_, i) => i + 0.5));
      expect(line.timestamps).toEqual(Array.from({ length: 20 }, (_, i) => base + i * 1000));
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});
