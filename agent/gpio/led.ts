// The status LED: one pattern per state, so a person next to the Pi can tell at a glance. The state
// comes from the same reports as /health/ready, the sinks' status and the alerts.
import type { Level, OutputLine } from './driver.js';

export type LedState = 'ok' | 'degraded' | 'offline' | 'error';

/** Each pattern as (level, ms) steps, repeated. */
export const LED_PATTERNS: Record<LedState, readonly (readonly [Level, number])[]> = {
  ok: [[1, 1000]], // steady
  degraded: [
    [1, 1000],
    [0, 1000],
  ], // slow blink
  offline: [
    [1, 150],
    [0, 150],
    [1, 150],
    [0, 1050],
  ], // double blink: sinks unreachable, readings waiting
  error: [
    [1, 100],
    [0, 100],
  ], // fast blink
};

export interface LedInputs {
  /** Parts of the data path other than sinks (log, store, rollups, disk, broker), as readiness reports them. */
  parts: { name: string; state: string }[];
  sinks: { state: string; lagRecords: number }[];
  alertsFiring: number;
}

/** error: a part of the data path not working; offline: a sink failing with readings waiting; degraded: a sink failing or an alert firing. */
export function ledState({ parts, sinks, alertsFiring }: LedInputs): LedState {
  if (parts.some((p) => !p.name.startsWith('sink:') && p.state !== 'ok')) return 'error';
  const failing = sinks.filter((s) => s.state !== 'ok');
  if (failing.some((s) => s.lagRecords > 0)) return 'offline';
  if (failing.length || alertsFiring > 0) return 'degraded';
  return 'ok';
}

/** Plays the pattern of the current state on an output line; writes only on a change of level. */
export class StatusLed {
  private state: LedState = 'ok';
  private step = 0;
  private timer: NodeJS.Timeout | undefined;
  private level: Level | undefined;

  constructor(
    private readonly out: OutputLine,
    private readonly activeLow: boolean,
  ) {
    this.play();
  }

  get current(): LedState {
    return this.state;
  }

  set(state: LedState): void {
    if (state === this.state) return;
    this.state = state;
    this.step = 0;
    clearTimeout(this.timer);
    this.play();
  }

  private play(): void {
    const steps = LED_PATTERNS[this.state];
    const [on, ms] = steps[this.step % steps.length];
    this.step++;
    this.drive(on);
    this.timer = setTimeout(() => this.play(), ms);
    this.timer.unref();
  }

  private drive(on: Level): void {
    const level = (this.activeLow ? 1 - on : on) as Level;
    if (level === this.level) return;
    this.level = level;
    this.out.write(level);
  }

  close(): void {
    clearTimeout(this.timer);
    this.drive(0);
    this.out.close();
  }
}
