// Sensors watched for silence: per topic pattern an expected interval; a sensor (a client id, or a
// topic) silent for staleAfter intervals becomes `stale`, and `ok` again when it publishes. Per
// sensor: last seen, readings, rate, refused readings. The hot path is a map lookup per reading.
import { topicMatches } from '../../mqtt-topic/topic.js';
import type { HealthConfig } from './config.js';

type Rule = HealthConfig['sensors'][number];

export interface SensorStatus {
  /** `clientId:<id>` or `topic:<topic>`. */
  sensor: string;
  /** The pattern of the rule that watches it. */
  rule: string;
  state: 'ok' | 'stale';
  since: string;
  lastSeen: string;
  readings: number;
  /** Readings per minute, over the recent past (smoothed). */
  perMinute: number;
  /** Readings refused (dead-lettered) from it. */
  refused: number;
}

export interface SensorChange {
  sensor: string;
  state: 'ok' | 'stale';
  silentSec: number;
}

interface Sensor {
  rule: Rule;
  firstSeen: number;
  lastSeen: number;
  readings: number;
  refused: number;
  /** readings at the last tick, for the rate. */
  countedAt: number;
  counted: number;
  perMinute: number;
  state: 'ok' | 'stale';
  since: number;
}

/** The rate is smoothed over this many expected intervals (at least a minute). */
const RATE_INTERVALS = 10;

export class SensorWatch {
  private readonly sensors = new Map<string, Sensor>();
  /** Topic -> its rule (null: none), memoised: sensors publish to a handful of topics. */
  private readonly ruleOf = new Map<string, Rule | null>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly rules: Rule[],
    private readonly onChange: (change: SensorChange) => void,
    private readonly now: () => number = Date.now,
  ) {}

  get watching(): boolean {
    return this.rules.length > 0;
  }

  private rule(topic: string): Rule | null {
    let rule = this.ruleOf.get(topic);
    if (rule === undefined) {
      rule = this.rules.find((r) => r.topics.some((t) => topicMatches(t, topic))) ?? null;
      if (this.ruleOf.size > 10_000) this.ruleOf.clear();
      this.ruleOf.set(topic, rule);
    }
    return rule;
  }

  private sensor(topic: string, clientId: string): { key: string; s: Sensor } | undefined {
    const rule = this.rule(topic);
    if (!rule) return undefined;
    const key = rule.by === 'topic' ? `topic:${topic}` : `clientId:${clientId}`;
    let s = this.sensors.get(key);
    if (!s) {
      const now = this.now();
      this.sensors.set(
        key,
        (s = {
          rule,
          firstSeen: now,
          lastSeen: now,
          readings: 0,
          refused: 0,
          countedAt: now,
          counted: 0,
          perMinute: 0,
          state: 'ok',
          since: now,
        }),
      );
    }
    return { key, s };
  }

  /** A reading was taken from this sensor. */
  seen(topic: string, clientId: string): void {
    const found = this.sensor(topic, clientId);
    if (!found) return;
    const { key, s } = found;
    s.readings++;
    s.lastSeen = this.now();
    if (s.state === 'stale') this.enter(key, s, 'ok');
  }

  /** A reading from this sensor was refused (dead-lettered); it still shows the sensor is alive. */
  refused(topic: string, clientId: string): void {
    const found = this.sensor(topic, clientId);
    if (!found) return;
    found.s.refused++;
    found.s.lastSeen = this.now();
    if (found.s.state === 'stale') this.enter(found.key, found.s, 'ok');
  }

  /** Mark the silent ones stale and update the rates; run every tickMs by start(). */
  tick(): void {
    const now = this.now();
    for (const [key, s] of this.sensors) {
      const elapsed = now - s.countedAt;
      if (elapsed > 0) {
        // The average since first seen until a time constant has passed, then a moving average with it.
        const tau = Math.max(60_000, s.rule.expectedIntervalSec * 1000 * RATE_INTERVALS);
        const age = now - s.firstSeen;
        const recent = ((s.readings - s.counted) / elapsed) * 60_000;
        s.perMinute = age <= tau ? (s.readings / age) * 60_000 : s.perMinute + (1 - Math.exp(-elapsed / tau)) * (recent - s.perMinute);
        s.counted = s.readings;
        s.countedAt = now;
      }
      const silentMs = now - s.lastSeen;
      if (s.state === 'ok' && silentMs > s.rule.expectedIntervalSec * s.rule.staleAfter * 1000) this.enter(key, s, 'stale');
    }
  }

  private enter(key: string, s: Sensor, state: 'ok' | 'stale'): void {
    s.state = state;
    s.since = this.now();
    this.onChange({ sensor: key, state, silentSec: Math.round((this.now() - s.lastSeen) / 1000) });
  }

  start(): void {
    if (!this.watching) return;
    const tickMs = Math.max(250, Math.min(5000, (Math.min(...this.rules.map((r) => r.expectedIntervalSec)) * 1000) / 2));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  status(): SensorStatus[] {
    return [...this.sensors].map(([sensor, s]) => ({
      sensor,
      rule: s.rule.topics.join(' '),
      state: s.state,
      since: new Date(s.since).toISOString(),
      lastSeen: new Date(s.lastSeen).toISOString(),
      readings: s.readings,
      perMinute: Math.round(s.perMinute * 10) / 10,
      refused: s.refused,
    }));
  }
}
