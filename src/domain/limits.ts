// Every limit on what Roost accepts from outside, in one place (TigerBeetle's habit: explicit
// limits, named, with the reason next to them).
//
// Why this file exists: before it, a job with cpus 1e-300, ramMb 1e308, a process named "..",
// a 900 KB command line or a cmdline holding a NUL byte was accepted, logged, and then failed to
// launch forever (FAILED → THROTTLED → FAILED …), or wrote its output outside its sandbox. Each
// bound below is checked where a request enters (the job spec schema, the API and agent message
// schemas); none of them is checked by the fold, which must fold every record any earlier build
// wrote, so tightening a limit never changes history.

/**
 * Roles, environments, job names and process names: letters, digits, "_", "." and "-", never
 * starting with "." or "-". So "." and ".." (which name directories) and "-x" (which reads as a
 * flag) are impossible, and every name is safe as a path segment and a NATS subject token.
 */
export const NAME_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]*$";
export const NAME_MAX_LENGTH = 64;

/** Aurora's allowed_job_environments default (ConfigurationManager.DEFAULT_ALLOWED_JOB_ENVIRONMENTS). */
export const DEFAULT_ENVIRONMENT_PATTERN = "^(prod|devel|test|staging\\d*)$";

/** Aurora: at most 4000 tasks per job. */
export const MAX_INSTANCES = 4000;

/** cpus are counted in thousandths (every sum is rounded to them: resources.ts), so that is the smallest grain. */
export const MIN_CPUS = 0.001;
/** A task asks for at most this much of one host; nothing real comes close. */
export const MAX_CPUS = 1024;
export const MAX_RAM_MB = 4 * 1024 * 1024; // 4 TiB
export const MAX_DISK_MB = 64 * 1024 * 1024; // 64 TiB
export const MAX_GPUS = 64;
export const MAX_PRIORITY = 1000;
/** maxTaskFailures: -1 means unlimited; otherwise at most this many. */
export const MAX_TASK_FAILURES = 100;

/** A role's production quota (a sum over many tasks). */
export const MAX_QUOTA_CPUS = 1_000_000;
export const MAX_QUOTA_MB = 2 ** 40; // 1 EiB

export const MAX_PORTS_PER_TASK = 64;
export const PORT_NAME_PATTERN = "^[a-z][a-z0-9_]*$";
export const PORT_NAME_MAX_LENGTH = 32;

export const MAX_CONSTRAINTS = 32;
export const MAX_CONSTRAINT_LENGTH = 256;

export const MAX_PROCESSES = 32;
/** A process's maxFailures: 0 means restarted without end; otherwise at most this many. */
export const MAX_PROCESS_FAILURES = 1000;
/** A process's minDuration, and the health check's intervals and timeout, in seconds (an hour). */
export const MAX_SERVICE_SECS = 3600;
/** Aurora caps finalization_wait at 60 s: a kill must end in bounded time. */
export const MAX_FINALIZATION_WAIT_SECS = 60;
/** Health check counters (Aurora: any int; these are far past anything sensible). */
export const MAX_HEALTH_COUNT = 1000;
/** An HTTP endpoint of a task (health check, lifecycle steps): a path. */
export const URL_PATH_PATTERN = "^/[^\\s]*$";
/** A health check's HTTP endpoint and expected response, and a shell check's command. */
export const MAX_HEALTH_TEXT = 1024;
/**
 * Aurora's executor caps the two HTTP waits of a graceful kill together
 * (--stop_timeout_in_secs, 2 min).
 */
export const MAX_HTTP_LIFECYCLE_WAIT_SECS = 120;
/**
 * A command line is one argument of /bin/sh -c. Linux refuses a single argument over 128 KiB
 * (MAX_ARG_STRLEN) with E2BIG at exec time, after the job was accepted; 64 KiB leaves room and is
 * far above any hand-written command. Counted in UTF-8 bytes.
 */
export const MAX_CMDLINE_BYTES = 64 * 1024 - 1;

/** Who asked: printable ASCII, no leading or trailing space. It goes into reasons verbatim. */
export const USER_PATTERN = "^[!-~](?:[ -~]*[!-~])?$";
export const USER_MAX_LENGTH = 64;

/**
 * Agent ids become NATS subject tokens (roost.agent.<id>.launch): no wildcards, no white space,
 * no empty token. Host names are DNS-like.
 */
export const AGENT_ID_PATTERN = "^[A-Za-z0-9_:-]+(?:\\.[A-Za-z0-9_:-]+)*$";
export const AGENT_ID_MAX_LENGTH = 128;
export const HOST_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.:-]*$";
export const HOST_MAX_LENGTH = 255;
export const MAX_ATTRIBUTES = 64;
export const ATTRIBUTE_VALUE_MAX_LENGTH = 256;
/** What an agent may offer (sanity, not policy). */
export const MAX_AGENT_CPUS = 65536;
export const MAX_AGENT_RAM_MB = 1024 * 1024 * 1024; // 1 PiB
export const MAX_AGENT_DISK_MB = 1024 * 1024 * 1024;
export const MAX_AGENT_GPUS = 1024;
export const MAX_PORT_RANGES = 64;
/** Task ids an agent may list at registration. */
export const MAX_RUNNING_REPORTED = 100_000;

/** Task ids as the scheduler makes them (role-env-name-instance-hex), and as agents echo them. */
export const TASK_ID_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]*$";
export const TASK_ID_MAX_LENGTH = 256;
/** Free text an agent attaches to a status update; it goes into the event's reason. */
export const STATUS_MESSAGE_MAX_LENGTH = 2048;
/**
 * How long a keyed request's outcome is kept (in log time: event timestamps), so the same key sent
 * again returns the first outcome. Beyond JetStream's duplicate window (2 min) on purpose: a
 * request redelivered after a long outage, or retried by a client the next morning, must still not
 * run twice. Each kept key costs its key, op and reply value in memory and in snapshots.
 */
export const REQUEST_KEY_RETENTION_MS = 24 * 60 * 60 * 1000;

/** An opaque id (boot ids, scheduler ids) as text. */
export const OPAQUE_ID_MAX_LENGTH = 128;
