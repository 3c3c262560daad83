declare global {
  interface String {
    /** ES2024; Node 20 has it. False when the string holds a lone surrogate. */
    isWellFormed(): boolean;
  }
}

/** API.md §0's text: a string without NUL characters and without lone surrogates. */
export function isText(value: string): boolean {
  return value.isWellFormed() && !value.includes('\u0000');
}
