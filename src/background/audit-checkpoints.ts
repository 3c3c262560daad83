import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { checkpointJson, checkpointSigned, parseCheckpoint, signCheckpoint, type ChainKeys, type Checkpoint } from '../domain/audit-chain';
import type { Clock } from '../domain/types';
import type { AuditStore, ChainHead, ChainPass } from '../stores/audit-store';

/**
 * Signed checkpoints of the audit chain's head, kept outside the table the entries live in
 * (issue 18): the newest in memory (what `GET /audit/verify` compares the chain with), in a file
 * (`AUDIT_CHECKPOINT_FILE`, by default `DATA_DIR/audit-checkpoint.json`, read back at start) and
 * as a log line `audit checkpoint` an operator ships elsewhere. A checkpoint moves only forward
 * along one chain: a head that is shorter than the last checkpoint, or that does not pass through
 * it, is the chain cut or rewritten, so the old checkpoint stays (verify says where it breaks)
 * and the service logs an error once. The file and the log line are written when the head has
 * moved, at most once every `intervalMs`, and when the service stops.
 */
export class AuditCheckpoints {
  private newest: Checkpoint | undefined;
  private written: Checkpoint | undefined;
  private writtenAt = 0;
  private head: ChainHead | undefined;
  private diverged = false;
  /** The write under way: one at a time (the chainer's pass and verify's may end together). */
  private writing: Promise<void> = Promise.resolve();
  private writeFailed = false;

  constructor(
    private readonly keys: ChainKeys,
    private readonly store: Pick<AuditStore, 'linkAt'>,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: { file: string; intervalMs: number },
  ) {}

  /** Reads the checkpoint an earlier run left in the file (at start); a file that is not one is said once, and kept. */
  load(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.options.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      value = undefined;
    }
    const c = parseCheckpoint(value);
    if (!c) {
      this.log.error({ file: this.options.file }, 'the audit checkpoint file holds no checkpoint; move it away once you know why');
      return;
    }
    if (!checkpointSigned(this.keys, c)) this.log.error({ file: this.options.file, audit_checkpoint: checkpointJson(c) }, 'the audit checkpoint file is not signed with a configured AUDIT_KEY');
    this.newest = this.written = c;
  }

  /** The newest checkpoint known. */
  get latest(): Checkpoint | undefined {
    return this.newest;
  }

  /** The chain's head as last seen. */
  get lastHead(): ChainHead | undefined {
    return this.head;
  }

  /** A chaining pass is done: its head becomes the checkpoint if it goes on from the last one. */
  async observe(pass: ChainPass): Promise<void> {
    const head = pass.head;
    if (!head) return;
    this.head = head;
    const last = this.newest;
    if (last && head.position === last.position && head.hash === last.hash) return;
    if (last && !(await this.extends(last, head, pass.base))) {
      if (!this.diverged) {
        this.log.error({ audit_checkpoint: checkpointJson(last), head }, 'the audit chain does not go on from its last checkpoint: it was cut or rewritten (GET /audit/verify says where)');
      }
      this.diverged = true;
      return;
    }
    this.diverged = false;
    this.newest = signCheckpoint(this.keys, head, this.clock.now());
  }

  private async extends(last: Checkpoint, head: ChainHead, base: ChainHead | undefined): Promise<boolean> {
    if (!checkpointSigned(this.keys, last)) return false;
    if (head.position <= last.position) return false; // the same position with the same hash returned above
    if (base && base.position === last.position && base.hash === last.hash) return true; // chained after it just now
    const link = await this.store.linkAt(last.position);
    // Gone: retention removed it (the chain's start is checked by verify); else it must be the same link.
    return link === undefined || link.hash === last.hash;
  }

  /**
   * Writes the newest checkpoint to the file and the log if it moved and the last write is
   * `intervalMs` old (or `force`). A file that cannot be written is logged (once, until it can
   * be again) and never fails the pass: the checkpoint is still kept in memory.
   */
  persist(force = false): Promise<void> {
    this.writing = this.writing.then(() => this.write(force));
    return this.writing;
  }

  private async write(force: boolean): Promise<void> {
    const c = this.newest;
    if (!c || c === this.written) return;
    const now = this.clock.now().getTime();
    if (!force && now - this.writtenAt < this.options.intervalMs) return;
    const json = checkpointJson(c);
    const file = this.options.file;
    const temporary = `${file}.${process.pid}.tmp`;
    try {
      await fs.promises.mkdir(path.dirname(file), { recursive: true });
      await fs.promises.writeFile(temporary, `${JSON.stringify(json)}\n`, { mode: 0o600 });
      await fs.promises.rename(temporary, file);
      this.writeFailed = false;
    } catch (err) {
      if (!this.writeFailed) this.log.error({ err, file }, 'the audit checkpoint file cannot be written; the checkpoint is still logged and kept in memory');
      this.writeFailed = true;
    }
    this.written = c;
    this.writtenAt = now;
    this.log.info({ audit_checkpoint: json }, 'audit checkpoint');
  }
}
