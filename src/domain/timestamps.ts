/** RFC 3339 `date-time`: date, `T`, time, optional fraction, `Z` or an offset (letters in either case). */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?([Zz]|([+-])(\d{2}):(\d{2}))$/;

function daysIn(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1];
}

/**
 * An RFC 3339 date-time as an instant, or undefined when it is not one or names no real moment:
 * month 13, 30 February, hour 24 and the leap second 23:59:60 (which neither JavaScript nor
 * Postgres can hold) are all refused rather than rolled over into another day.
 */
export function parseRfc3339(value: string): Date | undefined {
  const m = RFC3339.exec(value);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number);
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (m[9]) {
    const [oh, om] = [Number(m[10]), Number(m[11])];
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const millis = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  const date = new Date(0); // setUTCFullYear, unlike Date.UTC, keeps the years 0 to 99 as written
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  date.setTime(date.getTime() - offsetMinutes * 60_000);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** The validator's `date-time` format (replacing ajv-formats', which takes 23:59:60 and, in fast mode, 30 February). */
export function isRfc3339DateTime(value: string): boolean {
  return parseRfc3339(value) !== undefined;
}
