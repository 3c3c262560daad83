/** Flag query parameters: the strings `0` and `1` (the spec admits nothing else). */
export function flag(value: unknown, fallback: boolean): boolean {
  if (value === '1') return true;
  if (value === '0') return false;
  return fallback;
}
