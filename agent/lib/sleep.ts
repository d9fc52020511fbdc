// Waiting that a stop can end early. Listeners on the signals, added and taken off, rather than
// `AbortSignal.any()`: each call of that makes a signal, weak references and a finalizer entry that
// only a collection lets go, and a consumer waits once per commit.

/** Call `then` once, when the first of `signals` aborts; the returned function takes the listeners off. */
export function onFirstAbort(signals: readonly (AbortSignal | undefined)[], then: (reason: unknown) => void): () => void {
  const listening = signals.filter((s): s is AbortSignal => s !== undefined);
  const fire = (event: Event) => {
    off();
    then((event.target as AbortSignal).reason);
  };
  const off = () => listening.forEach((s) => s.removeEventListener('abort', fire));
  const aborted = listening.find((s) => s.aborted);
  if (aborted) {
    then(aborted.reason);
    return () => {};
  }
  listening.forEach((s) => s.addEventListener('abort', fire, { once: true }));
  return off;
}

/** setTimeout as a promise that an abort of any of `signals` ends early (resolving, not rejecting: callers check why). */
export function sleep(ms: number, ...signals: (AbortSignal | undefined)[]): Promise<void> {
  return new Promise((resolve) => {
    const off = onFirstAbort(signals, () => done());
    const timer = setTimeout(() => done(), ms);
    const done = () => {
      clearTimeout(timer);
      off();
      resolve();
    };
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
  const off = onFirstAbort([stop], (reason) => deadline.abort(reason));
  try {
    return await work(deadline.signal);
  } finally {
    clearTimeout(timer);
    off();
  }
}
