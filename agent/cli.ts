#!/usr/bin/env node
// edge-agent command line. Exit codes: 0 success; 1 invalid config, start-up failure or failed command; 2 bad usage.
import { setFlagsFromString } from 'node:v8';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { printConfig } from './config/print.js';
import { ConfigError, envNameFor } from './config/load.js';
import { useGeneratedScript, useGeneratedValidator } from './config/validator.js';
import { ConfigSchema, loadConfig, redact, type Config } from './config-schema.js';
import type { SessionInfo } from '../embedded-broker/index.js';
import type { DiskWrites } from './lib/disk-writes.js';
import type { LocalConsumerStatus, SinkStatus } from './consume/sinks/index.js';
import { reserveRaised, type PressureStatus } from './retention/pressure.js';
import { filesystemSize } from './retention/config.js';
import type { SystemSample } from './health/system.js';
import type { SensorStatus } from './health/sensors.js';
import type { ClockStatus } from './ingest/clock.js';
import { UserStore, usersFilePath } from './users/store.js';
import { ApiKeyStore, apiKeysPath } from './users/api-keys.js';
import { WEB_ROLES, type WebRole } from './users/roles.js';
import type { ExportCommandOptions } from './serve/export/cli.js';
import { VERSION } from './lib/version.js';
import { assetText, CONFIG_VALIDATOR_ASSET, extractAssets, isSea } from './lib/sea.js';
import { systemdNotifier, type Notifier } from './health/notify.js';
import { logTables, pageOutFilePages, trimMallocHeap } from './lib/page-out.js';
import { durationMs } from './config/keys.js';
import type { Runtime } from './runtime/index.js';
import type { Logger } from './lib/logger.js';

const EXIT = { ok: 0, failure: 1, usage: 2 } as const;
/** How often systemd's STATUS= line is looked at (sent only when it changed). */
const STATUS_EVERY_MS = 10_000;
/** How often the log's table files' pages and malloc's free pages are handed back (agent.pageOutAfter not off). */
const LOG_TABLES_EVERY_MS = 60_000;

class CliFailure extends Error {}
/** Bad usage: exit 2. */
class CliUsage extends Error {}

function configOf(cmd: Command) {
  return loadConfig(cmd.optsWithGlobals<{ config?: string }>().config);
}

async function run(cmd: Command): Promise<void> {
  const { config, path } = configOf(cmd);
  // Before the store's thread starts: V8's flags are the process's, and the heaps read this one as they grow.
  if (config.agent.heap === 'small') setFlagsFromString('--optimize-for-size');
  // Loaded here so the other commands start fast.
  const [{ createLogger, logDestination }, { startRuntime }] = await Promise.all([import('./lib/logger.js'), import('./runtime/index.js')]);
  const logger = createLogger(config.log.level, await logDestination(config.log.format));
  logger.info({ version: VERSION, config: path ?? 'built-in defaults', agentId: config.agent.id }, 'starting');
  const runtime = await startRuntime(config, logger, { reloadConfig: () => configOf(cmd).config });
  const notifier = systemdNotifier(logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal, exiting now');
      process.exit(EXIT.failure);
    }
    stopping = true;
    logger.info({ signal }, 'stopping');
    Promise.all([notifier?.stopping(), runtime.close()]).then(
      () => {
        logger.info({}, 'stopped');
        process.exit(EXIT.ok);
      },
      (err: Error) => {
        logger.error({ err }, 'error while stopping');
        process.exit(EXIT.failure);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => runtime.reloadSchemas());
  // Scripts and tests wait for this line, so it is printed at any level but silent, and only once
  // the handlers are in place: a signal sent on seeing it must find them.
  const announce = config.log.level === 'silent' ? logger : logger.child({}, { level: 'info' });
  announce.info({ listeners: runtime.listeners }, 'ready');
  if (config.agent.pageOutAfter !== 'off') {
    setTimeout(() => handBack(logger, 'start-up pages', 'info'), durationMs(config.agent.pageOutAfter)).unref();
    const tables = logTables(runtime.logDir);
    setInterval(() => {
      handBack(logger, "the log tables' pages", 'debug', tables);
      trimHeap(logger);
    }, LOG_TABLES_EVERY_MS).unref();
  }
  if (notifier) await tellSystemd(notifier, runtime, logger);
}

/** Hand back file pages (of the files `only` accepts; all read-only ones without it), said at `level`. */
function handBack(logger: Logger, what: string, level: 'info' | 'debug', only?: (path: string) => boolean): void {
  try {
    const r = pageOutFilePages(only);
    if (r)
      logger[level]({ fileRssKb: { before: r.before, after: r.after }, mappings: r.mappings, failed: r.failed }, `${what} handed back`);
  } catch (err) {
    logger.warn({ err }, `could not hand back ${what}`);
  }
}

/** malloc's free pages handed back, said at debug. */
function trimHeap(logger: Logger): void {
  try {
    const r = trimMallocHeap();
    if (r) logger.debug({ anonRssKb: r }, "malloc's free pages handed back");
  } catch (err) {
    logger.warn({ err }, "could not hand back malloc's free pages");
  }
}

/** READY=1 now, then STATUS= whenever the one-line summary changes. */
async function tellSystemd(notifier: Notifier, runtime: Runtime, logger: Logger): Promise<void> {
  let last = await runtime.statusLine().catch(() => 'ready');
  await notifier.ready(last);
  logger.info({ watchdogPingMs: notifier.pingEveryMs ?? null }, 'told systemd: ready');
  const timer = setInterval(() => {
    runtime.statusLine().then(
      (line) => {
        if (line !== last) void notifier.status((last = line));
      },
      () => {},
    );
  }, STATUS_EVERY_MS);
  timer.unref();
}

/** A password from a prompt without echo on a terminal, else the first line of stdin; never from argv. */
async function readPassword(): Promise<string> {
  if (!process.stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
  }
  // Echo goes to a sink; only the prompts reach the terminal.
  const silent = new Writable({ write: (_chunk, _encoding, done) => done() });
  const rl = createInterface({ input: process.stdin, output: silent, terminal: true });
  const ask = (prompt: string) => {
    process.stdout.write(prompt);
    return new Promise<string>((resolve) => rl.question('', resolve));
  };
  const first = await ask('Password: ');
  const second = await ask('\nRepeat: ');
  process.stdout.write('\n');
  rl.close();
  if (first !== second) throw new CliFailure('passwords do not match');
  return first;
}

function buildProgram(): Command {
  const program = new Command('edge-agent')
    .description('Edge telemetry agent: embedded MQTT broker, validated durable ingest, store-and-forward sync')
    .version(
      `${VERSION} (Node ${process.version}, ${process.platform}-${process.arch}${isSea() ? ', single executable' : ''})`,
      '-V, --version',
    )
    .option('-c, --config <file>', 'config file (else $EDGE_AGENT_CONFIG, /etc/edge-agent/config.yaml, ./edge-agent.yaml)')
    .showHelpAfterError()
    .addHelpText(
      'after',
      `\nEvery config key can be set by an environment variable: ${envNameFor(['broker', 'mqtt', 'port'])} sets broker.mqtt.port.\nExit codes: 0 success, 1 invalid config or failure, 2 bad usage.`,
    );

  program
    .command('run', { isDefault: true })
    .description('run the agent (the default command)')
    .action((_o, cmd: Command) => run(cmd));

  const config = program.command('config').description('check, print or describe the configuration');
  config
    .command('check')
    .description('validate the configuration; prints every problem, exit 1 if any')
    .action((_o, cmd: Command) => {
      const { path, config: checked } = configOf(cmd);
      console.log(`config ok (${path ?? 'built-in defaults'})`);
      const raised = reserveRaised(checked.retention.disk, filesystemSize(checked.agent.dataDir));
      if (raised) console.log(`note: ${raised}`);
    });
  config
    .command('print')
    .description(
      "print the effective configuration in the reference's order, marking what the file or the environment set (secrets redacted)",
    )
    .action((_o, cmd: Command) => {
      const { config: effective, given } = configOf(cmd);
      process.stdout.write(printConfig(ConfigSchema, redact(effective), given));
    });
  config
    .command('schema')
    .description('print the JSON Schema of the configuration (for editors)')
    .action(() => {
      console.log(
        JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', title: 'edge-agent configuration', ...ConfigSchema }, null, 2),
      );
    });

  const user = program.command('user').description('manage broker users (passwords stored as scrypt hashes)');
  const store = (cmd: Command) => new UserStore(usersFilePath(configOf(cmd).config));
  user
    .command('add')
    .description('add or update a user; the password is read from stdin or a prompt')
    .argument('<name>', 'user name')
    .option('-r, --role <role...>', 'roles for ACL rules', [])
    .action(async (name: string, opts: { role: string[] }, cmd: Command) => {
      const users = store(cmd);
      await users.add(name, await readPassword(), opts.role);
      console.log(`user ${name} saved in ${users.path}`);
    });
  user
    .command('remove')
    .description('remove a user')
    .argument('<name>', 'user name')
    .action((name: string, _o, cmd: Command) => {
      if (!store(cmd).remove(name)) throw new CliFailure(`no user named ${name}`);
      console.log(`user ${name} removed`);
    });
  user
    .command('list')
    .description('list users and their roles')
    .action((_o, cmd: Command) => {
      for (const u of store(cmd).list()) console.log(u.roles.length ? `${u.username}\t${u.roles.join(',')}` : u.username);
    });
  const apikey = program.command('apikey').description('API keys for programs calling the web API (Authorization: Bearer <key>)');
  const keys = (cmd: Command) => new ApiKeyStore(apiKeysPath(configOf(cmd).config.agent.dataDir));
  apikey
    .command('create')
    .description('create a key; it is printed this once (only its hash is kept)')
    .argument('<name>', 'what uses it (prometheus, grafana...)')
    .requiredOption('-r, --role <role>', `its role: ${WEB_ROLES.join(', ')}`)
    .action((name: string, opts: { role: string }, cmd: Command) => {
      if (!(WEB_ROLES as readonly string[]).includes(opts.role)) throw new CliUsage(`--role: one of ${WEB_ROLES.join(', ')}`);
      const created = keys(cmd).create(name, opts.role as WebRole);
      console.log(created.key);
      console.error(`API key ${created.name} (${created.role}, id ${created.id}) created; it is shown only now`);
    });
  apikey
    .command('list')
    .description('list keys (never their secrets)')
    .action((_o, cmd: Command) => {
      for (const k of keys(cmd).list()) console.log(`${k.id}\t${k.name}\t${k.role}\t${k.created}`);
    });
  apikey
    .command('revoke')
    .description('revoke a key by id or name; it stops working at once')
    .argument('<key>', 'id or name')
    .action((key: string, _o, cmd: Command) => {
      if (!keys(cmd).revoke(key)) throw new CliFailure(`no API key ${key}`);
      console.log(`API key ${key} revoked`);
    });

  program
    .command('export')
    .description('export stored readings (CSV, JSON, JSON Lines) from the data directory, also while the agent runs')
    .option('-f, --format <format>', 'csv, json or jsonl', 'csv')
    .option('-t, --topic <filter>', 'MQTT topic filter', '#')
    .option('--from <time>', 'received at or after (ISO 8601 or ms since the epoch)')
    .option('--to <time>', 'received at or before')
    .option(
      '-w, --where <condition>',
      'condition on a payload field, e.g. temperature>20 (repeatable)',
      (v: string, all: string[]) => [...all, v],
      [] as string[],
    )
    .option('--fields <list>', 'payload fields to keep, comma-separated')
    .option('--order <order>', 'asc or desc (by receive time, then seq)', 'asc')
    .option('-z, --gzip', 'compress the output')
    .option('-o, --out <file>', 'write here (mode 0600) instead of stdout')
    .action(async (opts: ExportCommandOptions, cmd: Command) => {
      const { exportCommand, ExportUsageError } = await import('./serve/export/cli.js');
      try {
        const { config } = configOf(cmd);
        const { backend, path } = config.store;
        const [{ defaultStorePath }, { readKeyFile, subkey }] = await Promise.all([
          import('./consume/store/index.js'),
          import('./log/format.js'),
        ]);
        const location = {
          backend,
          path: path ?? (backend === 'none' ? '' : defaultStorePath(backend, config.agent.dataDir)),
          key: config.buffer.encryption.keyFile ? subkey(readKeyFile(config.buffer.encryption.keyFile), 'store') : undefined,
        };
        const rows = await exportCommand(location, opts);
        if (opts.out) console.error(`${rows} readings written to ${opts.out}`);
      } catch (err) {
        if (err instanceof ExportUsageError) throw new CliUsage(err.message);
        throw err;
      }
    });

  program
    .command('health')
    .description("the agent's parts and the machine: CPU, temperature, memory, network, a Raspberry Pi's throttling flags")
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { config } = configOf(cmd);
      const [{ askAgent, controlSocketPath }, { sampleSystem, findVcgencmd, formatSystem }] = await Promise.all([
        import('./control/socket.js'),
        import('./health/system.js'),
      ]);
      type Report = {
        ready: boolean;
        parts: { name: string; state: string; since: string }[];
        system: SystemSample | null;
        clock: ClockStatus;
        sensors: SensorStatus[];
      };
      const fromAgent = (await askAgent(controlSocketPath(config.agent.dataDir), '/health')) as Report | undefined;
      const h = config.health.system;
      const system =
        fromAgent?.system ??
        (await sampleSystem({ sys: h.sysfsPath, proc: h.procfsPath, vcgencmd: h.vcgencmd ? findVcgencmd() : undefined }));
      if (opts.json)
        return console.log(
          JSON.stringify(
            {
              agentRunning: fromAgent !== undefined,
              ready: fromAgent?.ready ?? false,
              parts: fromAgent?.parts ?? [],
              system,
              clock: fromAgent?.clock ?? null,
              sensors: fromAgent?.sensors ?? [],
            },
            null,
            2,
          ),
        );
      if (!fromAgent) console.log('agent not running');
      else {
        console.log(`agent: ${fromAgent.ready ? 'ready' : 'not ready'}`);
        for (const p of fromAgent.parts) console.log(`  ${p.name.padEnd(20)} ${p.state} since ${p.since}`);
      }
      console.log(formatSystem(system));
      const c = fromAgent?.clock;
      if (c)
        console.log(
          `clock: ${c.synced === null ? 'cannot tell whether synchronised' : c.synced ? 'synchronised' : 'NOT synchronised'} (${c.via})${c.holding ? '; consumers wait for it' : ''}`,
        );
      for (const x of fromAgent?.sensors ?? [])
        console.log(
          `sensor ${x.sensor}: ${x.state} since ${x.since}; last seen ${x.lastSeen}; ${x.readings} readings (${x.perMinute}/min), ${x.refused} refused`,
        );
    });

  const session = program.command('session').description("the broker's persistent MQTT sessions (clean=false), through the running agent");
  const agentAt = async (cmd: Command, route: string, method: 'GET' | 'POST' = 'GET') => {
    const { askAgent, controlSocketPath } = await import('./control/socket.js');
    const answer = await askAgent(controlSocketPath(configOf(cmd).config.agent.dataDir), route, method).catch((err: Error) => {
      throw new CliFailure(err.message.replace(/^agent answered 404: /, ''));
    });
    if (answer === undefined) throw new CliFailure('no agent is running here (sessions live in the running broker)');
    return answer;
  };
  session
    .command('list')
    .description('client id, owner, connected or when it expires, subscriptions, queued messages')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const list = (await agentAt(cmd, '/sessions')) as SessionInfo[];
      if (opts.json) return console.log(JSON.stringify(list, null, 2));
      if (!list.length) return console.log('no persistent sessions');
      for (const s of list)
        console.log(
          `${s.clientId}  owner ${s.owner || '(anonymous)'}  ${s.connected ? 'connected' : `away, ends ${s.expiresAt}`}  ${s.subscriptions} subscriptions  ${s.queued} queued`,
        );
    });
  session
    .command('end')
    .description('end a persistent session: its client is disconnected, its subscriptions and queue go, its client id is free')
    .argument('<clientId>', 'the client id')
    .action(async (clientId: string, _o, cmd: Command) => {
      await agentAt(cmd, `/sessions/end/${encodeURIComponent(clientId)}`, 'POST');
      console.log(`session of ${clientId} ended`);
    });

  const sync = program.command('sync').description('store-and-forward to the configured sinks');
  sync
    .command('status')
    .description('per sink: state, lag, age of the oldest unsent reading, throughput, time to drain, last error')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { config } = configOf(cmd);
      const [{ askAgent, controlSocketPath }, { formatStatus }] = await Promise.all([
        import('./control/socket.js'),
        import('./consume/sinks/index.js'),
      ]);
      let status = (await askAgent(controlSocketPath(config.agent.dataDir), '/sync/status')) as ConsumersStatus | undefined;
      const running = status !== undefined;
      status ??= await statusFromDisk(config);
      if (opts.json) return console.log(JSON.stringify({ agentRunning: running, ...status }, null, 2));
      if (!running) console.log('agent not running: lag as the log on disk holds it');
      console.log(
        formatStatus(
          status.sinks,
          [status.store, status.rollups].filter((c) => c !== undefined),
        ),
      );
      if (status.written) console.log(`\n${formatWrites(status.written)}`);
      if (status.disk) console.log(formatDisk(status.disk));
      const dropped = formatDropped(status.dropped);
      if (dropped) console.log(dropped);
    });
  sync
    .command('flush')
    .description('have the local store and the rollups write what they have gathered now (before copying their files, say)')
    .action(async (_opts: unknown, cmd: Command) => {
      const { askAgent, controlSocketPath } = await import('./control/socket.js');
      const answer = (await askAgent(controlSocketPath(configOf(cmd).config.agent.dataDir), '/sync/flush', 'POST')) as
        { throughSeq: number; store?: boolean; rollups?: boolean } | undefined;
      if (answer === undefined) throw new CliFailure('no agent is running here: nothing waits to be written');
      const parts = (['store', 'rollups'] as const).filter((k) => answer[k] !== undefined);
      const late = parts.filter((k) => answer[k] === false);
      if (late.length) throw new CliFailure(`${late.join(' and ')} did not get to seq ${answer.throughSeq} within 8 s`);
      console.log(`${parts.join(' and ') || 'nothing'} written through seq ${answer.throughSeq}`);
    });
  return program;
}

interface ConsumersStatus {
  store?: LocalConsumerStatus;
  rollups?: LocalConsumerStatus;
  sinks: SinkStatus[];
  /** Only from a running agent. */
  written?: DiskWrites;
  disk?: PressureStatus;
  /** Readings given up before a consumer had them, per consumer and reason (the log keeps these). */
  dropped: Record<string, Record<string, number>>;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

/** SD-card wear since the agent started. */
function formatWrites(w: DiskWrites): string {
  const perReading = w.bytesPerReading === null ? '' : `; ${w.bytesPerReading} bytes per reading (${w.readings} readings)`;
  const perDay =
    w.bytesPerDay === null || w.bytesPerDay === undefined
      ? ''
      : `\nat the current rate: ${mb(w.bytesPerDay)} a day; a ${(w.card.bytes / 1e9).toFixed(1)} GB card rated ${w.card.ratedFullWrites} full writes lasts ${w.card.lifeYears === null ? 'unknown' : `${w.card.lifeYears} years`} by these writes alone`;
  return `written since start: ${mb(w.total)} (store ${mb(w.store)}, rollups ${mb(w.rollups)}, log and sessions ${mb(w.other)})${perReading}${perDay}`;
}

/** Free space against the watermarks, and what disk pressure made the agent give up since start. */
function formatDisk(d: PressureStatus): string {
  const pct = d.totalBytes ? ` (${((d.freeBytes / d.totalBytes) * 100).toFixed(1)}%)` : '';
  const m = d.watermarks;
  const r = d.relief;
  const readings = Object.entries(r.logReadings)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  return [
    `disk: ${d.level} since ${d.since}; ${mb(d.freeBytes)} free of ${mb(d.totalBytes)}${pct}; watermarks warn ${mb(m.warn)}, act ${mb(m.act)}, critical ${mb(m.critical)}, reserve ${mb(m.reserve)}`,
    `deleted under disk pressure since start: ${r.storeForwarded} store readings every sink had, ${r.deadLetters} dead letters, ${r.storeRolledUp} store readings kept as rollups, ${r.logChunks} unsent log chunks${readings ? ` (readings: ${readings})` : ''}`,
  ].join('\n');
}

/** Readings dropped before each consumer had them, all time. */
function formatDropped(dropped: Record<string, Record<string, number>>): string {
  const parts = Object.entries(dropped).flatMap(([consumer, reasons]) =>
    Object.entries(reasons).map(([reason, n]) => `${consumer} ${n} (${reason})`),
  );
  return parts.length ? `dropped before confirmed: ${parts.join(', ')}` : '';
}

/** With no agent running, the log can be opened here (its lock is free). */
async function statusFromDisk(config: Config): Promise<ConsumersStatus> {
  const [{ createLogger }, { openLog }, { offlineStatus }] = await Promise.all([
    import('./lib/logger.js'),
    import('./runtime/index.js'),
    import('./consume/sinks/index.js'),
  ]);
  let log: Awaited<ReturnType<typeof openLog>>;
  try {
    log = await openLog(config, createLogger('silent'));
  } catch (err) {
    // LevelDB's lock: an agent holds the log but did not answer on its control socket.
    if ((err as { code?: string }).code === 'LEVEL_DATABASE_NOT_OPEN' && /lock/i.test(String((err as { cause?: unknown }).cause))) {
      throw new CliFailure(`an agent holds ${config.agent.dataDir}/log but does not answer on its control socket`);
    }
    throw err;
  }
  try {
    const lag = (consumer: string) => (log.consumers().includes(consumer) ? log.lastSeq - log.cursor(consumer) : log.lastSeq);
    const store =
      config.store.backend === 'none'
        ? undefined
        : { name: 'store', type: config.store.backend, state: 'stopped', lagRecords: lag('store'), deadLettered: 0 };
    const rollups = config.rollups.enabled
      ? { name: 'rollups', type: 'sqlite', state: 'stopped', lagRecords: lag('rollups'), deadLettered: 0 }
      : undefined;
    return { store, rollups, sinks: await offlineStatus(log, config.sinks), dropped: log.stats().dropped };
  } finally {
    await log.close();
  }
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram().exitOverride();
  program.commands.forEach(function override(c: Command) {
    c.exitOverride();
    c.commands.forEach(override);
  });
  try {
    if (!(await useGeneratedValidator()) && isSea()) useGeneratedScript(() => assetText(CONFIG_VALIDATOR_ASSET));
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof CliUsage) {
      console.error(`edge-agent: ${err.message}`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      console.error(err.message);
      return EXIT.failure;
    }
    console.error(`edge-agent: ${(err as Error).message}`);
    return EXIT.failure;
  }
}

// `edge-agent --help | head`: a reader that went away is no error, and no stack trace.
for (const out of [process.stdout, process.stderr]) {
  out.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
    throw err;
  });
}
extractAssets(); // in the single executable: native addons and worker scripts as files, before anything loads them
main(process.argv).then((code) => {
  if (code !== EXIT.ok) process.exit(code);
});
