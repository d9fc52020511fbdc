// Worker thread entry: the thread every SQLite database of the agent lives in (the store, the
// rollups; the store of a reader beside the agent). One thread and V8 heap for all of them, not one
// each: about 8 MB less at rest and more under load. Each database is served on its own port.
import { parentPort, type MessagePort } from 'node:worker_threads';
import { lowerThreadPriority } from '../../lib/thread-priority.js';
import { DB_THREAD_NICE, serveDb } from './db-thread.js';
import { openRollupService, type RollupWorkerData } from '../rollups/worker.js';
import { openStoreService, type StoreWorkerData } from '../store/sqlite-worker.js';

export type HostMessage =
  | { op: 'open'; service: 'store'; data: StoreWorkerData; port: MessagePort }
  | { op: 'open'; service: 'rollups'; data: RollupWorkerData; port: MessagePort }
  | { op: 'exit' };

lowerThreadPriority(DB_THREAD_NICE);

parentPort!.on('message', (m: HostMessage) => {
  if (m.op === 'exit')
    process.exit(0); // every database here was closed: the thread ends
  else if (m.service === 'store') serveDb(m.port, () => openStoreService(m.data));
  else serveDb(m.port, () => openRollupService(m.data));
});
