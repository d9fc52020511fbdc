// Whether the wall clock is synchronised. systemd-timesyncd (the Pi OS default) marks a sync with
// this file; a Pi has no RTC, so readings before the first sync carry boot-time-ish timestamps.
import { existsSync } from 'node:fs';

const SYNC_FLAG = '/run/systemd/timesync/synchronized';
const RECHECK_MS = 10_000;

export function clockSyncProbe(flagFile = SYNC_FLAG): () => boolean {
  let synced = false;
  let checkedAt = -Infinity;
  return () => {
    const now = performance.now();
    if (now - checkedAt > RECHECK_MS) {
      synced = existsSync(flagFile);
      checkedAt = now;
    }
    return synced;
  };
}
