// Readings over HTTP: queries with filters and cursor paging, aggregates (rollups and store),
// HTTP ingest, deletion, export (API and CLI), bad parameters named; on both store backends.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { parse as parseCsv } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { adminClient, type Answer, type WebClient } from '../helpers/web.js';

const run = promisify(execFile);

interface Reading {
  seq: number;
  topic: string;
  receivedAt: number;
  payload: Record<string, unknown>;
}

/** Readings through the HTTP ingest: 3 rooms x 40, temperatures 20.0 + i/10, status ok/bad. */
const ROOMS = ['home/kitchen/temp', 'home/hall/temp', 'office/desk/temp'];
const PER_ROOM = 40;

describe.each(['sqlite', 'files'] as const)('data API on the %s store', (backend) => {
  let agent: InProcessAgent;
  let api: WebClient;
  let all: Reading[];

  beforeAll(async () => {
    agent = await startAgent({ store: { backend, gatherMs: 0 }, rollups: { buckets: ['1m', '1h'] } });
    api = adminClient(agent);
    const readings = ROOMS.flatMap((topic) =>
      Array.from({ length: PER_ROOM }, (_, i) => ({
        topic,
        payload: { t: 20 + i / 10, status: i % 4 === 0 ? 'bad' : 'ok', meta: { n: i } },
      })),
    );
    const res = await api.post('/api/data', { readings });
    expect(res.status).toBe(201);
    expect(res.body.accepted).toBe(readings.length);
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    await agent.runtime.rollups!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    all = (await api.get(`/api/data?limit=1000`)).body.readings;
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('answers POST /api/data after the commit: the readings are in the store in order', () => {
    expect(all).toHaveLength(ROOMS.length * PER_ROOM);
    expect(all.map((r) => r.seq)).toEqual([...all.map((r) => r.seq)].sort((a, b) => a - b));
    expect(all[0]).toMatchObject({ topic: 'home/kitchen/temp', payload: { t: 20, status: 'bad' }, clientId: 'http:admin' });
  });

  it('filters by topic pattern, time, and payload fields; orders both ways', async () => {
    const home = (await api.get('/api/data?topic=home/%2B/temp&limit=1000')).body.readings as Reading[];
    expect(home).toHaveLength(2 * PER_ROOM);
    expect(new Set(home.map((r) => r.topic))).toEqual(new Set(['home/kitchen/temp', 'home/hall/temp']));
    const hot = (await api.get(`/api/data?topic=%23&where=${encodeURIComponent('t>=23.5')}&where=status=ok&limit=1000`)).body
      .readings as Reading[];
    expect(hot.length).toBe(ROOMS.length * 4); // i = 35..39 have t >= 23.5; i = 36 is bad
    expect(hot.every((r) => (r.payload.t as number) >= 23.5 && r.payload.status === 'ok')).toBe(true);
    const nested = (await api.get(`/api/data?where=${encodeURIComponent('meta.n=7')}`)).body.readings as Reading[];
    expect(nested.map((r) => r.topic).sort()).toEqual([...ROOMS].sort());
    const mid = all[60].receivedAt;
    const upTo = (await api.get(`/api/data?to=${mid}&limit=1000`)).body.readings as Reading[];
    expect(upTo.length).toBe(all.filter((r) => r.receivedAt <= mid).length);
    const iso = (await api.get(`/api/data?from=${new Date(mid).toISOString()}&limit=1000`)).body.readings as Reading[];
    expect(iso.length).toBe(all.filter((r) => r.receivedAt >= mid).length);
    const desc = (await api.get('/api/data?order=desc&limit=5')).body.readings as Reading[];
    expect(desc.map((r) => r.seq)).toEqual(
      all
        .slice(-5)
        .reverse()
        .map((r) => r.seq),
    );
  });

  it('pages with a cursor: every reading once, in both orders', async () => {
    for (const order of ['asc', 'desc']) {
      const seen: number[] = [];
      let next: string | null = null;
      let pages = 0;
      do {
        const res: Answer<{ readings: Reading[]; next: string | null }> = await api.get(
          `/api/data?limit=7&order=${order}${next ? `&cursor=${next}` : ''}`,
        );
        expect(res.status).toBe(200);
        seen.push(...(res.body.readings as Reading[]).map((r) => r.seq));
        next = res.body.next;
        pages++;
      } while (next);
      const want = all.map((r) => r.seq);
      expect(seen).toEqual(order === 'asc' ? want : [...want].reverse());
      expect(pages).toBe(Math.ceil(want.length / 7) + (want.length % 7 === 0 ? 1 : 0));
    }
  });

  it('aggregates per bucket from the rollups (a kept width) and from the store (another), with the same figures', async () => {
    const fromRollups = (await api.get('/api/data/aggregate?topic=home/kitchen/temp&bucket=1h&fields=t')).body;
    const fromStore = (await api.get('/api/data/aggregate?topic=home/kitchen/temp&bucket=2h&fields=t')).body;
    expect(fromRollups.source).toBe('rollups');
    expect(fromStore.source).toBe('store');
    const sum = (points: { count: number; sum: number; min: number; max: number }[]) => ({
      count: points.reduce((n, p) => n + p.count, 0),
      sum: points.reduce((n, p) => n + p.sum, 0),
      min: Math.min(...points.map((p) => p.min)),
      max: Math.max(...points.map((p) => p.max)),
    });
    const want = { count: PER_ROOM, min: 20, max: 23.9 };
    for (const body of [fromRollups, fromStore]) {
      expect(body.series).toHaveLength(1);
      const s = sum(body.series[0].points);
      expect(s).toMatchObject(want);
      expect(s.sum).toBeCloseTo(
        Array.from({ length: PER_ROOM }, (_, i) => 20 + i / 10).reduce((a, b) => a + b),
        6,
      );
    }
    const only = (await api.get('/api/data/aggregate?topic=office/%23&bucket=1m&stats=count&stats=max')).body;
    expect(Object.keys(only.series[0].points[0]).sort()).toEqual(['count', 'max', 'start']);
  });

  it('names the parameter of every bad request (400), and refuses unknown ones', async () => {
    const cases: [string, RegExp][] = [
      ['/api/data?limit=0', /^limit: /],
      ['/api/data?limit=abc', /^limit: /],
      ['/api/data?limit=1000000', /^limit: /],
      ['/api/data?topic=a/%23/b', /^topic: .*# must be/],
      ['/api/data?from=yesterday', /^from: /],
      ['/api/data?from=2000&to=1000', /^from: is after to/],
      ['/api/data?where=t~5', /^where: /],
      ['/api/data?cursor=bm9wZQ', /^cursor: /],
      ['/api/data?order=sideways', /^order: /],
      ['/api/data?colour=red', /^colour: .*no such parameter/],
      ['/api/data/aggregate?bucket=90s', /^bucket: /],
      ['/api/data/aggregate?bucket=2d', /^bucket: .*outside/],
      ['/api/data/aggregate?stats=median', /^stats\[0\]: /],
      ['/api/export?format=xml', /^format: /],
      ['/api/export?filename=../../etc/passwd', /^filename: /],
    ];
    for (const [path, message] of cases) {
      const res = await api.get(path);
      expect(res.status, path).toBe(400);
      expect(res.body.error, path).toBe('Bad Request');
      expect(res.body.message, path).toMatch(message);
    }
    const body = await api.post('/api/data', { readings: [{ topic: 'a/+', payload: 1 }] });
    expect(body.status).toBe(400);
    expect(body.body.message).toMatch(/^body\.readings\[0\]\.topic: /);
    const missing = await api.post('/api/data', { payload: 1 });
    expect(missing.status).toBe(400);
    expect(missing.body.message).toMatch(/body/);
    // A body nested 100,000 deep: a 4xx, not a 500.
    const deep = await api.post('/api/data', `{"topic":"d/x","payload":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
    expect(deep.status).toBeGreaterThanOrEqual(400);
    expect(deep.status).toBeLessThan(500);
    expect(deep.body.message).toMatch(/deep|nest/i);
  });

  it('export: CSV, JSON and JSON Lines, gzip, field selection and a file name; the CLI gives the same rows', async () => {
    const csv = await fetch(`${api.base}/api/export?format=csv&topic=home/%23&fields=t,meta.n`, {
      headers: { authorization: `Basic ${Buffer.from((api.creds as { basic: string[] }).basic.join(':')).toString('base64')}` },
    });
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    expect(csv.headers.get('content-disposition')).toMatch(/^attachment; filename="readings-test-agent-.*\.csv"$/);
    const rows = parseCsv(await csv.text(), { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(2 * PER_ROOM);
    expect(Object.keys(rows[0])).toEqual([
      'seq',
      'receivedAt',
      'topic',
      'clientId',
      'schema',
      'deviceTime',
      'clockSynced',
      'clockCorrectionMs',
      't',
      'meta.n',
    ]);
    expect(rows[1]).toMatchObject({ topic: 'home/kitchen/temp', t: '20.1', 'meta.n': '1', clockSynced: 'false' });

    const jsonl = (await api.get('/api/export?format=jsonl&topic=office/%23')).body as string;
    const lines = jsonl
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Reading);
    expect(lines).toHaveLength(PER_ROOM);
    expect(lines[3].payload).toEqual({ t: 20.3, status: 'ok', meta: { n: 3 } });

    const json = await api.get('/api/export?format=json&filename=all.json');
    expect(json.headers.get('content-disposition')).toBe('attachment; filename="all.json"');
    expect((json.body as Reading[]).map((r) => r.seq)).toEqual(all.map((r) => r.seq));
    const empty = await api.get('/api/export?format=json&topic=nothing/here');
    expect(empty.body).toEqual([]);

    const gz = await fetch(`${api.base}/api/export?format=jsonl&gzip=true`, {
      headers: { authorization: `Basic ${Buffer.from((api.creds as { basic: string[] }).basic.join(':')).toString('base64')}` },
    });
    expect(gz.headers.get('content-disposition')).toMatch(/\.jsonl\.gz"$/);
    expect(
      gunzipSync(Buffer.from(await gz.arrayBuffer()))
        .toString()
        .trim()
        .split('\n'),
    ).toHaveLength(all.length);

    // The CLI reads the store beside the running agent (read-only) and writes the same rows.
    const out = join(agent.dir, 'export.csv');
    await run(process.execPath, [
      CLI,
      '--config',
      agent.configPath,
      'export',
      '--format',
      'csv',
      '--topic',
      'home/#',
      '--fields',
      't,meta.n',
      '--out',
      out,
    ]);
    const cliRows = parseCsv(readFileSync(out, 'utf8'), { columns: true }) as Record<string, string>[];
    expect(cliRows).toEqual(rows);
    const { stdout } = await run(process.execPath, [CLI, '--config', agent.configPath, 'export', '--format', 'jsonl', '--where', 't>23.8']);
    expect(
      stdout
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as Reading).payload.t),
    ).toEqual([23.9, 23.9, 23.9]);
    await expect(run(process.execPath, [CLI, '--config', agent.configPath, 'export', '--topic', 'a/#/b'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--topic/),
    });
  });

  it('refuses invalid readings over HTTP with every reason, taking none of the batch; takes them once fixed', async () => {
    await api.post('/api/schemas', { name: 'meter', topics: ['meters/#'], fields: { kwh: { type: 'float', required: true, min: 0 } } });
    const before = agent.runtime.log.lastSeq;
    const bad = await api.post('/api/data', {
      readings: [
        { topic: 'meters/1', payload: { kwh: 1.5 } },
        { topic: 'meters/2', payload: { kwh: -1 } },
        { topic: 'meters/3', payload: {} },
      ],
    });
    expect(bad.status).toBe(422);
    expect(bad.body.details).toEqual([
      { index: 1, topic: 'meters/2', reasons: [{ path: '/kwh', message: 'must be >= 0' }] },
      { index: 2, topic: 'meters/3', reasons: [{ path: '/kwh', message: "must have required property 'kwh'" }] },
    ]);
    expect(agent.runtime.log.lastSeq).toBe(before);
    expect((await agent.runtime.log.deadLetters(10)).filter((d) => d.topic.startsWith('meters/'))).toEqual([]);
    const good = await api.post('/api/data', { topic: 'meters/1', payload: { kwh: 2 } });
    expect(good.status).toBe(201);
    expect(good.body.seqs).toEqual([before + 1]);
    expect(agent.runtime.log.lastSeq).toBe(before + 1);
  });

  it('deletes by topic filter and time range (admin), leaving the rest', async () => {
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    const hall = all.filter((r) => r.topic === 'home/hall/temp');
    const cut = hall[19].receivedAt;
    const res = await api.del(`/api/data?topic=home/hall/%23&to=${cut}`);
    expect(res.status).toBe(200);
    const expected = hall.filter((r) => r.receivedAt <= cut).length;
    expect(res.body.deleted).toBe(expected);
    const left = (await api.get('/api/data?topic=home/hall/temp&limit=1000')).body.readings as Reading[];
    expect(left.map((r) => r.seq)).toEqual(hall.filter((r) => r.receivedAt > cut).map((r) => r.seq));
    expect(((await api.get('/api/data?topic=home/kitchen/temp&limit=1000')).body.readings as Reading[]).length).toBe(PER_ROOM);
    expect((await api.del('/api/data')).status).toBe(400); // the topic is required
  });
});

describe('a request looks at web.limits.scanReadings stored readings at most', () => {
  it('a page whose condition matches few ends there with a next to go on; following next finds every match; an aggregate over more gets 400', async () => {
    const agent = await startAgent({ store: { gatherMs: 0 }, rollups: { buckets: ['1h'] }, web: { limits: { scanReadings: 1000 } } });
    try {
      const api = adminClient(agent);
      // 3,500 readings, of which two match: the 10th and the last.
      const readings = Array.from({ length: 3500 }, (_, i) => ({ topic: 'scan/a', payload: { v: i === 9 || i === 3499 ? 1 : 0 } }));
      expect((await api.post('/api/data', { readings })).status).toBe(201);
      await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
      const first = await api.get('/api/data?topic=scan/a&where=v=1&limit=10');
      expect(first.status).toBe(200);
      expect(first.body.readings.map((r: Reading) => r.payload.v)).toEqual([1]); // found in the first 1,000 looked at
      expect(first.body.next).not.toBeNull(); // and the page ended there, with fewer than 10
      const pages = [first.body];
      while (pages.at(-1).next)
        pages.push((await api.get(`/api/data?topic=scan/a&where=v=1&limit=10&cursor=${encodeURIComponent(pages.at(-1).next)}`)).body);
      expect(pages.length).toBe(4); // 3,500 readings, 1,000 a page
      expect(pages.flatMap((p) => p.readings).length).toBe(2);
      // The control: a condition every reading meets fills its page from the first 10 looked at.
      expect((await api.get('/api/data?topic=scan/a&limit=10')).body.readings).toHaveLength(10);
      // An aggregate from the store (a width the rollups do not keep) over more than 1,000: 400, naming what to narrow.
      const agg = await api.get('/api/data/aggregate?topic=scan/a&bucket=5m');
      expect(agg.status).toBe(400);
      expect(agg.body.message).toMatch(/^from, to: the range holds more than 1000 stored readings \(web.limits.scanReadings\): narrow it/);
      expect((await api.get('/api/data/aggregate?topic=scan/a&bucket=1h')).status).toBe(200); // the rollups keep 1h
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});

describe("HTTP ingest holds to the broker's rules", () => {
  let agent: InProcessAgent;
  let api: WebClient;
  beforeAll(async () => {
    agent = await startAgent();
    api = adminClient(agent);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it("holds HTTP topics to the broker's rules (control characters, length, levels), as MQTT does; a client id is recorded as the caller's", async () => {
    for (const topic of ['bad/\u0001x', `long/${'x'.repeat(1000)}`, Array.from({ length: 20 }, () => 'l').join('/')]) {
      const res = await api.post('/api/data', { topic, payload: { v: 1 } });
      expect(res.status, topic.slice(0, 20)).toBe(400);
      expect(res.body.message).toMatch(/^body\.topic: (control character|topic longer|topic deeper).*as over MQTT/);
    }
    // Controls: a leading / is a topic name over MQTT too (an empty first level), and so here.
    const ok = await api.post('/api/data', { topic: '/lead/x', payload: { v: 1 }, clientId: 'sensor-7' });
    expect(ok.status).toBe(201);
    const mqtt = await connect(agent.mqttUrl, { clientId: 'lead-pub' });
    await mqtt.publishAsync('/lead/y', '{"v":2}', { qos: 1 });
    await mqtt.endAsync();
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    const stored = await agent.runtime.store!.target.query({ topic: '/lead/+' });
    expect(stored.map((r) => [r.topic, r.clientId])).toEqual([
      ['/lead/x', 'http:admin:sensor-7'],
      ['/lead/y', 'lead-pub'],
    ]);
  });

  it('answers a topic filter cut at # (curl drops what follows a bare #) with a hint, not just an empty list', async () => {
    expect((await api.post('/api/data', { topic: 'hint/a', payload: { v: 1 } })).status).toBe(201);
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    const cut = await api.get('/api/data?topic=hint/');
    expect(cut.body.readings).toEqual([]);
    expect(cut.body.hint).toMatch(/%23/);
    const whole = await api.get('/api/data?topic=hint/%23'); // control: written as it should be
    expect(whole.body.readings.map((r: { topic: string }) => r.topic)).toEqual(['hint/a']);
    expect(whole.body.hint).toBeUndefined();
  });
});
