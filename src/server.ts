import type { Server } from 'node:http';
import { loadApiSpec } from './api-spec';
import { createApp } from './app';
import { ConfigError, loadConfig } from './config';
import { DataDirLockedError } from './db/data-dir-lock';
import { createLogger } from './logger';
import { openRuntime } from './runtime';
import { bootstrapAdmin } from './services/bootstrap';

async function main(): Promise<void> {
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
  const { database, container } = await openRuntime(config, log);
  await container.hasher.dummy(); // so the first unknown-user login costs what the others do
  if (config.admin) await bootstrapAdmin(container.transact, container.hasher, log, config.admin);

  const app = createApp({ config, services: container.services, db: database.knex, log, apiSpec: loadApiSpec(), availability: container.availability });
  const server: Server = await new Promise((resolve, reject) => {
    const s = app.listen(config.port, config.host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  container.outbox.start();
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info({ url: `http://${config.host}:${port}`, port, database: database.kind, mail: config.smtpUrl ? 'smtp' : config.mailOutboxDir }, 'listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs);
    force.unref();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    await container.outbox.stop(); // a last pass over the outbox
    await database.close();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  // A known refusal is said in one line; anything else with its stack.
  const told = err instanceof DataDirLockedError ? err.message : err instanceof Error ? err.stack : String(err);
  process.stderr.write(`start-up failed: ${told}\n`);
  process.exit(1);
});
