// /metrics in Prometheus' text format (parsed by a parser made for it), the Grafana dashboard's
// queries against it, and GraphQL: queries, mutations, a subscription, roles, depth and cost limits.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { cleanup, startAgent, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { until } from '../helpers/servers.js';
import { addUser } from '../helpers/users.js';
import { adminClient, authHeader, type WebClient } from '../helpers/web.js';

interface Family {
  name: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string; buckets?: Record<string, string>; count?: string }[];
}

const REQUIRED = [
  'mqtt_messages_received_total',
  'mqtt_messages_stored_total',
  'mqtt_messages_dropped_total',
  'mqtt_validation_errors_total',
  'mqtt_buffer_size',
  'mqtt_storage_latency_seconds',
  'http_request_duration_seconds',
  'database_query_duration_seconds',
  'sync_records_sent_total',
  'sync_lag_records',
  'sync_lag_seconds',
  'disk_free_bytes',
  'disk_written_bytes_total',
  'mqtt_clients_connected',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_p99_seconds',
];

/** PromQL words that are not metric names. */
const PROMQL = new Set([
  'rate',
  'increase',
  'sum',
  'by',
  'histogram_quantile',
  'le',
  'reason',
  'schema',
  'route',
  'source',
  'unit',
  'records',
  'bytes',
  'instance',
  'job',
]);

describe('metrics and GraphQL', () => {
  let agent: InProcessAgent;
  let api: WebClient;

  beforeAll(async () => {
    agent = await startAgent({
      ingest: { schemas: [{ name: 'climate', topics: ['climate/#'], fields: { t: { type: 'float', required: true } } }] },
      // A sink that cannot be reached: its lag and state show in the metrics.
      sinks: [{ name: 'cloud', type: 'influx', url: 'http://127.0.0.1:9', database: 'x', retry: { initialMs: 100, maxMs: 200 } }],
    });
    api = adminClient(agent);
    await addUser(agent.configPath, 'vera', 'viewer-pass', ['viewer']);
    const mqtt = await connect(agent.mqttUrl);
    for (let i = 0; i < 5; i++) await mqtt.publishAsync('climate/a', JSON.stringify({ t: 20 + i }), { qos: 1 });
    await mqtt.publishAsync('climate/a', JSON.stringify({ rh: 1 }), { qos: 1 });
    await mqtt.endAsync();
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    await until(async () => (await agent.runtime.sync.status())[0].state !== 'ok', 10_000, 'the unreachable sink to have failed once');
    await api.get('/api/data'); // a query for the query histogram
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('serves every required metric in the text format, with the values the agent holds', async () => {
    const res = await api.get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusTextFormat(res.body as string) as Family[];
    const byName = new Map(families.map((f) => [f.name, f]));
    for (const name of REQUIRED) expect(byName.has(name), name).toBe(true);
    const value = (name: string, labels: Record<string, string> = {}) =>
      Number(byName.get(name)!.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))?.value);
    expect(value('mqtt_messages_received_total')).toBe(6);
    expect(value('mqtt_messages_stored_total')).toBe(5);
    expect(value('mqtt_messages_dropped_total', { reason: 'validation' })).toBe(1);
    expect(value('mqtt_validation_errors_total', { schema: 'climate@1' })).toBe(1);
    expect(value('sync_lag_records', { sink: 'cloud' })).toBe(5);
    expect(value('disk_free_bytes')).toBeGreaterThan(0);
    expect(byName.get('mqtt_storage_latency_seconds')!.type).toBe('HISTOGRAM');
    // (The parser drops a histogram's labels and counts: those are read from the text.)
    const count = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, '\\$&')} (\\S+)$`, 'm').exec(res.body as string)?.[1]);
    expect(count('mqtt_storage_latency_seconds_count')).toBeGreaterThan(0);
    expect(count('database_query_duration_seconds_count{source="sqlite"}')).toBeGreaterThan(0);
    // promtool's rule: only counters end in _total (Node's active handles, requests and resources were gauges that did).
    const types = [...(res.body as string).matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name, type]) => ({ name, type }));
    expect(types.filter((t) => t.type !== 'counter' && t.name.endsWith('_total'))).toEqual([]);
    expect(types.some((t) => t.type === 'counter' && t.name.endsWith('_total'))).toBe(true); // control
    expect(byName.has('nodejs_active_handles')).toBe(true);
  });

  it("Prometheus' own promtool finds nothing to say about /metrics", async () => {
    const check = (text: string) => {
      const out = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      if (out.error) throw out.error; // promtool comes with Debian's prometheus package (.ci/run)
      return { status: out.status, said: `${out.stdout}${out.stderr}`.trim() };
    };
    const metrics = (await api.get('/metrics')).body as string;
    expect(metrics.split('\n').length).toBeGreaterThan(200);
    expect(check(metrics)).toEqual({ status: 0, said: '' });
    // promtool at work: a gauge ending in _total, and a counter without it.
    const control = check(
      `${metrics}# HELP lazy_total a gauge misnamed\n# TYPE lazy_total gauge\nlazy_total 1\n# HELP done a counter misnamed\n# TYPE done counter\ndone 1\n`,
    );
    expect(control.status).toBe(3);
    expect(control.said).toMatch(/lazy_total non-counter metrics should not have "_total" suffix/);
    expect(control.said).toMatch(/done counter metrics should have "_total" suffix/);
  });

  it('the Grafana dashboard queries only metrics the agent serves', async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../agent/health/grafana-dashboard.json', import.meta.url), 'utf8')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const served = new Set((parsePrometheusTextFormat((await api.get('/metrics')).body as string) as Family[]).map((f) => f.name));
    const queried = new Set(
      dashboard.panels.flatMap((p) =>
        p.targets.flatMap((t) =>
          (t.expr.replace(/\{[^}]*\}|"[^"]*"|\[[^\]]*\]/g, ' ').match(/[a-z_][a-z0-9_]*/g) ?? []).filter((w) => !PROMQL.has(w)),
        ),
      ),
    );
    expect(queried.size).toBeGreaterThan(15);
    for (const name of queried) expect(served.has(name.replace(/_bucket$/, '')), name).toBe(true);
    // A fleet of Pis in one Prometheus: every query is narrowed to the $instance and $job chosen, and keeps them apart.
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
    const bare = exprs.flatMap((e) =>
      [...e.matchAll(/\b([a-z_][a-z0-9_]*)(\{[^}]*\})?(?=\s*(\[|\)|\/|$))/g)]
        .filter((m) => !PROMQL.has(m[1]) && !/^[0-9]/.test(m[1]) && !(m[2] ?? '').includes('instance=~"$instance",job=~"$job"'))
        .map((m) => m[0]),
    );
    expect(bare).toEqual([]);
    expect(exprs.filter((e) => e.includes('sum by (') && !e.includes('sum by (instance, '))).toEqual([]);
    const variables = (
      JSON.parse(readFileSync(new URL('../../agent/health/grafana-dashboard.json', import.meta.url), 'utf8')) as {
        templating: { list: { name: string }[] };
      }
    ).templating.list.map((v) => v.name);
    expect(variables).toEqual(['datasource', 'job', 'instance']);
  });

  it('GraphQL: queries readings, aggregates, schemas, dead letters and sinks', async () => {
    const res = await api.post('/graphql', {
      query:
        '{ readings(topic: "climate/#", limit: 3) { readings { seq topic payload } next } aggregate(topic: "climate/a", bucket: "1h", fields: ["t"]) { source series { field points { count max } } } schemas { name version } deadLetters { id reasons { path message } } sync { name state lagRecords } }',
    });
    expect(res.status).toBe(200);
    const data = res.body.data;
    expect(data.readings.readings.map((r: { payload: { t: number } }) => r.payload.t)).toEqual([20, 21, 22]);
    expect(data.readings.next).not.toBeNull();
    expect(data.aggregate.series[0].points[0]).toEqual({ count: 5, max: 24 });
    expect(data.schemas).toEqual([{ name: 'climate', version: 1 }]);
    expect(data.deadLetters[0].reasons[0]).toEqual({ path: '/t', message: "must have required property 't'" });
    expect(data.sync[0]).toMatchObject({ name: 'cloud', lagRecords: 5 });
    expect(data.sync[0].state).not.toBe('ok');
  });

  it('GraphQL over GET: queries only; a subscription only over a WebSocket; a bad request names what is wrong', async () => {
    const get = await api.get(`/graphql?query=${encodeURIComponent('{ schemas { name } }')}`);
    expect(get.status).toBe(200);
    expect(get.body.data.schemas).toEqual([{ name: 'climate' }]);
    const mutation = await api.get(`/graphql?query=${encodeURIComponent('mutation { deleteSchema(name: "x") }')}`);
    expect(mutation.status).toBe(405);
    expect((await api.post('/graphql', { query: 'subscription { readings(topics: ["#"]) { seq } }' })).status).toBe(400);
    const noQuery = await api.post('/graphql', { variables: {} });
    expect(noQuery.status).toBe(400);
    expect(noQuery.body.errors[0].message).toMatch(/^query:/);
    const badVariables = await api.get(`/graphql?query=${encodeURIComponent('{ schemas { name } }')}&variables=%7Bnot-json`);
    expect(badVariables.status).toBe(400);
    expect(badVariables.body.errors[0].message).toMatch(/^variables:/);
    const syntax = await api.post('/graphql', { query: '{ schemas { name }' });
    expect(syntax.status).toBe(400);
    expect(syntax.body.errors[0].message).toMatch(/Syntax Error/);
  });

  it('GraphQL mutations: a schema change, then the dead letter replays; roles hold', async () => {
    const vera = api.as({ basic: ['vera', 'viewer-pass'] });
    const denied = await vera.post('/graphql', { query: 'mutation { deleteReadings(topic: "#") }' });
    expect(denied.body.errors[0].extensions.code).toBe('FORBIDDEN');
    const put = await api.post('/graphql', {
      query: 'mutation($doc: JSON!) { putSchema(doc: $doc) { id editable } }',
      variables: { doc: { name: 'climate2', topics: ['climate2/#'], fields: { t: 'float' } } },
    });
    expect(put.body.data.putSchema).toEqual({ id: 'climate2@1', editable: true });
    const invalid = await api.post('/graphql', {
      query: 'mutation($doc: JSON!) { putSchema(doc: $doc) { id } }',
      variables: { doc: { name: 'broken', topics: [], fields: { t: 'kelvin' } } },
    });
    expect(invalid.body.errors[0].extensions.code).toBe('INVALID');
    const [letter] = (await api.get('/api/dead-letters')).body.deadLetters as { id: number }[];
    const stillBad = await api.post('/graphql', {
      query: `mutation { replayDeadLetters(ids: [${letter.id}]) { replayed { id } refused { id } } }`,
    });
    expect(stillBad.body.data.replayDeadLetters).toEqual({ replayed: [], refused: [{ id: letter.id }] });
    // The config's schema cannot be changed here; a file schema can.
    const fromConfig = await api.post('/graphql', {
      query: 'mutation($doc: JSON!) { putSchema(doc: $doc) { id } }',
      variables: { doc: { name: 'climate', topics: ['climate/#'], fields: { t: 'float' } } },
    });
    expect(fromConfig.body.errors[0].extensions.code).toBe('CONFLICT');
    const deleted = await api.post('/graphql', { query: 'mutation { deleteReadings(topic: "climate/a", to: "1") }' });
    expect(deleted.body.data.deleteReadings).toBe(0);
  });

  it('GraphQL refuses queries past the depth and cost limits', async () => {
    const deep = await api.post('/graphql', { query: '{ readings { readings { topic } } ' + '}'.repeat(0) + '}' });
    expect(deep.status).toBe(200);
    const tooDeep = await api.post('/graphql', {
      query: '{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }',
    });
    expect(tooDeep.status).toBe(400);
    expect(JSON.stringify(tooDeep.body)).toMatch(/exceeds the query depth limit of 8/);
    const costly = await api.post('/graphql', {
      query: `{ ${Array.from({ length: 12 }, (_, i) => `r${i}: readings(limit: 10000) { readings { seq topic payload } }`).join(' ')} }`,
    });
    expect(costly.status).toBe(400);
    expect(JSON.stringify(costly.body)).toMatch(/exceeds the maximum complexity of 2000/);
    // Sent again, it is refused the same way (from the refusals remembered).
    const again = await api.post('/graphql', {
      query: `{ ${Array.from({ length: 12 }, (_, i) => `r${i}: readings(limit: 10000) { readings { seq topic payload } }`).join(' ')} }`,
    });
    expect([again.status, again.body]).toEqual([400, costly.body]);
    // A field that scans costs what it may scan (scanReadings 200,000: 200 a field), each alias apart:
    // 100 aliases of a one-reading page with a condition no longer fit; 9 do (the control).
    const aliases = (n: number) =>
      `{ ${Array.from({ length: n }, (_, i) => `r${i}: readings(limit: 1, where: ["t=-999"]) { readings { seq } }`).join(' ')} }`;
    const scans = await api.post('/graphql', { query: aliases(100) });
    expect(scans.status).toBe(400);
    expect(JSON.stringify(scans.body)).toMatch(/exceeds the maximum complexity of 2000/);
    expect((await api.post('/graphql', { query: aliases(9) })).status).toBe(200);
    // An aggregate from the store (a width the rollups do not keep) scans too; one they keep does not.
    const folds = (bucket: string) =>
      `{ ${Array.from({ length: 10 }, (_, i) => `a${i}: aggregate(topic: "x/#", bucket: "${bucket}") { bucket }`).join(' ')} }`;
    expect((await api.post('/graphql', { query: folds('7m') })).status).toBe(400);
    expect((await api.post('/graphql', { query: folds('1h') })).status).toBe(200);
  });

  it('GraphQL subscription: live readings for the topics asked (graphql-transport-ws), with credentials only', async () => {
    const url = `ws://127.0.0.1:${agent.port('http')}/graphql`;
    const refused = new WebSocket(url, 'graphql-transport-ws');
    const status = await new Promise<number>((r) =>
      refused.once('unexpected-response', (req, res) => {
        req.destroy();
        r(res.statusCode!);
      }),
    );
    expect(status).toBe(401);
    const ws = new WebSocket(url, 'graphql-transport-ws', { headers: authHeader(api.creds) });
    const messages: { type: string; payload?: { data?: { readings: { topic: string; payload: unknown } } } }[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d))));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify({ type: 'connection_init' }));
    await until(() => messages.some((m) => m.type === 'connection_ack'));
    ws.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: 'subscription { readings(topics: ["climate/b"], fields: ["t"]) { topic payload } }' },
      }),
    );
    await new Promise((r) => setTimeout(r, 300));
    const mqtt = await connect(agent.mqttUrl);
    await mqtt.publishAsync('climate/c', JSON.stringify({ t: 1 }), { qos: 1 });
    await mqtt.publishAsync('climate/b', JSON.stringify({ t: 2, extra: 3 }), { qos: 1 });
    await until(() => messages.some((m) => m.type === 'next'));
    expect(messages.filter((m) => m.type === 'next').map((m) => m.payload!.data!.readings)).toEqual([
      { topic: 'climate/b', payload: { t: 2 } },
    ]);
    await mqtt.endAsync();
    ws.close();
  });
});
