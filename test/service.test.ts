import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { describe, it } from "node:test";
import { installService } from "../cli/service.ts";
import { tempDir } from "./support/home.ts";

describe("nightshift service install", () => {
  it("writes a systemd user unit that restarts the daemon, and keeps one the user edited", () => {
    const dir = tempDir();
    try {
      const options = { platform: "linux" as const, nodePath: "/opt/node/bin/node", cliPath: "/opt/nightshift/dist/cli/nightshift.js", home: "/home/me/my nightshift", userHome: dir.path };
      const first = installService(options);
      assert.equal(first.created, true);
      assert.equal(first.path, `${dir.path}/.config/systemd/user/nightshift.service`);
      const unit = readFileSync(first.path, "utf8");
      assert.match(unit, /^ExecStart=\/opt\/node\/bin\/node \/opt\/nightshift\/dist\/cli\/nightshift\.js start$/m);
      assert.match(unit, /^Environment=NIGHTSHIFT_HOME="\/home\/me\/my nightshift"$/m);
      assert.match(unit, /^Restart=on-failure$/m);
      assert.match(first.next, /systemctl --user enable --now nightshift/);
      writeFileSync(first.path, "# mine\n");
      const second = installService(options);
      assert.equal(second.created, false);
      assert.equal(readFileSync(first.path, "utf8"), "# mine\n");
    } finally {
      dir.cleanup();
    }
  });

  it("writes a launchd agent on macOS that keeps the daemon alive", () => {
    const dir = tempDir();
    try {
      const result = installService({ platform: "darwin", nodePath: "/usr/local/bin/node", cliPath: "/opt/ns/dist/cli/nightshift.js", home: "/Users/me/.nightshift", userHome: dir.path });
      const plist = readFileSync(result.path, "utf8");
      assert.match(result.path, /Library\/LaunchAgents\/dev\.nightshift\.daemon\.plist$/);
      assert.match(plist, /<string>\/usr\/local\/bin\/node<\/string><string>\/opt\/ns\/dist\/cli\/nightshift\.js<\/string><string>start<\/string>/);
      assert.match(plist, /<key>KeepAlive<\/key><true\/>/);
      assert.match(result.next, /launchctl load -w/);
    } finally {
      dir.cleanup();
    }
  });
});
