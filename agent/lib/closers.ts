/** What was started, closed newest first: at shutdown, or when a later part fails to start. */
export class Closers {
  private readonly closers: (() => Promise<void>)[] = [];

  push(close: () => Promise<void>): void {
    this.closers.push(close);
  }

  async closeAll(): Promise<void> {
    for (const close of this.closers.splice(0).reverse()) await close();
  }
}
