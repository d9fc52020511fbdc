// Alerts: rules on health values (a threshold with hysteresis and a minimum duration), and the
// agent's own conditions (a stale sensor, a sink down too long, disk pressure, an unsynchronised
// clock). Each firing and resolution goes to the log, to a retained MQTT message, to the API, and
// to an optional webhook that is retried in the background and never holds up anything else.
import type { Logger } from '../lib/logger.js';
import { Backoff } from '../lib/backoff.js';
import type { HealthConfig } from './config.js';
import { redactUrlsIn } from '../config/redact-url.js';

type AlertConfig = HealthConfig['alerts'];
export type ThresholdRule = AlertConfig['rules'][number];

/** Named values rules may watch (undefined: not known now). */
export type Values = Record<string, number | undefined>;

/** Conditions the agent raises itself, by alert name (e.g. `sensor-stale:clientId:pi-01`). */
export type Conditions = Map<string, { message: string; value?: number }>;

export interface Alert {
  name: string;
  state: 'firing' | 'resolved';
  message: string;
  value?: number;
  since: string;
}

export interface AlertSinks {
  /** Publish retained on `<topic>/<name>`; an empty payload clears it. */
  publish(topic: string, payload: string): void;
  /** POST the alert as JSON; rejects on failure (it is retried). */
  post?(alert: Alert): Promise<void>;
}

interface Pending {
  /** When the condition first held in its current run; 0: not holding. */
  holdingSince: number;
  alert?: Alert;
}

export class AlertEngine {
  private readonly pending = new Map<string, Pending>();
  private readonly webhookQueue: Alert[] = [];
  private sending = false;
  readonly history: Alert[] = [];

  constructor(
    private readonly config: AlertConfig,
    private readonly sinks: AlertSinks,
    private readonly logger: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Alerts firing now. */
  active(): Alert[] {
    return [...this.pending.values()].flatMap((p) => (p.alert?.state === 'firing' ? [p.alert] : []));
  }

  /** Look at the values and conditions of now; fire and resolve what changed. */
  evaluate(values: Values, conditions: Conditions): void {
    for (const rule of this.config.rules) this.threshold(rule, values[rule.value]);
    for (const [name, c] of conditions) this.hold(name, true, 0, c.message, c.value);
    // A condition no longer raised has ended.
    for (const [name, p] of this.pending) {
      if (this.config.rules.some((r) => r.name === name)) continue;
      if (!conditions.has(name) && p.alert?.state === 'firing') this.hold(name, false, 0, p.alert.message);
      if (!conditions.has(name) && p.alert?.state !== 'firing') this.pending.delete(name);
    }
  }

  /** Hysteresis: fires beyond the threshold, resolves only once back past `clearAt`. */
  private threshold(rule: ThresholdRule, value: number | undefined): void {
    const p = this.pending.get(rule.name);
    const firing = p?.alert?.state === 'firing';
    if (value === undefined) return;
    const above = rule.above !== undefined;
    const limit = (above ? rule.above : rule.below)!;
    const clearAt = rule.clearAt ?? limit;
    const beyond = above ? value > limit : value < limit;
    const cleared = above ? value < clearAt : value > clearAt;
    const holds = firing ? !cleared : beyond;
    const message = `${rule.value} is ${value} (${above ? 'above' : 'below'} ${limit})`;
    this.hold(rule.name, holds, rule.forSec, message, value);
  }

  /** The condition holds (or not) now: fire once it has held `forSec`, resolve once it does not. */
  private hold(name: string, holds: boolean, forSec: number, message: string, value?: number): void {
    const now = this.now();
    let p = this.pending.get(name);
    if (!p) this.pending.set(name, (p = { holdingSince: 0 }));
    const firing = p.alert?.state === 'firing';
    if (holds) {
      p.holdingSince ||= now;
      if (!firing && now - p.holdingSince >= forSec * 1000)
        this.change(p, { name, state: 'firing', message, value, since: new Date(now).toISOString() });
      else if (firing && p.alert) p.alert.value = value;
    } else {
      p.holdingSince = 0;
      if (firing) this.change(p, { name, state: 'resolved', message, value, since: new Date(now).toISOString() });
    }
  }

  private change(p: Pending, alert: Alert): void {
    p.alert = alert;
    this.history.push({ ...alert }); // as it was then: a firing alert's value keeps moving
    if (this.history.length > 200) this.history.shift();
    this.logger[alert.state === 'firing' ? 'warn' : 'info'](
      { alert: alert.name, value: alert.value },
      `alert ${alert.state}: ${alert.message}`,
    );
    const topic = `${this.config.topic}/${alert.name}`;
    try {
      this.sinks.publish(topic, alert.state === 'firing' ? JSON.stringify(alert) : '');
    } catch (err) {
      this.logger.warn({ err: (err as Error).message, topic }, 'alert not published over MQTT');
    }
    if (this.sinks.post) {
      this.webhookQueue.push(alert);
      void this.drain();
    }
  }

  /** Send the queued alerts in order, each retried with backoff until it goes; the queue is bounded. */
  private async drain(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    const backoff = new Backoff(this.config.webhook?.retryInitialMs ?? 1000, this.config.webhook?.retryMaxMs ?? 60_000);
    try {
      while (this.webhookQueue.length) {
        if (this.webhookQueue.length > 100) this.webhookQueue.splice(0, this.webhookQueue.length - 100);
        try {
          await this.sinks.post!(this.webhookQueue[0]);
          this.webhookQueue.shift();
          backoff.reset();
        } catch (err) {
          const waitMs = backoff.next();
          this.logger.warn({ err: redactUrlsIn((err as Error).message), retryInMs: waitMs }, 'alert webhook failed; retrying');
          await new Promise((r) => setTimeout(r, waitMs).unref());
        }
      }
    } finally {
      this.sending = false;
    }
  }

  /** Alerts not yet delivered to the webhook. */
  get webhookBacklog(): number {
    return this.webhookQueue.length;
  }
}

/** POST an alert to a webhook URL, with a timeout. */
export function webhookPoster(url: string, timeoutMs: number): (alert: Alert) => Promise<void> {
  return async (alert) => {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(alert),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!res.ok) throw new Error(`webhook answered HTTP ${res.status}`);
  };
}
