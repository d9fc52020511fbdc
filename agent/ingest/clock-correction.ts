// A reading's time once its boot's clock offset is known (the Clock in ./clock.ts learns it): the
// part of the clock that consumers of the log use, with nothing else of the clock behind it.

/** wall - monotonic clock (ms) of each boot whose clock synchronised, by boot id. */
export type ClockOffsets = Readonly<Record<string, number>>;

/** What a consumer of the log asks of the clock (the Clock above). */
export interface ConsumerClock {
  /** The offsets known now. */
  offsets(): ClockOffsets;
  /** Whether to wait: the clock is unsynchronised, and times received now would need correcting. */
  holding(): boolean;
}

/** The times of a reading that a correction reads and moves. */
export interface StampedTimes {
  receivedAt: number;
  clockCorrectionMs?: number;
  boot?: string;
  mono?: number;
}

/**
 * A reading received while the clock was unsynchronised gets its true time once its boot's offset is
 * known (receivedAt moves, by clockCorrectionMs); the boot and monotonic time stay inside the log.
 */
export function correctClock<T extends StampedTimes>(r: T, offsets: ClockOffsets | undefined): T {
  if (r.boot === undefined) return r;
  const offset = offsets?.[r.boot];
  if (offset !== undefined && r.mono !== undefined) {
    const at = r.mono + offset;
    r.clockCorrectionMs = at - r.receivedAt;
    r.receivedAt = at;
  }
  delete r.boot;
  delete r.mono;
  return r;
}
