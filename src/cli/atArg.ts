// `--at`, `--from`, `--to`: how every command that reads the past names a moment. One parser, so
// `roost replay --at`, `roost history --from` and `roost snapshot write --at` accept the same.

import { InvalidArgumentError } from "commander";

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** `--at`, `--from`, `--to`: a log sequence (0 = before the first record) or an RFC 3339 time. */
export function atArg(v: string): number | string {
  if (/^\d+$/.test(v) && Number.isSafeInteger(Number(v))) return Number(v);
  if (TIME.test(v) && Number.isFinite(Date.parse(v))) return v;
  throw new InvalidArgumentError("must be a log sequence (0, 1, 2, …) or a time (RFC 3339, e.g. 2026-12-02T03:12:00Z)");
}
