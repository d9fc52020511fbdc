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
  parts: PartHealth[];
}

export type Probe = () => Promise<PartHealth | PartHealth[]> | PartHealth | PartHealth[];

export class Readiness {
  private readonly probes = new Map<string, Probe>();

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
    return { ready: parts.every((p) => p.state === 'ok'), parts };
  }
}
