// Cron schedules: which expressions a job may carry, and when they fire.
//
// Aurora accepts a subset of FreeBSD's crontab(5) (CrontabEntry.java): five fields (minute 0-59,
// hour 0-23, day of month 1-31, month 1-12, day of week 0-6), each a comma list of singletons
// (5), wildcards (*), ranges (1-5, MON-SAT, JAN-MAR) and skips (*/2, 1-50/2). 7 is NOT Sunday,
// both day of month and day of week may not be set, and there are no @-shortcuts. A spec
// written for Aurora must mean the same here, and one Aurora would refuse must be refused here.
//
// Why two layers: croner (a maintained, dependency-free parser) computes fire times, including
// time zones and DST, which are easy to get subtly wrong by hand. But croner accepts much more
// than Aurora (7 as Sunday, @daily, ?, L, W, #, 6- and 7-field patterns) and, with both day
// fields set, fires on either (Vixie's OR) where Aurora refuses. So the subset is checked here by
// a small tokenizer per field, every problem named in plain words, and croner is then handed the
// canonical form (each field a numeric list, "*" for a full one): it never sees a form Aurora
// would not, and "1-31" means "every day" as it does in Aurora (its wildcard test is "covers the
// whole range"), not "any of these days OR the day of week".
//
// Lists: the reference's list of forms does not name comma lists, but crontab(5) has them and
// Aurora's parser splits every field on commas, so they are allowed. An empty list item ("1,,2")
// is refused here (Aurora silently drops it; a stray comma is more likely a typo).
// Stricter than Aurora on purpose: a schedule that can never fire (0 0 30 2 *) is refused, and so
// is a name after a skip's / (*/MON; Aurora substitutes names anywhere). Looser: blanks around
// the schedule are ignored (Aurora's pattern refuses a leading one).
//
// DST (croner's rule, close to Vixie cron): a job whose minute and hour are single values is a
// fixed-time job: in a spring-forward gap it runs at the first minute after the gap, and on a
// repeated hour it runs once. Other jobs skip the gap and run on both occurrences.
//
// Pure: no clock, no I/O. Instants are numbers (ms since the epoch) in and out; croner is given
// ISO strings, so nothing here reads or builds a Date.

import { Cron } from "croner";
import { isoTime } from "../domain/time.js";

/** When a job sets no cronTimezone. Aurora's -cron_timezone defaults to GMT; its docs say UTC. */
export const DEFAULT_CRON_TIMEZONE = "UTC";

interface FieldSpec {
  /** As problems name it: "minute", "day of week". */
  readonly name: string;
  readonly min: number;
  readonly max: number;
  /** Names allowed in place of numbers (JAN, MON), upper case. */
  readonly names?: Readonly<Record<string, number>>;
  /** How the names are described: "a month name (JAN-DEC)". */
  readonly namesText?: string;
}

const MONTH_NAMES: Record<string, number> = {
  JAN: 1,
  FEB: 2,
  MAR: 3,
  APR: 4,
  MAY: 5,
  JUN: 6,
  JUL: 7,
  AUG: 8,
  SEP: 9,
  OCT: 10,
  NOV: 11,
  DEC: 12,
};
const DAY_NAMES: Record<string, number> = { SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6 };

const FIELDS: readonly FieldSpec[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTH_NAMES, namesText: "a month name (JAN-DEC)" },
  { name: "day of week", min: 0, max: 6, names: DAY_NAMES, namesText: "a day name (SUN-SAT)" },
];

const DOM = 2;
const MONTH = 3;
const DOW = 4;

/** The most days each month can have (February: 29, in leap years). */
const MONTH_MAX_DAYS = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** What a shortcut stands for, to say what to write instead. */
const SHORTCUTS: Readonly<Record<string, string>> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

interface Parsed {
  /** One set per field, or null when that field has a problem. */
  sets: Array<Set<number> | null>;
  problems: string[];
}

/** One value: digits, or a name where the field has names. Null (and a problem) otherwise. */
function parseValue(tok: string, f: FieldSpec, problems: string[]): number | null {
  let v: number;
  if (/^\d+$/.test(tok)) v = Number(tok);
  else if (/^[A-Za-z]+$/.test(tok)) {
    const named = f.names?.[tok.toUpperCase()];
    if (named === undefined) {
      problems.push(
        f.names
          ? `${f.name}: "${tok}" is not ${f.namesText} or a number ${f.min}-${f.max}`
          : `${f.name}: "${tok}" is not a number (names are allowed only in month, JAN-DEC, and day of week, SUN-SAT)`,
      );
      return null;
    }
    return named;
  } else {
    problems.push(`${f.name}: "${tok}" is not a number`);
    return null;
  }
  if (f.name === "day of week" && v === 7) {
    problems.push("day of week: 7 is not Sunday here; use 0 (Aurora's crontab subset)");
    return null;
  }
  if (v < f.min || v > f.max) {
    problems.push(`${f.name}: ${tok} is out of range ${f.min}-${f.max}`);
    return null;
  }
  return v;
}

function span(lo: number, hi: number): string {
  return lo === hi ? String(lo) : `${lo}-${hi}`;
}

/** Quartz's L (last), W (weekday) and # (nth weekday): L, LW, 15W, 5L, FRIL, L-3, 5#2. */
const QUARTZ_ONLY = /#|^L$|^LW$|^\d+W$|^\d*L$|^L-\d+$|^[A-Za-z]{3}L$/i;

/** One list item of a field ("5", "*", "1-5", "MON-SAT", "*\/2", "1-50/2") into `into`. */
function parseItem(item: string, f: FieldSpec, into: Set<number>, problems: string[]): boolean {
  const at = `${f.name}: "${item}"`;
  if (item.includes("?")) {
    problems.push(`${at}: ? is Quartz syntax, not crontab(5); use *`);
    return false;
  }
  if (QUARTZ_ONLY.test(item)) {
    problems.push(`${at}: L, W and # are Quartz extensions, not part of Aurora's crontab subset`);
    return false;
  }
  const m = /^(\*|[A-Za-z0-9]+|[A-Za-z0-9]+-[A-Za-z0-9]+)(?:\/(.*))?$/.exec(item);
  if (!m) {
    problems.push(`${at} is not a value, a range or a skip; write 5, 1-5, *, */2 or 1-50/2, or a comma list of them`);
    return false;
  }
  const base = m[1]!;
  const stepText = m[2];
  let lo: number;
  let hi: number;
  if (base === "*") {
    lo = f.min;
    hi = f.max;
  } else if (base.includes("-")) {
    const [a, b] = base.split("-") as [string, string];
    const x = parseValue(a, f, problems);
    const y = parseValue(b, f, problems);
    if (x === null || y === null) return false;
    if (x > y) {
      const hint = `${span(x, f.max)},${span(f.min, y)}`;
      problems.push(`${at} runs backwards (${x} to ${y}); ranges do not wrap around: write ${hint}`);
      return false;
    }
    lo = x;
    hi = y;
  } else {
    const x = parseValue(base, f, problems);
    if (x === null) return false;
    if (stepText !== undefined) {
      problems.push(`${at}: a skip needs * or a range before the /, as in */2 or ${x}-${f.max}/2`);
      return false;
    }
    lo = x;
    hi = x;
  }
  let step = 1;
  if (stepText !== undefined) {
    if (!/^\d+$/.test(stepText)) {
      problems.push(`${at}: the skip after / must be a number`);
      return false;
    }
    step = Number(stepText);
    if (step < 1) {
      problems.push(`${at}: the skip must be at least 1`);
      return false;
    }
    // Aurora's CrontabEntry: "skip value must be smaller than" the range's upper end.
    if (base !== "*" && step >= hi) {
      problems.push(`${at}: the skip ${step} must be smaller than the range's end ${hi} (Aurora's crontab subset)`);
      return false;
    }
  }
  for (let v = lo; v <= hi; v += step) into.add(v);
  return true;
}

function parseFields(expr: string): Parsed | string[] {
  const text = expr.trim();
  if (text.startsWith("@")) {
    const word = text.split(/\s+/)[0]!;
    const instead = SHORTCUTS[word.toLowerCase()];
    return [`${word}: @-shortcuts are not supported; write the 5 fields${instead ? ` (${word} is ${instead})` : ""}`];
  }
  const parts = text === "" ? [] : text.split(/\s+/);
  if (parts.length !== 5) {
    return [`expected 5 fields, got ${parts.length}: minute hour day-of-month month day-of-week (no seconds, no years)`];
  }
  const problems: string[] = [];
  const sets = parts.map((part, i) => {
    const f = FIELDS[i]!;
    const set = new Set<number>();
    let ok = true;
    for (const item of part.split(",")) {
      if (item === "") {
        problems.push(`${f.name}: "${part}" has an empty list item; remove the extra comma`);
        ok = false;
      } else if (!parseItem(item, f, set, problems)) ok = false;
    }
    return ok ? set : null;
  });
  return { sets, problems };
}

const isFull = (set: Set<number>, f: FieldSpec) => set.size === f.max - f.min + 1;

/** "*" for a full field, else its values as a comma list of runs: "0-5,10,20-23". */
function canonicalField(set: Set<number>, f: FieldSpec): string {
  if (isFull(set, f)) return "*";
  const vs = [...set].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < vs.length; ) {
    let j = i;
    while (j + 1 < vs.length && vs[j + 1] === vs[j]! + 1) j++;
    out.push(span(vs[i]!, vs[j]!));
    i = j + 1;
  }
  return out.join(",");
}

/** The subset's checks; the canonical form when there are no problems. */
function check(expr: string): { problems: string[]; canonical: string | null } {
  const parsed = parseFields(expr);
  if (Array.isArray(parsed)) return { problems: parsed, canonical: null };
  const { sets } = parsed;
  const problems = [...new Set(parsed.problems)];
  const dom = sets[DOM];
  const month = sets[MONTH];
  const dow = sets[DOW];
  if (dom && dow && !isFull(dom, FIELDS[DOM]!) && !isFull(dow, FIELDS[DOW]!)) {
    problems.push("day of month and day of week are both set: set one, leave the other *");
  }
  if (dom && month && !isFull(dom, FIELDS[DOM]!)) {
    const minDay = Math.min(...dom);
    const months = [...month].sort((a, b) => a - b);
    if (months.every((mo) => MONTH_MAX_DAYS[mo]! < minDay)) {
      const names = months.map((mo) => Object.keys(MONTH_NAMES)[mo - 1]).join(", ");
      problems.push(`day of month: ${minDay} never comes in ${names}: this schedule would never fire`);
    }
  }
  if (problems.length > 0) return { problems, canonical: null };
  const canonical = sets.map((s, i) => canonicalField(s!, FIELDS[i]!)).join(" ");
  // The subset is a subset of what croner reads; should that ever not hold, say so, not crash later.
  try {
    new Cron(canonical, { mode: "5-part", utcOffset: 0 });
  } catch (err) {
    return { problems: [`the cron library refused ${canonical}: ${(err as Error).message}`], canonical: null };
  }
  return { problems: [], canonical };
}

/**
 * Every way `expr` breaks Aurora's crontab subset, in words that name the field
 * ("minute: 60 is out of range 0-59"); [] when it is a schedule Aurora would accept.
 */
export function cronProblems(expr: string): string[] {
  return check(expr).problems;
}

/**
 * The schedule in canonical form: each field "*" when it covers its whole range (Aurora's own
 * test for a wildcard), else a numeric comma list of runs ("0 9 * * 1-6" for "0 9 * * MON-SAT").
 * Throws when `expr` has problems (see cronProblems).
 */
export function canonicalCron(expr: string): string {
  const { problems, canonical } = check(expr);
  if (canonical === null) throw new Error(`invalid cron schedule "${expr}": ${problems.join("; ")}`);
  return canonical;
}

/**
 * Why `tz` cannot be a job's cron time zone, or null when it can: an IANA name Intl knows
 * ("UTC", "Europe/London", "America/New_York"), spelt with its own capitals.
 */
export function cronTimezoneProblem(tz: string): string | null {
  const advice = "use an IANA time zone name such as UTC, Europe/London or America/New_York";
  if (tz.trim() === "") return `is empty; ${advice}`;
  let resolved: string;
  try {
    resolved = new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return `"${tz}" is not a time zone (offsets like +01:00 are not accepted either); ${advice}`;
  }
  if (resolved !== tz && resolved.toLowerCase() === tz.toLowerCase()) {
    return `write "${resolved}": time zone names are spelt with their capitals`;
  }
  return null;
}

// ---- fire times (croner) ----------------------------------------------------------------------

/** Compiled schedules by time zone and expression: a pure cache (the same key, the same Cron). */
const compiled = new Map<string, Cron>();
const MAX_COMPILED = 1000;

function compile(expr: string, tz: string): Cron {
  const key = `${tz}\u0000${expr}`;
  let c = compiled.get(key);
  if (c) return c;
  const canonical = canonicalCron(expr);
  const tzProblem = cronTimezoneProblem(tz);
  if (tzProblem !== null) throw new Error(`invalid cron time zone: ${tzProblem}`);
  // UTC as a fixed offset: the same instants, several times faster than a named zone.
  const zone = tz === "UTC" ? { utcOffset: 0 } : { timezone: tz };
  c = new Cron(canonical, { mode: "5-part", ...zone });
  if (compiled.size >= MAX_COMPILED) compiled.clear();
  compiled.set(key, c);
  return c;
}

function instant(ms: number, what: string): string {
  if (!Number.isFinite(ms)) throw new RangeError(`${what} must be a finite number of ms since the epoch (got ${ms})`);
  return isoTime(ms);
}

/**
 * The first time `expr` fires (in zone `tz`) strictly after `afterMs`: the start of that minute,
 * in ms since the epoch; null if it never fires again (croner searches up to the year 9999).
 * Throws if `expr` or `tz` is invalid.
 */
export function nextFire(expr: string, tz: string, afterMs: number): number | null {
  return compile(expr, tz).nextRun(instant(afterMs, "afterMs"))?.getTime() ?? null;
}

/** The last time `expr` fires at or before `atOrBeforeMs`; null if it never has. */
export function previousFire(expr: string, tz: string, atOrBeforeMs: number): number | null {
  // croner's previousRuns counts a run earlier than the reference: 1 ms later makes it "at or before".
  const prev = compile(expr, tz).previousRuns(1, instant(atOrBeforeMs + 1, "atOrBeforeMs"))[0];
  return prev ? prev.getTime() : null;
}

/**
 * The fire times in (fromMs, toMs]: strictly after fromMs, at or before toMs, in order, at most
 * `limit` of them (the first ones).
 */
export function firesBetween(expr: string, tz: string, fromMs: number, toMs: number, limit: number): number[] {
  const cron = compile(expr, tz);
  const from = instant(fromMs, "fromMs");
  instant(toMs, "toMs");
  const out: number[] = [];
  if (!(toMs > fromMs) || !(limit >= 1)) return out;
  let at = cron.nextRun(from);
  while (at !== null && at.getTime() <= toMs && out.length < limit) {
    out.push(at.getTime());
    at = cron.nextRun(at);
  }
  return out;
}
