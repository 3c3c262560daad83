import fs from 'node:fs';
import { EmlFileTransport } from '../../src/mail/transports';
import { mountTmpfs, type Tmpfs } from './tmpfs';

/**
 * Mail as `.eml` files on a full disk: the write fails (the outbox keeps the message and retries
 * it) and leaves nothing behind, not even its hidden temporary file; with space again it is written whole.
 */
let disk: Tmpfs;
beforeAll(() => {
  disk = mountTmpfs('eml-full', 2);
});
afterAll(() => disk.unmount());

it('fails without leaving a partial file while the disk is full, and writes the message whole once there is space', async () => {
  const outbox = `${disk.dir}/outbox`;
  const transport = new EmlFileTransport(outbox);
  const mail = { from: 'noreply@example.test', to: ['ada@example.test'], subject: 'Welcome', text: `${'a long line of text '.repeat(40)}\n`.repeat(100), messageId: '<outbox.1.x@example.test>' };
  fs.mkdirSync(outbox);
  disk.fill(4096); // less room than the message takes
  await expect(transport.send(mail)).rejects.toMatchObject({ code: 'ENOSPC' });
  expect(fs.readdirSync(outbox)).toEqual([]);

  disk.free();
  await transport.send(mail);
  const files = fs.readdirSync(outbox);
  expect(files).toEqual([expect.stringMatching(/^[^.].*\.eml$/)]);
  expect(fs.readFileSync(`${outbox}/${files[0]}`, 'utf8')).toContain('Message-ID: <outbox.1.x@example.test>');
});
