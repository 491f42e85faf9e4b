export { openMcpHost, type BlockedConnection, type McpHost } from "./host.ts";
export { approvePins, comparePins, currentPins, definitionDiff, pinsFile, readPins, toolHash, writePins, type ApprovedPin, type PinFile, type PinState, type SharedPins } from "./pins.ts";
export { findConfigSecrets, secretReason, type ConfigSecret } from "./secrets.ts";
export { connectServer, filterTools, networkKey, serverNetworkDecider, type ConnectedServer, type McpDeps } from "./servers.ts";
export { SandboxedStdioTransport } from "./transport.ts";
