// Readiness: each part of the data path (broker, log, store, every sink) says how it is; the agent is
// ready only when every part is `ok`. /health/ready answers from here.

export interface PartHealth {
  name: string;
  /** `ok`, `starting`, `retrying`, `stuck`, `down`, or `refusing: <why>`. */
  state: string;
  /** When the part entered this state (ISO 8601). */
  since: string;
  lastError?: { message: string; at: string };
}

export interface ReadinessReport {
  ready: boolean;
  /** Ready, with parts in an outage the agent rides out (a sink retrying while the log keeps its readings). */
  buffering: boolean;
  parts: PartHealth[];
}

/** How a report reads: ready, ready-and-buffering, or not. */
export const statusOf = (r: ReadinessReport) => (!r.ready ? 'not ready' : r.buffering ? 'buffering' : 'ready');

export type Probe = () => Promise<PartHealth | PartHealth[]> | PartHealth | PartHealth[];

export class Readiness {
  private readonly probes = new Map<string, Probe>();

  /** `ridesOut(part)`: a part not ok that leaves the agent ready, buffering (none by default). */
  constructor(private readonly ridesOut: (part: PartHealth) => boolean = () => false) {}

  /** A part (or a group of parts) to ask; the last one added under a name wins. */
  set(name: string, probe: Probe): void {
    this.probes.set(name, probe);
  }

  /** A part that is not running yet: its state until `set` replaces it. */
  starting(name: string, state = 'starting', lastError?: Error): void {
    const since = new Date().toISOString();
    const error = lastError && { message: lastError.message, at: since };
    this.set(name, () => ({ name, state, since, ...(error ? { lastError: error } : {}) }));
  }

  async report(): Promise<ReadinessReport> {
    const parts = (await Promise.all([...this.probes.values()].map((p) => p()))).flat();
    const notOk = parts.filter((p) => p.state !== 'ok');
    return { ready: notOk.every(this.ridesOut), buffering: notOk.length > 0, parts };
  }
}
