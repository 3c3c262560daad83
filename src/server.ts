import { loadApiSpec } from './api-spec';
import { createApp } from './app';
import { ConfigError, configWarnings, loadConfig } from './config';
import { DataDirLockedError } from './db/data-dir-lock';
import { EmbeddedInitError } from './db/embedded';
import { DataDirNotPrivateError, PRIVATE_UMASK } from './db/private-files';
import { createDrainingServer } from './http/draining-server';
import { countAnswers } from './http/handlers/metrics';
import { KeyError } from './keys';
import { createLogger } from './logger';
import { openRuntime } from './runtime';
import { bootstrapAdmin } from './services/bootstrap';

async function main(): Promise<void> {
  process.umask(PRIVATE_UMASK); // what this process creates is its user's alone (the data directory, the mail)
  // The signals are taken from the first moment: one that arrives while the service starts (a
  // supervisor stopping it as soon as it said "listening") is held until it can shut down in
  // order, instead of the default action killing it mid-way (tested in test/server.test.ts); a
  // second one before then ends it at once.
  let shutdown: ((signal: string) => Promise<void>) | undefined;
  let pending: string | undefined;
  const onSignal = (signal: string) => {
    if (shutdown) return void shutdown(signal);
    if (pending) process.exit(1);
    pending = signal;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  for (const warning of configWarnings(config)) log.warn(warning);
  const { database, container } = await openRuntime(config, log, { processMetrics: true });
  await container.hasher.dummy(); // so the first unknown-user login costs what the others do
  if (config.admin) await bootstrapAdmin(container.transact, container.hasher, log, config.admin);

  const app = createApp({ config, services: container.services, maintenance: container.stores.maintenance, log, apiSpec: loadApiSpec(), availability: container.availability, rateLimits: container.stores.rateLimits, clock: container.clock, metrics: container.metrics });
  const http = createDrainingServer(app, config.metrics ? countAnswers(container.metrics) : undefined, config);
  const { server } = http;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  container.start();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ url: `http://${config.host}:${port}`, port, database: database.kind, mail: config.smtpUrl ? 'smtp' : config.mailOutboxDir }, 'listening');

  let stopping = false;
  shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, in_flight: http.inFlight }, 'shutting down: taking no more requests, finishing those in flight');
    if (!(await http.drain(config.shutdownTimeoutMs))) {
      // Never cut a request and then let its transaction commit: the process ends here, with its
      // database connections, so any transaction still open is rolled back by the database.
      log.error({ in_flight: http.inFlight, timeout_ms: config.shutdownTimeoutMs }, 'requests still in flight at the shutdown timeout; exiting, their open transactions roll back');
      process.exit(1);
    }
    // The background workers, after a last pass over jobs and mail: bounded too, since a send to
    // an SMTP server that stopped answering may wait minutes. What is cut here is taken up again
    // after its lease (a mail cut after the server took it may arrive twice, with one Message-ID).
    let flushTimer: NodeJS.Timeout | undefined;
    const flushed = await Promise.race([
      container.stop().then(() => true),
      new Promise<false>((resolve) => (flushTimer = setTimeout(() => resolve(false), config.shutdownTimeoutMs))),
    ]);
    clearTimeout(flushTimer);
    if (!flushed) {
      log.error({ timeout_ms: config.shutdownTimeoutMs }, 'background work (a mail send, a job) still running at the shutdown timeout; exiting, it is taken up again after its lease');
      process.exit(1);
    }
    await database.close();
    log.info('stopped');
    process.exit(0);
  };
  if (pending) void shutdown(pending);
}

main().catch((err) => {
  // A known refusal is said in one line; anything else with its stack.
  const told = err instanceof DataDirLockedError || err instanceof EmbeddedInitError || err instanceof DataDirNotPrivateError || err instanceof KeyError ? err.message : err instanceof Error ? err.stack : String(err);
  process.stderr.write(`start-up failed: ${told}\n`);
  process.exit(1);
});
