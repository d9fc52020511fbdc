// GPIO through the simulated driver (this machine has no GPIO; the simulated driver stands behind
// the same GpioDriver interface as the onoff one): chip bases read from a fake sysfs tree (the 512
// offset of Raspberry Pi OS kernels 6.6+), debounced edges that become readings through ingest,
// the status LED's patterns per state, the alarm output, and the power-fail input.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, afterAll, describe, expect, it, vi } from 'vitest';
import { GpioChipError, listChips, pickChip, sysfsNumber } from '../../agent/gpio/chip.js';
import { openInput } from '../../agent/gpio/inputs.js';
import { LED_PATTERNS, ledState, StatusLed } from '../../agent/gpio/led.js';
import { SimulatedGpio } from '../../agent/gpio/index.js';
import { loadConfig } from '../../agent/config-schema.js';
import { cleanup, startAgent, tempDir, writeConfig, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { until } from '../helpers/servers.js';
import { adminClient } from '../helpers/web.js';

/** A sysfs tree as a Pi 4 on a 6.6 kernel shows it: the header chip at 512, the expander after it. */
function fakeSysfs(chips: { name: string; label: string; base: number; ngpio: number }[]): string {
  const root = tempDir();
  for (const c of chips) {
    const dir = join(root, 'class/gpio', c.name);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'label'), `${c.label}\n`);
    writeFileSync(join(dir, 'base'), `${c.base}\n`);
    writeFileSync(join(dir, 'ngpio'), `${c.ngpio}\n`);
  }
  writeFileSync(join(root, 'class/gpio/export'), '');
  return root;
}

describe('GPIO chips', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach(cleanup));

  it('finds the header chip by label and adds its base (512 on 6.6+ kernels, 0 before, 571 on a Pi 5)', () => {
    const pi4 = fakeSysfs([
      { name: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 },
      { name: 'gpiochip570', label: 'raspberrypi-exp-gpio', base: 570, ngpio: 8 },
    ]);
    const old = fakeSysfs([
      { name: 'gpiochip0', label: 'pinctrl-bcm2835', base: 0, ngpio: 54 },
      { name: 'gpiochip504', label: 'raspberrypi-exp-gpio', base: 504, ngpio: 8 },
    ]);
    const pi5 = fakeSysfs([
      { name: 'gpiochip512', label: 'gpio-brcmstb@107d508500', base: 512, ngpio: 32 },
      { name: 'gpiochip571', label: 'pinctrl-rp1', base: 571, ngpio: 54 },
    ]);
    dirs.push(pi4, old, pi5);
    expect(sysfsNumber(pickChip(listChips(pi4), 'auto'), 17)).toBe(529);
    expect(sysfsNumber(pickChip(listChips(old), 'auto'), 17)).toBe(17);
    expect(sysfsNumber(pickChip(listChips(pi5), 'auto'), 17)).toBe(588);
    expect(sysfsNumber(pickChip(listChips(pi4), 'raspberrypi-exp-gpio'), 2)).toBe(572);
    expect(listChips(pi4).map((c) => c.name)).toEqual(['gpiochip512', 'gpiochip570']);
    // Errors name what is wrong and what there is.
    expect(() => sysfsNumber(pickChip(listChips(pi4), 'raspberrypi-exp-gpio'), 8)).toThrow(/line 8: raspberrypi-exp-gpio has lines 0-7/);
    expect(() => pickChip(listChips(pi4), 'nope')).toThrow(
      /gpio.chip: no GPIO chip is labelled nope; there are: pinctrl-bcm2711 \(gpiochip512\)/,
    );
    expect(() => listChips(join(pi4, 'missing'))).toThrow(GpioChipError);
  });

  it('refuses a config that uses a line twice or names two inputs alike, naming the key', () => {
    const dir = tempDir();
    dirs.push(dir);
    const path = writeConfig(dir, {
      gpio: {
        driver: 'simulated',
        inputs: [
          { name: 'door', line: 17 },
          { name: 'door', line: 27 },
        ],
        statusLed: { line: 27 },
      },
    });
    expect(() => loadConfig(path, {})).toThrow(
      /gpio\.inputs\[1\]\.name: another input is named door[\s\S]*gpio\.statusLed\.line: line 27 is also gpio\.inputs\[1\]\.line/,
    );
  });
});

describe('debounced inputs', () => {
  afterEach(() => vi.useRealTimers());

  it('reports a change once the line has kept its level for debounceMs; bounces count as nothing; active-low inverts', () => {
    vi.useFakeTimers();
    const gpio = new SimulatedGpio();
    const seen: [number, string][] = [];
    const input = openInput(gpio, { line: 4, activeLow: true, debounceMs: 20, edge: 'both' }, (v, e) => seen.push([v, e]));
    expect(input.value).toBe(1); // line low, active-low: active
    // A bouncing contact: high-low-high within 20 ms, then high for good.
    gpio.set(4, 1);
    vi.advanceTimersByTime(5);
    gpio.set(4, 0);
    vi.advanceTimersByTime(5);
    gpio.set(4, 1);
    vi.advanceTimersByTime(19);
    expect(seen).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(seen).toEqual([[0, 'falling']]);
    // A glitch that comes back within debounceMs reports nothing.
    gpio.set(4, 0);
    vi.advanceTimersByTime(3);
    gpio.set(4, 1);
    vi.advanceTimersByTime(50);
    expect(seen).toEqual([[0, 'falling']]);
    gpio.set(4, 0);
    vi.advanceTimersByTime(20);
    expect(seen).toEqual([
      [0, 'falling'],
      [1, 'rising'],
    ]);
    input.close();
  });

  it('reports only the edge asked for', () => {
    const gpio = new SimulatedGpio();
    const seen: string[] = [];
    openInput(gpio, { line: 5, activeLow: false, debounceMs: 0, edge: 'rising' }, (_v, e) => seen.push(e));
    gpio.set(5, 1);
    gpio.set(5, 0);
    gpio.set(5, 1);
    expect(seen).toEqual(['rising', 'rising']);
  });
});

describe('status LED', () => {
  afterEach(() => vi.useRealTimers());

  it('derives its state: error > offline with a backlog > degraded > ok', () => {
    const ok = {
      parts: [
        { name: 'log', state: 'ok' },
        { name: 'sink:cloud', state: 'retrying' },
      ],
      sinks: [{ state: 'ok', lagRecords: 0 }],
      alertsFiring: 0,
    };
    expect(ledState(ok)).toBe('ok');
    expect(ledState({ ...ok, alertsFiring: 1 })).toBe('degraded');
    expect(ledState({ ...ok, sinks: [{ state: 'retrying', lagRecords: 0 }] })).toBe('degraded');
    expect(ledState({ ...ok, sinks: [{ state: 'down', lagRecords: 12 }] })).toBe('offline');
    expect(
      ledState({ ...ok, sinks: [{ state: 'down', lagRecords: 12 }], parts: [{ name: 'disk', state: 'refusing: disk pressure critical' }] }),
    ).toBe('error');
  });

  it('has one pattern per state a person can tell apart', () => {
    expect(LED_PATTERNS).toEqual({
      ok: [[1, 1000]],
      degraded: [
        [1, 1000],
        [0, 1000],
      ],
      offline: [
        [1, 150],
        [0, 150],
        [1, 150],
        [0, 1050],
      ],
      error: [
        [1, 100],
        [0, 100],
      ],
    });
  });

  it("plays each state's pattern on its line, active-low inverted, writing only changes", () => {
    vi.useFakeTimers();
    const gpio = new SimulatedGpio();
    const led = new StatusLed(gpio.output(18, 0), false);
    const levels = () => gpio.written.get(18)!.map((w) => w.level);
    vi.advanceTimersByTime(5000);
    expect(levels()).toEqual([0, 1]); // steady on: one write, none after
    for (const state of ['degraded', 'offline', 'error'] as const) {
      led.set('ok');
      vi.advanceTimersByTime(1000);
      gpio.written.get(18)!.length = 0;
      led.set(state);
      const period = LED_PATTERNS[state].reduce((n, [, ms]) => n + ms, 0);
      vi.advanceTimersByTime(2 * period - 1);
      // Two periods of the pattern: it starts on (already on: no write), then each change of level at its step's end.
      const writes = gpio.written.get(18)!;
      const steps = [...LED_PATTERNS[state], ...LED_PATTERNS[state]];
      const ends = steps.map((_, i) => steps.slice(0, i + 1).reduce((n, [, ms]) => n + ms, 0));
      const changes = steps.slice(1).flatMap(([level], i) => (level !== steps[i][0] ? [{ level, after: ends[i] }] : []));
      const start = writes.length ? writes[0].at - changes[0].after : 0;
      expect(
        writes.map((w) => ({ level: w.level, after: w.at - start })),
        state,
      ).toEqual(changes);
    }
    const inverted = new StatusLed(gpio.output(19, 1), true);
    expect(gpio.level(19)).toBe(0); // on = low
    inverted.close();
    expect(gpio.level(19)).toBe(1);
    led.close();
  });
});

describe('GPIO in a running agent', () => {
  const gpio = new SimulatedGpio();
  let agent: InProcessAgent;
  /** Each shutdown asked for, with how much of what was taken was on disk at that moment. */
  const shutdowns: { reason: string; committed: number; taken: number }[] = [];

  beforeAll(async () => {
    agent = await startAgent(
      {
        store: { gatherMs: 20 },
        ingest: {
          schemas: [{ name: 'door', topics: ['gpio/door'], fields: { value: { type: 'integer', required: true }, edge: 'string' } }],
        },
        health: { alerts: { intervalSec: 1, sinkDownMinutes: 0, clockUnsynchronised: false } },
        // A sink that cannot connect: the LED shows offline once readings wait for it.
        sinks: [
          {
            name: 'cloud',
            type: 'postgres',
            url: 'postgres://edge@127.0.0.1:9/x',
            retry: { initialMs: 100, maxMs: 200 },
            batch: { maxAgeMs: 20 },
          },
        ],
        gpio: {
          driver: 'simulated',
          inputs: [
            { name: 'door', line: 17, debounceMs: 10 },
            { name: 'button', line: 27, edge: 'falling', activeLow: true, debounceMs: 0, topic: 'panel/button' },
          ],
          statusLed: { line: 18 },
          alarm: { line: 23, alerts: ['sink-down:*'] },
          powerFail: { line: 6, debounceMs: 10 },
        },
      },
      tempDir(),
      {
        gpioDriver: gpio,
        shutdown: (reason) => shutdowns.push({ reason, committed: agent.runtime.log.lastSeq, taken: agent.runtime.ingestStats.accepted }),
      },
    );
  });
  afterAll(async () => {
    await agent?.stop();
    if (agent) cleanup(agent.dir);
  });

  it('turns edges into readings through ingest, seen by MQTT subscribers, stored, in the API', async () => {
    const sub = await connect(agent.mqttUrl);
    const got: string[] = [];
    sub.on('message', (topic, payload) => got.push(`${topic} ${payload.toString()}`));
    await sub.subscribeAsync(['gpio/#', 'panel/#']);
    try {
      gpio.set(17, 1);
      gpio.set(27, 1); // active-low: it was active (level 0); going high is its falling edge
      await until(() => got.length === 2, 10_000, 'two GPIO readings on MQTT');
      expect(got.sort()).toEqual(['gpio/door {"value":1,"edge":"rising"}', 'panel/button {"value":0,"edge":"falling"}']);
      gpio.set(27, 0); // rising: not asked for
      gpio.set(17, 0);
      await until(() => got.length === 3, 10_000, 'the door closing');
      expect(got[2]).toBe('gpio/door {"value":0,"edge":"falling"}');
    } finally {
      await sub.endAsync();
    }
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    const stored = await agent.runtime.store!.target.query({ topic: 'gpio/door', order: 'asc' });
    expect(stored.map((r) => [r.payload, r.schema, r.clientId])).toEqual([
      [{ value: 1, edge: 'rising' }, 'door@1', 'gpio'],
      [{ value: 0, edge: 'falling' }, 'door@1', 'gpio'],
    ]);
    const health = (await adminClient(agent).get('/api/health')).body;
    expect(health.gpio).toMatchObject({
      driver: 'simulated (no hardware)',
      inputs: [
        { name: 'door', line: 17, value: 0, changes: 2 },
        { name: 'button', line: 27 },
      ],
    });
  });

  it("drives the status LED and the alarm from the agent's state", async () => {
    // The sink cannot connect and readings wait for it: offline, and the sink-down alert sounds the alarm.
    await until(
      () => agent.runtime.sync.status().then(([s]) => s.state !== 'ok' && s.lagRecords > 0),
      10_000,
      'the sink failing with a backlog',
    );
    const status = async () => (await adminClient(agent).get('/api/health')).body.gpio as { statusLed: string; alarm: boolean };
    await until(async () => (await status()).statusLed === 'offline', 10_000, 'the LED showing offline');
    await until(async () => (await status()).alarm === true, 10_000, 'the alarm on');
    expect(gpio.level(23)).toBe(1);
    // The LED plays the double blink: its line keeps changing level.
    const history = gpio.written.get(18)!;
    const from = history.length;
    await until(() => history.length - from >= 6, 10_000, 'six changes of the LED line');
  });

  it('flushes the log and shuts down when the power-fail input becomes active', async () => {
    expect(shutdowns).toEqual([]);
    const mqtt = await connect(agent.mqttUrl);
    for (let i = 0; i < 50; i++) mqtt.publish('env/late', JSON.stringify({ i }), { qos: 0 });
    await until(() => agent.runtime.ingestStats.accepted >= 53, 10_000, 'the QoS 0 readings taken');
    gpio.set(6, 1);
    await until(() => shutdowns.length === 1, 10_000, 'shutdown asked for');
    // Asked only once everything taken was committed (seqs count from 1; each taken reading has one).
    expect(shutdowns[0].reason).toBe('power fail');
    expect(shutdowns[0].taken).toBeGreaterThanOrEqual(53);
    expect(shutdowns[0].committed).toBe(shutdowns[0].taken);
    expect((await adminClient(agent).get('/api/health')).body.gpio.powerFail).toBe('failing');
    gpio.set(6, 0);
    gpio.set(6, 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(shutdowns).toHaveLength(1); // once
    await mqtt.endAsync();
  });
});
