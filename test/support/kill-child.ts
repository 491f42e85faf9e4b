// A child process for crash tests: runs a task through the real runtime, like `nightshift run`, and
// kills itself with SIGKILL right after the Nth event of a given type is durable in the log.
// usage: node kill-child.ts SESSION_ID WORKDIR PROMPT EVENT_TYPE N
import { readPrefix } from "../../memory/index.ts";
import { createRuntime, loadConfig, systemClock } from "../../runtime/index.ts";

const [id, workdir, prompt, killType, killCount] = process.argv.slice(2) as [string, string, string, string, string];
const loaded = loadConfig(process.env);
const runtime = await createRuntime({ loaded, clock: systemClock, loadPrefix: () => readPrefix(loaded.home) });
let seen = 0;
await runtime.start(
  id,
  { title: prompt, prompt, workdir, model: "main", budget: { max_turns: 10, max_usd: 1, timeout_ms: 600_000 } },
  {
    emit: (_session, event) => {
      if (event.type === killType && ++seen === Number(killCount)) process.kill(process.pid, "SIGKILL");
    },
  },
);
