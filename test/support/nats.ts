// vitest helpers: a real nats-server (JetStream) per test file, on free ports, in a temp dir.
//
//   const nats = withNats();              // at the top of a test file (registers beforeAll/afterAll)
//   const log = await nats.openLog("MY_STREAM");   // inside a test; closed after the file
//
// afterAll closes every log opened through the helper, stops the server (SIGTERM, SIGKILL after
// 5 s) and removes its temp dir.

import { afterAll, beforeAll } from "vitest";
import { openJetStreamLog, type JetStreamLog, type JetStreamLogOptions } from "../../src/eventlog/jetstream.js";
import { startNatsServer, type NatsServerHandle } from "../../src/natsServer/server.js";

export interface NatsFixture {
  /** The running server (throws when read outside a test or hook). */
  readonly server: NatsServerHandle;
  /** nats://127.0.0.1:<port> */
  readonly url: string;
  /** Open a JetStreamLog on a stream of this server; closed in afterAll. */
  openLog(stream: string, opts?: Partial<JetStreamLogOptions>): Promise<JetStreamLog>;
}

export function withNats(): NatsFixture {
  let handle: NatsServerHandle | undefined;
  const logs: JetStreamLog[] = [];

  beforeAll(async () => {
    handle = await startNatsServer();
  });

  afterAll(async () => {
    await Promise.allSettled(logs.map((l) => l.close()));
    logs.length = 0;
    const h = handle;
    handle = undefined;
    await h?.stop();
  });

  const fixture: NatsFixture = {
    get server(): NatsServerHandle {
      if (!handle) throw new Error("withNats(): the server is only available inside tests and hooks");
      return handle;
    },
    get url(): string {
      return fixture.server.url;
    },
    async openLog(stream, opts = {}) {
      const log = await openJetStreamLog({ servers: fixture.url, stream, ...opts });
      logs.push(log);
      return log;
    },
  };
  return fixture;
}
