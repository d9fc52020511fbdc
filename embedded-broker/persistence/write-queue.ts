import type { ClassicLevel } from 'classic-level';

export type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

/**
 * Applies operations in submission order, folding whatever queued up during one
 * write into the next batch (LevelDB gives no ordering across concurrent calls).
 */
export class WriteQueue {
  private pending: Op[] = [];
  private waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private running: Promise<void> | null = null;

  constructor(private readonly db: ClassicLevel<string, Uint8Array>) {}

  write(ops: Op[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    this.pending.push(...ops);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.running ??= this.drain();
    return done;
  }

  async flushed(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    while (this.pending.length) {
      const ops = this.pending;
      const waiters = this.waiters;
      this.pending = [];
      this.waiters = [];
      try {
        await this.db.batch(ops, { valueEncoding: 'view' });
        for (const w of waiters) w.resolve();
      } catch (err) {
        for (const w of waiters) w.reject(err as Error);
      }
    }
    this.running = null;
  }
}
