// A debounced input: a change counts once the line has kept its level for debounceMs (contacts
// bounce for a few ms); what counts is the logical value (after active-low) and its edge.
import type { GpioDriver, InputLine, Level } from './driver.js';

export type Edge = 'rising' | 'falling';

export interface InputSpec {
  line: number;
  activeLow: boolean;
  debounceMs: number;
  /** Which changes to report. */
  edge: Edge | 'both';
}

export interface DebouncedInput {
  /** The logical value last reported (or read at open). */
  readonly value: Level;
  close(): void;
}

/** Open a line; `changed` gets each debounced change the spec asks for. */
export function openInput(driver: GpioDriver, spec: InputSpec, changed: (value: Level, edge: Edge) => void): DebouncedInput {
  const logical = (level: Level): Level => (spec.activeLow ? ((1 - level) as Level) : level);
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    timer = undefined;
    const value = logical(line.read());
    if (value === state.value) return; // bounced back
    state.value = value;
    const edge: Edge = value ? 'rising' : 'falling';
    if (spec.edge === 'both' || spec.edge === edge) changed(value, edge);
  };
  const line: InputLine = driver.input(spec.line, () => {
    if (spec.debounceMs === 0) return settle();
    clearTimeout(timer);
    timer = setTimeout(settle, spec.debounceMs);
  });
  const state = { value: logical(line.read()) };
  return {
    get value() {
      return state.value;
    },
    close() {
      clearTimeout(timer);
      line.close();
    },
  };
}
