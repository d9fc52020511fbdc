// What the agent needs of GPIO lines. A driver speaks physical levels; active-low, debouncing and
// what a change means are the agent's (inputs.ts, led.ts), so every driver behaves the same.

export type Level = 0 | 1;

export interface InputLine {
  /** The line's level now. */
  read(): Level;
  close(): void;
}

export interface OutputLine {
  write(level: Level): void;
  close(): void;
}

export interface GpioDriver {
  /** Where the lines are (for the log). */
  readonly description: string;
  /** A line as an input; `changed` is called on each edge (either way) with the level after it. */
  input(line: number, changed: (level: Level) => void): InputLine;
  /** A line as an output, driven to `initial` first. */
  output(line: number, initial: Level): OutputLine;
  close(): void;
}
