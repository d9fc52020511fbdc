// Sensors watched for silence: stale after staleAfter expected intervals, ok again on the next
// reading; per sensor readings, rate and refused readings; in the API, the metrics and the CLI.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SensorWatch, type SensorChange } from '../../agent/health/sensors.js';
import { CLI, cleanup, startAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { adminClient } from '../helpers/web.js';

const run = promisify(execFile);

describe('sensor watch', () => {
  it('goes stale after staleAfter intervals of silence and ok on the next reading; by client or by topic', () => {
    let now = 1_000_000;
    const changes: SensorChange[] = [];
    const watch = new SensorWatch(
      [
        { topics: ['rooms/#'], expectedIntervalSec: 10, staleAfter: 3, by: 'clientId' },
        { topics: ['meters/+'], expectedIntervalSec: 60, staleAfter: 2, by: 'topic' },
      ],
      (c) => changes.push(c),
      () => now,
    );
    watch.seen('rooms/kitchen', 'pi-a');
    watch.seen('rooms/hall', 'pi-b');
    watch.seen('meters/1', 'gateway');
    watch.seen('meters/2', 'gateway');
    watch.seen('elsewhere/x', 'pi-c'); // no rule: not watched
    now += 29_000;
    watch.seen('rooms/hall', 'pi-b');
    watch.tick();
    expect(changes).toEqual([]); // 29 s of silence is within 3 x 10 s
    now += 2_000;
    watch.tick();
    expect(changes).toEqual([{ sensor: 'clientId:pi-a', state: 'stale', silentSec: 31 }]);
    watch.tick();
    expect(changes).toHaveLength(1); // said once
    now += 90_000;
    watch.seen('meters/1', 'gateway');
    watch.tick();
    expect(changes.slice(1)).toEqual([
      { sensor: 'clientId:pi-b', state: 'stale', silentSec: 92 },
      { sensor: 'topic:meters/2', state: 'stale', silentSec: 121 },
    ]);
    watch.refused('rooms/kitchen', 'pi-a'); // a refused reading still shows it alive
    expect(changes.at(-1)).toEqual({ sensor: 'clientId:pi-a', state: 'ok', silentSec: 0 });
    const status = Object.fromEntries(watch.status().map((s) => [s.sensor, s]));
    expect(Object.keys(status).sort()).toEqual(['clientId:pi-a', 'clientId:pi-b', 'topic:meters/1', 'topic:meters/2']);
    expect(status['clientId:pi-a']).toMatchObject({ state: 'ok', readings: 1, refused: 1, rule: 'rooms/#' });
    expect(status['topic:meters/1']).toMatchObject({ state: 'ok', readings: 2 });
  });

  it("measures each sensor's rate", () => {
    let now = 0;
    const watch = new SensorWatch(
      [{ topics: ['#'], expectedIntervalSec: 1, staleAfter: 3, by: 'clientId' }],
      () => {},
      () => now,
    );
    for (let t = 0; t < 60; t++) {
      for (let i = 0; i < 2; i++) watch.seen('a', 'fast');
      if (t % 10 === 0) watch.seen('b', 'slow');
      now += 1000;
      watch.tick();
    }
    const rate = Object.fromEntries(watch.status().map((s) => [s.sensor, s.perMinute]));
    expect(rate['clientId:fast']).toBeCloseTo(120, -1);
    expect(rate['clientId:slow']).toBeGreaterThan(2);
    expect(rate['clientId:slow']).toBeLessThan(12);
  });

  it('in a running agent: stale and back in /api/sensors, /api/health, the metrics and `edge-agent health`', async () => {
    const agent = await startAgent({
      health: { sensors: [{ topics: ['plant/#'], expectedIntervalSec: 0.5, staleAfter: 2 }] },
      ingest: { schemas: [{ name: 'p', topics: ['plant/#'], fields: { v: { type: 'float', required: true } } }] },
    });
    try {
      const api = adminClient(agent);
      const quiet = await connect(agent.mqttUrl, { clientId: 'quiet-one' });
      const busy = await connect(agent.mqttUrl, { clientId: 'busy-one' });
      await quiet.publishAsync('plant/a', JSON.stringify({ v: 1 }), { qos: 1 });
      await quiet.publishAsync('plant/a', JSON.stringify({ nope: 1 }), { qos: 1 }); // refused
      const state = async () =>
        Object.fromEntries(((await api.get('/api/sensors')).body as { sensor: string; state: string }[]).map((s) => [s.sensor, s.state]));
      // The busy one keeps publishing: the positive control for "stale" meaning silent, not "everything".
      let beat = 0;
      const heartbeat = setInterval(() => void busy.publishAsync('plant/b', JSON.stringify({ v: beat++ }), { qos: 1 }), 200);
      let seen: Record<string, string> = {};
      for (let i = 0; i < 100 && seen['clientId:quiet-one'] !== 'stale'; i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = await state();
      }
      expect(seen).toEqual({ 'clientId:quiet-one': 'stale', 'clientId:busy-one': 'ok' });
      const health = (await api.get('/api/health')).body;
      expect(health.sensors).toEqual({ ok: 1, stale: ['clientId:quiet-one'] });
      const metrics = (await api.get('/metrics')).body as string;
      expect(metrics).toMatch(/^sensor_stale\{sensor="clientId:quiet-one"\} 1$/m);
      expect(metrics).toMatch(/^sensor_validation_errors_total\{sensor="clientId:quiet-one"\} 1$/m);
      const { stdout } = await run(process.execPath, [CLI, '--config', agent.configPath, 'health']);
      expect(stdout).toMatch(/sensor clientId:quiet-one: stale since .*; 1 readings .*, 1 refused/);
      await quiet.publishAsync('plant/a', JSON.stringify({ v: 2 }), { qos: 1 });
      expect((await state())['clientId:quiet-one']).toBe('ok');
      clearInterval(heartbeat);
      await quiet.endAsync();
      await busy.endAsync();
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });
});
