/** A task that cannot be done (no stored key, a wrong local password, ...): one line, exit status 1. */
export class CliFailure extends Error {
  override readonly name: string = 'CliFailure';
}

/** The person pressed Ctrl-C at a prompt: exit status 130, as a shell reports SIGINT. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
}
