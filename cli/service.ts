import { mkdirSync, writeFileSync, existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/**
 * `nightshift service install`: a systemd user unit (Linux) or a launchd agent (macOS) that starts
 * the daemon at login and restarts it if it dies. Never overwrites a unit the user edited.
 */
export function installService(options: { platform: NodeJS.Platform; nodePath: string; cliPath: string; home: string; userHome?: string }): { path: string; next: string; created: boolean } {
  const userHome = options.userHome ?? homedir();
  const command = [options.nodePath, options.cliPath, "start"];
  if (options.platform === "darwin") {
    const path = join(userHome, "Library", "LaunchAgents", "dev.nightshift.daemon.plist");
    const plist = `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>dev.nightshift.daemon</string>
  <key>ProgramArguments</key>
  <array>${command.map((part) => `<string>${escapeXml(part)}</string>`).join("")}</array>
  <key>EnvironmentVariables</key>
  <dict><key>NIGHTSHIFT_HOME</key><string>${escapeXml(options.home)}</string></dict>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><true/>
  <key>StandardErrorPath</key><string>${escapeXml(join(options.home, "logs", "daemon.err"))}</string>
</dict>
</plist>
`;
    return write(path, plist, `launchctl load -w ${path}`);
  }
  const path = join(userHome, ".config", "systemd", "user", "nightshift.service");
  const unit = `[Unit]
Description=Nightshift personal agent runtime
After=network-online.target

[Service]
ExecStart=${command.map(quoteSystemd).join(" ")}
Environment=NIGHTSHIFT_HOME=${quoteSystemd(options.home)}
Restart=on-failure
RestartSec=5
# SIGTERM lets running sessions reach a safe point; they resume at the next start.
KillSignal=SIGTERM
TimeoutStopSec=60

[Install]
WantedBy=default.target
`;
  return write(path, unit, "systemctl --user daemon-reload && systemctl --user enable --now nightshift");
}

function write(path: string, content: string, next: string) {
  if (existsSync(path)) return { path, next, created: false };
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, content);
  return { path, next, created: true };
}

function escapeXml(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function quoteSystemd(text: string): string {
  return /[\s"\\]/.test(text) ? `"${text.replace(/(["\\])/g, "\\$1")}"` : text;
}
