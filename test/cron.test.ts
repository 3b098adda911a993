// Cron (src/cron): Aurora's crontab subset, fire times in time zones, and the trigger decisions
// (due triggers and catching up, collisions, the KILL_EXISTING backoff, the spec's cron fields).

import { describe, expect, it } from "vitest";
import { canonicalCron, cronProblems, cronTimezoneProblem, firesBetween, nextFire, previousFire } from "../src/cron/expression.js";
import { collision, cronSpecProblems, dueTrigger, killExistingBackoffMs, MAX_COUNTED_MISSES } from "../src/cron/triggers.js";

const ms = (iso: string) => Date.parse(iso);
const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
const isos = (ts: number[]) => ts.map((t) => new Date(t).toISOString());

/** The wall clock of `tz` at `t`: "2026-03-30 09:00". */
function local(t: number, tz: string): string {
  const p: Record<string, string> = {};
  const fmt = new Intl.DateTimeFormat("en-US", {
    timeZone: tz,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
  for (const part of fmt.formatToParts(t)) p[part.type] = part.value;
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

describe("cron expressions: Aurora's crontab subset", () => {
  // [expression, its canonical form]
  const allowed: Array<[string, string]> = [
    ["* * * * *", "* * * * *"],
    ["0 * * * *", "0 * * * *"],
    ["50 23 31 12 *", "50 23 31 12 *"],
    ["05 * * * *", "5 * * * *"],
    ["*/15 * * * *", "0,15,30,45 * * * *"],
    ["*/60 * * * *", "0 * * * *"],
    ["0-10/5 * * * *", "0,5,10 * * * *"],
    ["1-50/2 * * * *", `${Array.from({ length: 25 }, (_, i) => 1 + 2 * i).join(",")} * * * *`],
    ["0 9-17 * * *", "0 9-17 * * *"],
    ["0,30 8,12-14 * * *", "0,30 8,12-14 * * *"],
    ["0 0 1,15 * *", "0 0 1,15 * *"],
    ["0 0 * JAN *", "0 0 * 1 *"],
    ["0 0 * JAN-MAR *", "0 0 * 1-3 *"],
    ["0 0 * jul,Dec *", "0 0 * 7,12 *"],
    ["0 0 * * MON-SAT", "0 0 * * 1-6"],
    ["0 0 * * MON-FRI", "0 0 * * 1-5"],
    ["0 0 * * sun", "0 0 * * 0"],
    ["0 0 * * 0", "0 0 * * 0"],
    ["0 0 * * 6", "0 0 * * 6"],
    ["0 0 * * SAT,SUN", "0 0 * * 0,6"],
    // A field that covers its whole range is a wildcard (Aurora's own test), so only one day field is set.
    ["0 0 1-31 * MON", "0 0 * * 1"],
    ["0 0 1 * 0-6", "0 0 1 * *"],
    ["0 0 */1 * */1", "0 0 * * *"],
    ["0 0 29 2 *", "0 0 29 2 *"],
    ["  0   9 * *\t* ", "0 9 * * *"],
  ];
  it.each(allowed)("accepts %j (canonical %j)", (expr, canonical) => {
    expect(cronProblems(expr)).toEqual([]);
    expect(canonicalCron(expr)).toBe(canonical);
  });

  // [expression, every problem, exactly]
  const refused: Array<[string, string[]]> = [
    ["0 0 * * 7", ["day of week: 7 is not Sunday here; use 0 (Aurora's crontab subset)"]],
    ["0 0 * * 5-7", ["day of week: 7 is not Sunday here; use 0 (Aurora's crontab subset)"]],
    ["0 0 1 * MON", ["day of month and day of week are both set: set one, leave the other *"]],
    ["0 0 1-15 * 1-5", ["day of month and day of week are both set: set one, leave the other *"]],
    ["@daily", ["@daily: @-shortcuts are not supported; write the 5 fields (@daily is 0 0 * * *)"]],
    ["@hourly", ["@hourly: @-shortcuts are not supported; write the 5 fields (@hourly is 0 * * * *)"]],
    ["@reboot", ["@reboot: @-shortcuts are not supported; write the 5 fields"]],
    ["0 0 * * * *", ["expected 5 fields, got 6: minute hour day-of-month month day-of-week (no seconds, no years)"]],
    ["0 0 * *", ["expected 5 fields, got 4: minute hour day-of-month month day-of-week (no seconds, no years)"]],
    ["", ["expected 5 fields, got 0: minute hour day-of-month month day-of-week (no seconds, no years)"]],
    ["60 * * * *", ["minute: 60 is out of range 0-59"]],
    ["0 24 * * *", ["hour: 24 is out of range 0-23"]],
    ["0 0 0 * *", ["day of month: 0 is out of range 1-31"]],
    ["0 0 32 * *", ["day of month: 32 is out of range 1-31"]],
    ["0 0 * 13 *", ["month: 13 is out of range 1-12"]],
    ["0 0 * 0 *", ["month: 0 is out of range 1-12"]],
    ["60 24 * 13 *", ["minute: 60 is out of range 0-59", "hour: 24 is out of range 0-23", "month: 13 is out of range 1-12"]],
    ["1,,2 * * * *", ['minute: "1,,2" has an empty list item; remove the extra comma']],
    ["1, * * * *", ['minute: "1," has an empty list item; remove the extra comma']],
    ["1,,,2 * * * *", ['minute: "1,,,2" has an empty list item; remove the extra comma']],
    ["0 0 * * */MON", ['day of week: "*/MON": the skip after / must be a number']],
    ["0 22-2 * * *", ['hour: "22-2" runs backwards (22 to 2); ranges do not wrap around: write 22-23,0-2']],
    ["0 0 * * MON-SUN", ['day of week: "MON-SUN" runs backwards (1 to 0); ranges do not wrap around: write 1-6,0']],
    ["*/0 * * * *", ['minute: "*/0": the skip must be at least 1']],
    ["1-5/5 * * * *", ["minute: \"1-5/5\": the skip 5 must be smaller than the range's end 5 (Aurora's crontab subset)"]],
    ["5/2 * * * *", ['minute: "5/2": a skip needs * or a range before the /, as in */2 or 5-59/2']],
    ["*/x * * * *", ['minute: "*/x": the skip after / must be a number']],
    ["1-2-3 * * * *", ['minute: "1-2-3" is not a value, a range or a skip; write 5, 1-5, *, */2 or 1-50/2, or a comma list of them']],
    ["-5 * * * *", ['minute: "-5" is not a value, a range or a skip; write 5, 1-5, *, */2 or 1-50/2, or a comma list of them']],
    ["0 0 ? * MON", ['day of month: "?": ? is Quartz syntax, not crontab(5); use *']],
    ["0 0 L * *", ['day of month: "L": L, W and # are Quartz extensions, not part of Aurora\'s crontab subset']],
    ["0 0 15W * *", ['day of month: "15W": L, W and # are Quartz extensions, not part of Aurora\'s crontab subset']],
    ["0 0 * * 5#2", ['day of week: "5#2": L, W and # are Quartz extensions, not part of Aurora\'s crontab subset']],
    ["0 0 * * FRIL", ['day of week: "FRIL": L, W and # are Quartz extensions, not part of Aurora\'s crontab subset']],
    ["JUL * * * *", ['minute: "JUL" is not a number (names are allowed only in month, JAN-DEC, and day of week, SUN-SAT)']],
    ["0 0 * FOO *", ['month: "FOO" is not a month name (JAN-DEC) or a number 1-12']],
    ["0 0 * MON *", ['month: "MON" is not a month name (JAN-DEC) or a number 1-12']],
    ["0 0 * * JAN", ['day of week: "JAN" is not a day name (SUN-SAT) or a number 0-6']],
    ["0 0 * * MONDAY", ['day of week: "MONDAY" is not a day name (SUN-SAT) or a number 0-6']],
    // Stricter than Aurora: a schedule that can never fire.
    ["0 0 30 2 *", ["day of month: 30 never comes in FEB: this schedule would never fire"]],
    ["0 0 31 APR,JUN *", ["day of month: 31 never comes in APR, JUN: this schedule would never fire"]],
  ];
  it.each(refused)("refuses %j", (expr, problems) => {
    expect(cronProblems(expr)).toEqual(problems);
    expect(() => canonicalCron(expr)).toThrow(`invalid cron schedule "${expr}"`);
  });

  it("7 is not Sunday: 0 and SUN are, and fire on a Sunday", () => {
    expect(cronProblems("0 12 * * 7")).toEqual(["day of week: 7 is not Sunday here; use 0 (Aurora's crontab subset)"]);
    expect(() => nextFire("0 12 * * 7", "UTC", 0)).toThrow("7 is not Sunday");
    const wed = ms("2026-12-02T00:00:00Z"); // a Wednesday
    expect(iso(nextFire("0 12 * * 0", "UTC", wed))).toBe("2026-12-06T12:00:00.000Z");
    expect(iso(nextFire("0 12 * * SUN", "UTC", wed))).toBe("2026-12-06T12:00:00.000Z");
  });

  it("names: MON-SAT skips Sundays; JAN fires in January only", () => {
    const sat = ms("2026-12-05T00:00:00Z"); // a Saturday
    expect(isos(firesBetween("0 6 * * MON-SAT", "UTC", sat, sat + 3 * 86_400_000, 10))).toEqual([
      "2026-12-05T06:00:00.000Z",
      "2026-12-07T06:00:00.000Z",
    ]);
    expect(isos(firesBetween("0 0 1 JAN *", "UTC", ms("2026-06-01T00:00:00Z"), ms("2029-01-01T00:00:00Z"), 10))).toEqual([
      "2027-01-01T00:00:00.000Z",
      "2028-01-01T00:00:00.000Z",
      "2029-01-01T00:00:00.000Z",
    ]);
  });

  it("a day of month that covers every day leaves the day of week in charge (Mondays only, not every day)", () => {
    const wed = ms("2026-12-02T00:00:00Z");
    expect(isos(firesBetween("0 0 1-31 * MON", "UTC", wed, wed + 14 * 86_400_000, 10))).toEqual([
      "2026-12-07T00:00:00.000Z",
      "2026-12-14T00:00:00.000Z",
    ]);
  });
});

describe("cron time zones", () => {
  const tzCases: Array<[string, string | null]> = [
    ["UTC", null],
    ["Europe/London", null],
    ["America/New_York", null],
    ["Etc/GMT+5", null],
    [
      "Mars/Base",
      '"Mars/Base" is not a time zone (offsets like +01:00 are not accepted either); use an IANA time zone name such as UTC, Europe/London or America/New_York',
    ],
    [
      "+01:00",
      '"+01:00" is not a time zone (offsets like +01:00 are not accepted either); use an IANA time zone name such as UTC, Europe/London or America/New_York',
    ],
    ["", "is empty; use an IANA time zone name such as UTC, Europe/London or America/New_York"],
    ["europe/london", 'write "Europe/London": time zone names are spelt with their capitals'],
    ["utc", 'write "UTC": time zone names are spelt with their capitals'],
  ];
  it.each(tzCases)("cronTimezoneProblem(%j) is %j", (tz, problem) => {
    expect(cronTimezoneProblem(tz)).toBe(problem);
  });

  it("09:00 Europe/London fires at 09:00 local across both DST changes (08:00Z in summer, 09:00Z in winter)", () => {
    const spring = firesBetween("0 9 * * *", "Europe/London", ms("2026-03-27T00:00:00Z"), ms("2026-03-31T00:00:00Z"), 10);
    expect(isos(spring)).toEqual([
      "2026-03-27T09:00:00.000Z",
      "2026-03-28T09:00:00.000Z",
      "2026-03-29T08:00:00.000Z", // clocks went forward at 01:00Z that morning
      "2026-03-30T08:00:00.000Z",
    ]);
    const autumn = firesBetween("0 9 * * *", "Europe/London", ms("2026-10-23T00:00:00Z"), ms("2026-10-27T00:00:00Z"), 10);
    expect(isos(autumn)).toEqual([
      "2026-10-23T08:00:00.000Z",
      "2026-10-24T08:00:00.000Z",
      "2026-10-25T09:00:00.000Z", // clocks went back at 01:00Z that morning
      "2026-10-26T09:00:00.000Z",
    ]);
    for (const t of [...spring, ...autumn]) expect(local(t, "Europe/London").slice(11)).toBe("09:00");
  });

  it("the same schedule in UTC and in New York fires at different instants", () => {
    const from = ms("2026-12-02T00:00:00Z");
    expect(iso(nextFire("0 9 * * *", "UTC", from))).toBe("2026-12-02T09:00:00.000Z");
    expect(iso(nextFire("0 9 * * *", "America/New_York", from))).toBe("2026-12-02T14:00:00.000Z");
  });

  it("DST edges (croner's rule): a fixed time in the spring gap runs just after it, once on the repeated hour", () => {
    // 01:30 does not exist in London on 2026-03-29: it runs at 02:00 BST (01:00Z).
    expect(isos(firesBetween("30 1 * * *", "Europe/London", ms("2026-03-28T12:00:00Z"), ms("2026-03-30T12:00:00Z"), 10))).toEqual([
      "2026-03-29T01:00:00.000Z",
      "2026-03-30T00:30:00.000Z",
    ]);
    // 01:30 happens twice on 2026-10-25: a fixed-time job runs once, the first time.
    expect(isos(firesBetween("30 1 * * *", "Europe/London", ms("2026-10-24T12:00:00Z"), ms("2026-10-25T12:00:00Z"), 10))).toEqual([
      "2026-10-25T00:30:00.000Z",
    ]);
    // An interval job runs on both occurrences of the repeated hour.
    expect(isos(firesBetween("*/30 * * * *", "Europe/London", ms("2026-10-24T23:59:00Z"), ms("2026-10-25T02:00:00Z"), 10))).toEqual([
      "2026-10-25T00:00:00.000Z",
      "2026-10-25T00:30:00.000Z",
      "2026-10-25T01:00:00.000Z",
      "2026-10-25T01:30:00.000Z",
      "2026-10-25T02:00:00.000Z",
    ]);
  });
});

describe("nextFire, previousFire, firesBetween", () => {
  const at = ms("2026-12-02T10:00:00Z");
  // [expression, after, the next fire]
  const next: Array<[string, string, string | null]> = [
    ["0 * * * *", "2026-12-02T10:00:00.000Z", "2026-12-02T11:00:00.000Z"], // strictly after
    ["0 * * * *", "2026-12-02T09:59:59.999Z", "2026-12-02T10:00:00.000Z"],
    ["* * * * *", "2026-12-02T10:00:00.001Z", "2026-12-02T10:01:00.000Z"],
    ["* * * * *", "2026-12-02T10:00:59.999Z", "2026-12-02T10:01:00.000Z"],
    ["*/15 9-17 * * MON-FRI", "2026-12-04T17:45:00.000Z", "2026-12-07T09:00:00.000Z"], // Friday evening → Monday
    ["0 0 29 2 *", "2026-03-01T00:00:00.000Z", "2028-02-29T00:00:00.000Z"],
    ["0 0 1 1 *", "9999-06-01T00:00:00.000Z", null], // croner looks no further than the year 9999
  ];
  it.each(next)("nextFire(%j, UTC, %s) is %s", (expr, after, fire) => {
    expect(iso(nextFire(expr, "UTC", ms(after)))).toBe(fire);
  });

  it("previousFire is at or before", () => {
    expect(iso(previousFire("0 * * * *", "UTC", at))).toBe("2026-12-02T10:00:00.000Z");
    expect(iso(previousFire("0 * * * *", "UTC", at - 1))).toBe("2026-12-02T09:00:00.000Z");
    expect(iso(previousFire("0 * * * *", "UTC", at + 59 * 60_000))).toBe("2026-12-02T10:00:00.000Z");
  });

  it("firesBetween is (from, to], in order, at most limit", () => {
    expect(isos(firesBetween("0 * * * *", "UTC", at, at + 3 * 3_600_000, 10))).toEqual([
      "2026-12-02T11:00:00.000Z",
      "2026-12-02T12:00:00.000Z",
      "2026-12-02T13:00:00.000Z",
    ]);
    expect(isos(firesBetween("0 * * * *", "UTC", at - 1, at + 3 * 3_600_000, 2))).toEqual([
      "2026-12-02T10:00:00.000Z",
      "2026-12-02T11:00:00.000Z",
    ]);
    expect(firesBetween("0 * * * *", "UTC", at, at, 10)).toEqual([]);
    expect(firesBetween("0 * * * *", "UTC", at, at - 1, 10)).toEqual([]);
    expect(firesBetween("* * * * *", "UTC", at, at + 86_400_000, 0)).toEqual([]);
    expect(firesBetween("* * * * *", "UTC", at, at + 86_400_000, 10_000)).toHaveLength(1440);
  });

  it("refuses a bad schedule, time zone or instant instead of guessing", () => {
    expect(() => nextFire("@daily", "UTC", at)).toThrow('invalid cron schedule "@daily": @daily: @-shortcuts are not supported');
    expect(() => nextFire("0 * * * *", "Mars/Base", at)).toThrow("invalid cron time zone");
    expect(() => nextFire("0 * * * *", "UTC", Number.NaN)).toThrow(RangeError);
    expect(() => firesBetween("0 * * * *", "UTC", at, Number.POSITIVE_INFINITY, 10)).toThrow(RangeError);
  });
});

describe("dueTrigger", () => {
  const base = { tz: "UTC", scheduledAtMs: ms("2026-12-01T00:00:00Z") };

  it("fires on time, with its reason", () => {
    expect(
      dueTrigger({ ...base, expr: "0 * * * *", lastFiredMinuteMs: ms("2026-12-02T09:00:00Z"), nowMs: ms("2026-12-02T10:00:05Z") }),
    ).toEqual({
      minuteMs: ms("2026-12-02T10:00:00Z"),
      missed: 0,
      missedCapped: false,
      catchingUp: false,
      reason: "cron 0 * * * * fired for 2026-12-02T10:00Z",
    });
  });

  it("fires at the very instant of its minute, and not again in that minute", () => {
    const first = dueTrigger({
      ...base,
      expr: "0 * * * *",
      lastFiredMinuteMs: ms("2026-12-02T09:00:00Z"),
      nowMs: ms("2026-12-02T10:00:00Z"),
    });
    expect(iso(first?.minuteMs ?? null)).toBe("2026-12-02T10:00:00.000Z");
    expect(
      dueTrigger({ ...base, expr: "0 * * * *", lastFiredMinuteMs: ms("2026-12-02T10:00:00Z"), nowMs: ms("2026-12-02T10:00:40Z") }),
    ).toBeNull();
  });

  // [what, expression, last fired (null: never), now]: nothing is due
  const nothing: Array<[string, string, string | null, string]> = [
    ["the next hour has not come", "0 * * * *", "2026-12-02T10:00:00Z", "2026-12-02T10:59:59.999Z"],
    ["scheduled within this minute: its start is not a trigger", "* * * * *", null, "2026-12-01T00:00:40Z"],
    ["last fired ahead of this clock (a leader whose clock is behind)", "* * * * *", "2026-12-02T10:05:00Z", "2026-12-02T10:00:30Z"],
  ];
  it.each(nothing)("nothing is due: %s", (_what, expr, last, now) => {
    expect(dueTrigger({ ...base, expr, lastFiredMinuteMs: last === null ? null : ms(last), nowMs: ms(now) })).toBeNull();
  });

  it("never fired: the first trigger after it was scheduled", () => {
    expect(dueTrigger({ ...base, expr: "* * * * *", lastFiredMinuteMs: null, nowMs: ms("2026-12-01T00:01:00Z") })).toEqual({
      minuteMs: ms("2026-12-01T00:01:00Z"),
      missed: 0,
      missedCapped: false,
      catchingUp: false,
      reason: "cron * * * * * fired for 2026-12-01T00:01Z",
    });
  });

  it("catching up after 3 missed minutes: fires ONCE, for the latest minute, with missed 3", () => {
    // Last fired 09:56; no leader ran until 10:00:30. 09:57, 09:58 and 09:59 were missed; 10:00 fires.
    expect(
      dueTrigger({ ...base, expr: "* * * * *", lastFiredMinuteMs: ms("2026-12-02T09:56:00Z"), nowMs: ms("2026-12-02T10:00:30Z") }),
    ).toEqual({
      minuteMs: ms("2026-12-02T10:00:00Z"),
      missed: 3,
      missedCapped: false,
      catchingUp: true,
      reason:
        "cron * * * * * catching up: 3 triggers were missed while no leader ran (last fired 2026-12-02T09:56Z); firing once for 2026-12-02T10:00Z",
    });
  });

  // [expression, last fired (null: never), now, fires for, missed, reason]
  const catchUps: Array<[string, string | null, string, string, number, string]> = [
    [
      "0 * * * *",
      "2026-12-02T09:00:00Z",
      "2026-12-02T10:25:10Z",
      "2026-12-02T10:00:00.000Z",
      0,
      "cron 0 * * * * catching up: the trigger for 2026-12-02T10:00Z was missed while no leader ran (last fired 2026-12-02T09:00Z); firing it now, 25m late",
    ],
    [
      "0 * * * *",
      "2026-12-02T08:00:00Z",
      "2026-12-02T10:00:20Z",
      "2026-12-02T10:00:00.000Z",
      1,
      "cron 0 * * * * catching up: 1 trigger was missed while no leader ran (last fired 2026-12-02T08:00Z); firing once for 2026-12-02T10:00Z",
    ],
    [
      "0 * * * *",
      "2026-12-02T06:00:00Z",
      "2026-12-02T10:30:00Z",
      "2026-12-02T10:00:00.000Z",
      3,
      "cron 0 * * * * catching up: 3 triggers were missed while no leader ran (last fired 2026-12-02T06:00Z); firing once for 2026-12-02T10:00Z, 30m late",
    ],
    [
      "0 0 * * *",
      "2026-11-28T00:00:00Z",
      "2026-12-02T05:10:00Z",
      "2026-12-02T00:00:00.000Z",
      3,
      "cron 0 0 * * * catching up: 3 triggers were missed while no leader ran (last fired 2026-11-28T00:00Z); firing once for 2026-12-02T00:00Z, 5h 10m late",
    ],
    [
      "0 * * * *",
      null,
      "2026-12-01T03:00:10Z",
      "2026-12-01T03:00:00.000Z",
      2,
      "cron 0 * * * * catching up: 2 triggers were missed while no leader ran (scheduled 2026-12-01T00:00Z, never fired); firing once for 2026-12-01T03:00Z",
    ],
  ];
  it.each(catchUps)("catching up: %j last fired %s, now %s → fires for %s, missed %i", (expr, last, now, fires, missed, reason) => {
    const t = dueTrigger({ ...base, expr, lastFiredMinuteMs: last === null ? null : ms(last), nowMs: ms(now) });
    expect(t).toEqual({ minuteMs: ms(fires), missed, missedCapped: false, catchingUp: true, reason });
  });

  it("counts at most 10,000 missed triggers, and says there were more", () => {
    // An every-minute job last fired 12 days and 4 minutes before: 17,283 triggers were missed.
    const t = dueTrigger({ ...base, expr: "* * * * *", lastFiredMinuteMs: ms("2026-11-20T09:56:00Z"), nowMs: ms("2026-12-02T10:00:30Z") });
    expect(t).toEqual({
      minuteMs: ms("2026-12-02T10:00:00Z"),
      missed: MAX_COUNTED_MISSES,
      missedCapped: true,
      catchingUp: true,
      reason:
        "cron * * * * * catching up: more than 10,000 triggers were missed while no leader ran (last fired 2026-11-20T09:56Z); firing once for 2026-12-02T10:00Z",
    });
  });

  it("exactly 10,000 missed is counted, not capped", () => {
    const last = ms("2026-12-02T10:00:00Z") - 10_001 * 60_000;
    const t = dueTrigger({ ...base, expr: "* * * * *", lastFiredMinuteMs: last, nowMs: ms("2026-12-02T10:00:30Z") });
    expect(t?.missed).toBe(10_000);
    expect(t?.missedCapped).toBe(false);
  });

  it("in a time zone, the reason gives the local time too", () => {
    const t = dueTrigger({
      expr: "0 9 * * *",
      tz: "Europe/London",
      scheduledAtMs: ms("2026-03-01T00:00:00Z"),
      lastFiredMinuteMs: ms("2026-03-28T09:00:00Z"),
      nowMs: ms("2026-03-29T08:00:20Z"),
    });
    expect(t).toEqual({
      minuteMs: ms("2026-03-29T08:00:00Z"),
      missed: 0,
      missedCapped: false,
      catchingUp: false,
      reason: "cron 0 9 * * * (Europe/London) fired for 2026-03-29T08:00Z (2026-03-29 09:00 Europe/London)",
    });
  });
});

describe("collisions", () => {
  // [policy, active tasks, decision]
  const cases: Array<[Parameters<typeof collision>[0]["policy"], number, ReturnType<typeof collision>]> = [
    [undefined, 0, { action: "RUN" }],
    ["KILL_EXISTING", 0, { action: "RUN" }],
    ["CANCEL_NEW", 0, { action: "RUN" }],
    ["RUN_OVERLAP", 0, { action: "RUN" }],
    [
      undefined,
      2,
      { action: "KILL_THEN_RUN", reason: "KILL_EXISTING: the previous run is still active (2 tasks); killing it, then launching this run" },
    ],
    [
      "KILL_EXISTING",
      1,
      { action: "KILL_THEN_RUN", reason: "KILL_EXISTING: the previous run is still active (1 task); killing it, then launching this run" },
    ],
    ["CANCEL_NEW", 3, { action: "SKIP", reason: "CANCEL_NEW: the previous run is still active (3 tasks); this trigger is skipped" }],
    [
      "RUN_OVERLAP",
      1,
      {
        action: "SKIP",
        reason:
          "RUN_OVERLAP is deprecated and treated as CANCEL_NEW, as Aurora does for existing jobs: the previous run is still active (1 task); this trigger is skipped",
      },
    ],
  ];
  it.each(cases)("policy %s with %i active tasks", (policy, activeTasks, decision) => {
    expect(collision({ policy, activeTasks })).toEqual(decision);
  });
});

describe("KILL_EXISTING backoff", () => {
  const cases: Array<[number, number]> = [
    [0, 5_000],
    [1, 10_000],
    [2, 20_000],
    [3, 40_000],
    [4, 60_000],
    [5, 60_000],
    [1000, 60_000],
    [-1, 5_000],
    [Number.NaN, 5_000],
  ];
  it.each(cases)("attempt %d waits %d ms", (attempt, wait) => {
    expect(killExistingBackoffMs(attempt)).toBe(wait);
  });
});

describe("cronSpecProblems", () => {
  const cases: Array<[string, Parameters<typeof cronSpecProblems>[0], Array<{ path: string; rule: string }>]> = [
    ["not a cron job", { service: true }, []],
    ["a batch cron job", { cronSchedule: "0 * * * *" }, []],
    [
      "every field, well set",
      { service: false, cronSchedule: "*/5 * * * MON-FRI", cronTimezone: "Europe/London", cronCollisionPolicy: "CANCEL_NEW" },
      [],
    ],
    ["KILL_EXISTING", { cronSchedule: "0 * * * *", cronCollisionPolicy: "KILL_EXISTING" }, []],
    [
      "a cron job cannot be a service",
      { service: true, cronSchedule: "0 * * * *" },
      [{ path: "service", rule: "a cron job cannot be a service: drop service: true, or drop cronSchedule" }],
    ],
    [
      "RUN_OVERLAP is refused",
      { cronSchedule: "0 * * * *", cronCollisionPolicy: "RUN_OVERLAP" },
      [
        {
          path: "cronCollisionPolicy",
          rule: "RUN_OVERLAP is deprecated and refused, as Aurora's createJob does; use KILL_EXISTING or CANCEL_NEW",
        },
      ],
    ],
    [
      "an unknown policy",
      { cronSchedule: "0 * * * *", cronCollisionPolicy: "kill_existing" },
      [{ path: "cronCollisionPolicy", rule: "must be one of KILL_EXISTING (the default), CANCEL_NEW" }],
    ],
    [
      "every schedule problem, each with its path",
      { cronSchedule: "60 0 1 * 7" },
      [
        { path: "cronSchedule", rule: "minute: 60 is out of range 0-59" },
        { path: "cronSchedule", rule: "day of week: 7 is not Sunday here; use 0 (Aurora's crontab subset)" },
      ],
    ],
    [
      "a schedule that is not a string",
      { cronSchedule: 5 },
      [{ path: "cronSchedule", rule: 'must be a string: a crontab(5) schedule such as "0 * * * *"' }],
    ],
    [
      "a bad time zone",
      { cronSchedule: "0 * * * *", cronTimezone: "Mars/Base" },
      [
        {
          path: "cronTimezone",
          rule: '"Mars/Base" is not a time zone (offsets like +01:00 are not accepted either); use an IANA time zone name such as UTC, Europe/London or America/New_York',
        },
      ],
    ],
    [
      "a time zone that is not a string",
      { cronSchedule: "0 * * * *", cronTimezone: 1 },
      [{ path: "cronTimezone", rule: 'must be a string: an IANA time zone name such as "Europe/London" (default UTC)' }],
    ],
    [
      "cron fields without a schedule",
      { cronTimezone: "UTC", cronCollisionPolicy: "CANCEL_NEW" },
      [
        { path: "cronTimezone", rule: "is set but cronSchedule is not: a time zone applies only to a cron job" },
        { path: "cronCollisionPolicy", rule: "is set but cronSchedule is not: a collision policy applies only to a cron job" },
      ],
    ],
    [
      "everything wrong at once",
      { service: true, cronSchedule: "@daily", cronTimezone: "utc", cronCollisionPolicy: "RUN_OVERLAP" },
      [
        { path: "cronSchedule", rule: "@daily: @-shortcuts are not supported; write the 5 fields (@daily is 0 0 * * *)" },
        { path: "service", rule: "a cron job cannot be a service: drop service: true, or drop cronSchedule" },
        { path: "cronTimezone", rule: 'write "UTC": time zone names are spelt with their capitals' },
        {
          path: "cronCollisionPolicy",
          rule: "RUN_OVERLAP is deprecated and refused, as Aurora's createJob does; use KILL_EXISTING or CANCEL_NEW",
        },
      ],
    ],
  ];
  it.each(cases)("%s", (_what, spec, problems) => {
    expect(cronSpecProblems(spec)).toEqual(problems);
  });
});
