// Lines in memory, for machines without GPIO and for tests: inputs are driven by set(), outputs
// remember every level written, with when.
import type { GpioDriver, Level } from './driver.js';

export class SimulatedGpio implements GpioDriver {
  readonly description = 'simulated (no hardware)';
  private readonly levels = new Map<number, Level>();
  private readonly watchers = new Map<number, (level: Level) => void>();
  /** Per output line: each level written, and when (Date.now()). */
  readonly written = new Map<number, { level: Level; at: number }[]>();

  input(line: number, changed: (level: Level) => void) {
    this.levels.set(line, this.levels.get(line) ?? 0);
    this.watchers.set(line, changed);
    return { read: () => this.levels.get(line) ?? 0, close: () => void this.watchers.delete(line) };
  }

  output(line: number, initial: Level) {
    const history: { level: Level; at: number }[] = [];
    this.written.set(line, history);
    const write = (level: Level) => {
      this.levels.set(line, level);
      history.push({ level, at: Date.now() });
    };
    write(initial);
    return { write, close: () => {} };
  }

  /** Drive an input line to a level, as a signal on the pin would (an edge only if it changes). */
  set(line: number, level: Level): void {
    if (this.levels.get(line) === level) return;
    this.levels.set(line, level);
    this.watchers.get(line)?.(level);
  }

  /** The level of a line now. */
  level(line: number): Level | undefined {
    return this.levels.get(line);
  }

  close(): void {
    this.watchers.clear();
  }
}
