// Alerts: thresholds with hysteresis and a minimum duration (an injected clock), the agent's own
// conditions, a webhook that fails and then recovers, and the retained MQTT message of a running agent.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AlertEngine, webhookPoster, type Alert } from '../../agent/health/alerts.js';
import { cleanup, startAgent } from '../helpers/agent.js';
import { collect, connect } from '../helpers/mqtt.js';
import { adminClient } from '../helpers/web.js';

const quiet = pino({ level: 'silent' });
const base = {
  topic: '$SYS/edge-agent/alerts',
  intervalSec: 5,
  sinkDownMinutes: 5,
  diskPressure: 'act' as const,
  clockUnsynchronised: true,
};

describe('alert engine', () => {
  it('fires past the threshold once it has held forSec, and resolves only back past clearAt', () => {
    let now = 0;
    const published: [string, string][] = [];
    const engine = new AlertEngine(
      { ...base, rules: [{ name: 'hot', value: 'system.temperatureC', above: 80, clearAt: 75, forSec: 30 }] },
      { publish: (t, p) => published.push([t, p]) },
      quiet,
      () => now,
    );
    const at = (t: number, temperatureC: number) => {
      now = t * 1000;
      engine.evaluate({ 'system.temperatureC': temperatureC }, new Map());
      return engine.active().map((a) => a.name);
    };
    expect(at(0, 85)).toEqual([]); // not yet 30 s
    expect(at(20, 70)).toEqual([]); // a dip restarts the count
    expect(at(25, 82)).toEqual([]);
    expect(at(50, 83)).toEqual([]);
    expect(at(55, 81)).toEqual(['hot']); // held since 25 s
    expect(at(60, 78)).toEqual(['hot']); // below 80 but not below 75: still firing (hysteresis)
    expect(at(65, 74)).toEqual([]);
    expect(at(70, 79)).toEqual([]); // above clearAt, below the threshold: stays resolved
    expect(published.map(([t, p]) => [t, p ? JSON.parse(p).state : ''])).toEqual([
      ['$SYS/edge-agent/alerts/hot', 'firing'],
      ['$SYS/edge-agent/alerts/hot', ''],
    ]);
    expect(engine.history.map((a) => [a.state, a.value])).toEqual([
      ['firing', 81],
      ['resolved', 74],
    ]);
  });

  it('a below rule, and conditions the agent raises: on while raised, resolved when gone', () => {
    let now = 0;
    const engine = new AlertEngine(
      { ...base, rules: [{ name: 'low-memory', value: 'system.memoryAvailableBytes', below: 100e6, forSec: 0 }] },
      { publish: () => {} },
      quiet,
      () => now,
    );
    engine.evaluate({ 'system.memoryAvailableBytes': 50e6 }, new Map([['sensor-stale:clientId:a', { message: 'silent' }]]));
    expect(
      engine
        .active()
        .map((a) => a.name)
        .sort(),
    ).toEqual(['low-memory', 'sensor-stale:clientId:a']);
    now += 1000;
    engine.evaluate({ 'system.memoryAvailableBytes': 500e6 }, new Map());
    expect(engine.active()).toEqual([]);
    expect(
      engine.history
        .filter((a) => a.state === 'resolved')
        .map((a) => a.name)
        .sort(),
    ).toEqual(['low-memory', 'sensor-stale:clientId:a']);
  });

  it('delivers to a webhook that fails for a while, in order, without holding up evaluation', async () => {
    const got: Alert[] = [];
    let failures = 3;
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (failures-- > 0) return res.writeHead(503).end();
        got.push(JSON.parse(body) as Alert);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const engine = new AlertEngine(
        { ...base, rules: [], webhook: { url, timeoutMs: 1000, retryInitialMs: 20, retryMaxMs: 50 } },
        { publish: () => {}, post: webhookPoster(url, 1000) },
        quiet,
      );
      engine.evaluate({}, new Map([['a', { message: 'first' }]]));
      engine.evaluate(
        {},
        new Map([
          ['a', { message: 'first' }],
          ['b', { message: 'second' }],
        ]),
      );
      engine.evaluate({}, new Map());
      expect(engine.webhookBacklog).toBeGreaterThan(0); // evaluation did not wait for the webhook: the alerts wait in its queue
      for (let i = 0; i < 100 && (got.length < 4 || engine.webhookBacklog > 0); i++) await new Promise((r) => setTimeout(r, 50));
      expect(got.map((a) => `${a.name} ${a.state}`)).toEqual(['a firing', 'b firing', 'a resolved', 'b resolved']);
      expect(failures).toBe(-1 - 3); // three refused, then four delivered
      expect(engine.webhookBacklog).toBe(0);
    } finally {
      server.close();
    }
  });
});

describe('alerts in a running agent', () => {
  it('a stale sensor raises a retained alert on $SYS/edge-agent/alerts, in /api/alerts and the metrics; publishing clears it', async () => {
    const agent = await startAgent({
      health: {
        sensors: [{ topics: ['farm/#'], expectedIntervalSec: 0.3, staleAfter: 2 }],
        alerts: { intervalSec: 1, clockUnsynchronised: false },
      },
    });
    try {
      const api = adminClient(agent);
      const sensor = await connect(agent.mqttUrl, { clientId: 'barn-1' });
      await sensor.publishAsync('farm/barn', JSON.stringify({ t: 1 }), { qos: 1 });
      let active: { name: string }[] = [];
      for (let i = 0; i < 100 && !active.length; i++) {
        await new Promise((r) => setTimeout(r, 100));
        active = (await api.get('/api/alerts')).body.active;
      }
      expect(active.map((a) => a.name)).toEqual(['sensor-stale:clientId:barn-1']);
      // A subscriber that comes later gets the alert, retained.
      const watcher = await connect(agent.mqttUrl);
      const retained = collect(watcher, 1);
      await watcher.subscribeAsync('$SYS/edge-agent/alerts/#');
      const [msg] = await retained;
      expect(msg).toMatchObject({ topic: '$SYS/edge-agent/alerts/sensor-stale:clientId:barn-1', retain: true });
      expect(JSON.parse(msg.payload)).toMatchObject({ state: 'firing', message: expect.stringMatching(/silent since/) });
      expect((await api.get('/metrics')).body).toMatch(/^alerts_firing\{alert="sensor-stale:clientId:barn-1"\} 1$/m);
      const cleared = collect(watcher, 1, 5000);
      // Publishing again, and often enough to stay ok (0.3 s expected, stale after 2).
      const publishing = setInterval(() => void sensor.publishAsync('farm/barn', JSON.stringify({ t: 2 }), { qos: 1 }), 100);
      expect((await cleared).map((m) => [m.topic, m.payload])).toEqual([['$SYS/edge-agent/alerts/sensor-stale:clientId:barn-1', '']]);
      clearInterval(publishing);
      expect((await api.get('/api/alerts')).body.recent.map((a: Alert) => a.state)).toEqual(['firing', 'resolved']);
      await sensor.endAsync();
      await watcher.endAsync();
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});
