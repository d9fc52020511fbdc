// Waiting that a stop can end early.

/** setTimeout as a promise that an abort ends early (resolving, not rejecting: callers check why). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Run `work` with a signal that aborts after `ms` or when `stop` does. Not
 * `AbortSignal.any([AbortSignal.timeout(ms), stop])`: Node holds a timeout signal only weakly, and
 * inside `any()` it can be collected before it fires (nodejs/node#57736), leaving a stalled write
 * waiting for ever. Here the timer holds its controller.
 */
export async function withDeadline<T>(ms: number, stop: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new DOMException(`no answer within ${ms} ms`, 'TimeoutError')), ms);
  const signal = AbortSignal.any([deadline.signal, stop]);
  try {
    return await work(signal);
  } finally {
    clearTimeout(timer);
  }
}
