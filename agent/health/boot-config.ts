// A config taken from the boot partition that the agent could not run with is put back by
// edge-agent-bootconfig-verify (image/files), which leaves a note in the data directory: the agent
// says so once in its log and as an alert for a day, so the page shows it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BootConfigRollback {
  at: string;
  reason: string;
}

/** How long after the rollback the alert stays. */
const SHOWN_MS = 24 * 3_600_000;

export function bootConfigRollback(dataDir: string): BootConfigRollback | undefined {
  try {
    const note = JSON.parse(readFileSync(join(dataDir, 'boot-config-rollback.json'), 'utf8')) as Partial<BootConfigRollback>;
    return typeof note.at === 'string' && typeof note.reason === 'string' ? { at: note.at, reason: note.reason } : undefined;
  } catch {
    return undefined; // none (or unreadable: nothing to say)
  }
}

/** Whether a rollback is recent enough to be shown. */
export const stillShown = (r: BootConfigRollback, now = Date.now()) => now - Date.parse(r.at) < SHOWN_MS;
