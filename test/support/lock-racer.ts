// A child process for the lock race test: for each round it waits (spinning, so that all racers
// leave at the same instant) until the file go-N appears, then tries to lock DIR/N and prints
// "N won" or "N lost". Locks won are held until the process exits.
// usage: node lock-racer.ts DIR ROUNDS
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SessionBusy } from "../../runtime/errors.ts";
import { lockSession } from "../../runtime/session-lock.ts";

const [dir, rounds] = process.argv.slice(2) as [string, string];
for (let round = 0; round < Number(rounds); round++) {
  while (!existsSync(join(dir, `go-${round}`))) {
    // spin: a timer's granularity would spread the racers out
  }
  try {
    lockSession(join(dir, String(round)));
    process.stdout.write(`${round} won\n`);
  } catch (error) {
    if (!(error instanceof SessionBusy)) throw error;
    process.stdout.write(`${round} lost\n`);
  }
}
process.stdin.resume(); // hold the locks until the test is done
