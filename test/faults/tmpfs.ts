import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './harness';

/** A small tmpfs of a test's own (the tests run as root), to fill and free. */
export interface Tmpfs {
  dir: string;
  /** Fills the file system but `leaveBytes` with a filler file (more of it if called again). */
  fill(leaveBytes: number): void;
  /** Deletes the filler. */
  free(): void;
  /** Unmounts it (if still mounted) and removes the mount point: for afterAll, also after a failure. */
  unmount(): void;
}

export function mountTmpfs(prefix: string, sizeMb: number, mode = '0700'): Tmpfs {
  const dir = tempDir(prefix);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=${mode}`, 'tmpfs', dir]);
  const filler = path.join(dir, 'filler');
  return {
    dir,
    fill(leaveBytes: number) {
      const fd = fs.openSync(filler, 'a');
      const chunk = Buffer.alloc(1 << 16, 1);
      try {
        for (;;) {
          const s = fs.statfsSync(dir);
          const free = s.bavail * s.bsize;
          if (free <= leaveBytes) break;
          fs.writeSync(fd, chunk, 0, Math.min(chunk.length, Math.max(s.bsize, free - leaveBytes)));
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        fs.closeSync(fd);
      }
    },
    free() {
      fs.rmSync(filler, { force: true });
    },
    unmount() {
      let mounted = true;
      try {
        execFileSync('mountpoint', ['-q', dir]);
      } catch {
        mounted = false;
      }
      if (mounted) execFileSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
