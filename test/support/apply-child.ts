// usage: node apply-child.ts HOME ID STEP — carries out a written apply plan and kills itself with
// SIGKILL right after step STEP, as a power cut or kill -9 would stop it.
import { runApply } from "../../runtime/stage/apply.ts";

const [home, id, step] = process.argv.slice(2);
runApply(home!, id!, { afterStep: (index) => void (index === Number(step) && process.kill(process.pid, "SIGKILL")) });
