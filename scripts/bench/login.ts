// npm run bench -- login: a connected sensor's PUBACK latency, and a sensor's own login, while 64
// connections from 64 other addresses guess passwords as fast as they are answered, against the
// same sensor with no flood (the baseline, measured in the same run: a PUBACK waits for the group
// commit's window, so an absolute figure would measure that window, not the flood). The guessers
// run in a process of their own (guesser.ts), as they would on machines of their own.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { BENCH_USER, benchTopic, startBenchAgent } from './agent.js';
import { sensorPayload } from './load.js';
import { startProcess, stopAndCount } from './processes.js';
import { note, percentile, printTable } from './report.js';

const PHASE_MS = 10_000;
const SENSOR_RATE = 50;
const ATTACKERS = 64;
const LOGINS = 8;

/** The guessers, in a process of their own (scripts/bench/guesser.ts); they guess until stopped. */
const startGuessers = (port: number) =>
  startProcess([fileURLToPath(new URL('./guesser.js', import.meta.url)), String(port), String(ATTACKERS)]);

/** PUBACK latencies of a sensor publishing QoS 1 at SENSOR_RATE/s for `ms`. */
async function sensorLatencies(client: mqtt.MqttClient, ms: number): Promise<number[]> {
  const latencies: number[] = [];
  const sent: Promise<void>[] = [];
  const end = Date.now() + ms;
  for (let i = 0; Date.now() < end; i++) {
    const t0 = performance.now();
    sent.push(client.publishAsync(benchTopic(0), sensorPayload(), { qos: 1 }).then(() => void latencies.push(performance.now() - t0)));
    await new Promise((r) => setTimeout(r, 1000 / SENSOR_RATE));
  }
  await Promise.all(sent);
  return latencies;
}

/** Times of LOGINS fresh logins of the sensor's user (CONNECT to CONNACK 0), one after another; `failed` counts the others. */
async function loginTimes(port: number): Promise<{ times: number[]; failed: string[] }> {
  const times: number[] = [];
  const failed: string[] = [];
  for (let i = 0; i < LOGINS; i++) {
    const t0 = performance.now();
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      username: BENCH_USER.name,
      password: BENCH_USER.password,
      clientId: `bench-login-${i}`,
      reconnectPeriod: 0,
      connectTimeout: 30_000,
    });
    const outcome = await new Promise<string | undefined>((resolve) => {
      client.once('connect', () => resolve(undefined));
      client.on('error', (err) => resolve(err.message));
      client.once('close', () => resolve('closed before CONNACK'));
    });
    if (outcome) failed.push(outcome);
    else times.push(performance.now() - t0);
    await client.endAsync(true);
  }
  return { times, failed };
}

export async function benchLogin(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-login-'));
  const agent = await startBenchAgent(dir);
  try {
    const port = agent.port('mqtt');
    const sensor = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      username: BENCH_USER.name,
      password: BENCH_USER.password,
      clientId: 'bench-sensor',
      reconnectPeriod: 0,
    });
    await sensorLatencies(sensor, 2000); // warm-up
    const [quiet, quietLogins] = await Promise.all([sensorLatencies(sensor, PHASE_MS), loginTimes(port)]);
    const guessers = await startGuessers(port);
    const [flooded, floodedLogins] = await Promise.all([sensorLatencies(sensor, PHASE_MS), loginTimes(port)]);
    const counts = await stopAndCount(guessers);
    await sensor.endAsync();
    const attempts = Object.values(counts).reduce((a, b) => a + b, 0);
    const during = (name: string, noFlood: number[], flood: number[], q: number, target: number) => ({
      name,
      baselineName: 'no flood',
      baseline: percentile(noFlood, q),
      value: flood.length ? percentile(flood, q) : Infinity, // every login failed
      target,
      higherIsBetter: false,
    });
    printTable(
      `login flood: a sensor publishing QoS 1 at ${SENSOR_RATE}/s and logging in ${LOGINS} times, while ${ATTACKERS} connections from ${ATTACKERS} addresses guess passwords, against the same with no flood (${PHASE_MS / 1000} s each); times in ms`,
      [
        during('sensor PUBACK p50 during the flood', quiet, flooded, 50, 0.8),
        during('sensor PUBACK p99 during the flood', quiet, flooded, 99, 0.8),
        during(`sensor login, median of ${LOGINS}, during the flood`, quietLogins.times, floodedLogins.times, 50, 0.5),
        during(`sensor login, slowest of ${LOGINS}, during the flood`, quietLogins.times, floodedLogins.times, 100, 0.5),
      ],
    );
    const answers = Object.entries(counts)
      .sort(([, a], [, b]) => b - a)
      .map(([k, v]) => `${k}: ${v}`)
      .join(', ');
    const failures = [...quietLogins.failed.map((f) => `no flood: ${f}`), ...floodedLogins.failed.map((f) => `flood: ${f}`)];
    note(`sensor logins that failed: ${failures.length ? failures.join('; ') : 'none'}`);
    note(
      `\nguesses answered: ${attempts} (${Math.round(attempts / (PHASE_MS / 1000))}/s): ${answers} (CONNACK 4 = password checked and wrong, 5 = banned, no check)`,
    );
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
