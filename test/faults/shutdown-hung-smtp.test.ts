import fs from 'node:fs';
import http from 'node:http';
import { MailCatcher } from '../helpers/mail-catcher';
import { baseEnv, call, killAllServices, login, startService, stopService, tempDir, type Service } from './harness';

/**
 * SIGTERM while a mail is with an SMTP server that stopped answering: the last pass over the
 * outbox is bounded by SHUTDOWN_TIMEOUT (a send may otherwise wait minutes for its reply), the
 * process exits saying so, and the mail is sent after the restart, with the same Message-ID.
 */
const agent = new http.Agent({ keepAlive: false });
const hung = new MailCatcher();
const working = new MailCatcher();
let dataDir: string;
let service: Service | undefined;
/** The Message-IDs of the messages the hung server holds. */
const held: string[] = [];

beforeAll(async () => {
  dataDir = tempDir('hung-smtp');
  await Promise.all([hung.start(), working.start()]);
  hung.beforeReply = (mail) => {
    held.push(mail.messageId);
    return new Promise<void>(() => undefined); // never answers
  };
});

afterAll(async () => {
  await killAllServices();
  await Promise.all([hung.stop(), working.stop()]);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function until(what: string, found: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!found()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

it('exits within SHUTDOWN_TIMEOUT of SIGTERM with a send in flight, and the mail goes out after the restart', async () => {
  service = await startService(baseEnv({ DATA_DIR: dataDir, SMTP_URL: hung.url, SHUTDOWN_TIMEOUT: '2s' }));
  const jwt = await login(service.port, agent);
  const created = await call({ port: service.port, agent, token: jwt, method: 'POST', path: '/user', body: { name: 'ada', email: 'ada@hung.example.test' } });
  expect(created.status).toBe(201);
  await until('the welcome mail at the SMTP server', () => hung.inFlight === 1);
  const signalled = Date.now();
  const exit = await stopService(service, 60_000);
  const took = Date.now() - signalled;
  expect(exit).toMatchObject({ code: 1, signal: null });
  expect(took).toBeLessThan(15_000); // 2 s and the drain, not the SMTP reply timeout (10 minutes)
  const errors = service.lines.filter((l) => l.json?.level === 50).map((l) => l.json?.msg);
  expect(errors).toEqual(['background work (a mail send, a job) still running at the shutdown timeout; exiting, it is taken up again after its lease']);

  // Restarted on a server that answers: the mail is taken up once its lease runs out.
  service = await startService(baseEnv({ DATA_DIR: dataDir, SMTP_URL: working.url }));
  await until('the welcome mail after the restart', () => working.to('ada@hung.example.test').length === 1, 60_000);
  await stopService(service);
  expect(working.to('ada@hung.example.test').map((m) => m.messageId)).toEqual(held);
  expect(held).toEqual([expect.stringMatching(/^<outbox\.\d+\.[0-9a-z]+@/)]);
}, 180_000);
