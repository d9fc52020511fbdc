// Reading a running agent's sink status in tests.
import type { SinkStatus } from '../../agent/consume/sinks/index.js';
import type { InProcessAgent } from './agent.js';
import { until } from './servers.js';

export async function statusOf(agent: InProcessAgent, name: string): Promise<SinkStatus> {
  const status = (await agent.runtime.sync.status()).find((s) => s.name === name);
  if (!status) throw new Error(`no sink named ${name}`);
  return status;
}

/** Wait until the sink's status passes `test`; returns that status. */
export function untilStatus(
  agent: InProcessAgent,
  name: string,
  test: (s: SinkStatus) => boolean,
  timeoutMs?: number,
): Promise<SinkStatus> {
  let last: SinkStatus | undefined;
  return until(
    async () => {
      last = await statusOf(agent, name);
      return test(last) && last;
    },
    timeoutMs,
    `sink ${name} status`,
  ).catch((err: Error) => {
    throw new Error(`${err.message}; it was ${JSON.stringify(last)}`);
  });
}
