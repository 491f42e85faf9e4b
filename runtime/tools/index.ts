export { createBashTool, type BashToolOptions, type NetworkRegistry } from "./bash.ts";
export { createEditFileTool } from "./edit-file.ts";
export { createListFilesTool } from "./list-files.ts";
export { NO_RULES, realPath, resolvePath, type PathRules } from "./paths.ts";
export { createReadFileTool } from "./read-file.ts";
export { createSearchFilesTool } from "./search-files.ts";
export { defineTool, toApiTool, ToolError, type PermissionChecker, type Tool, type ToolContext, type WorkdirView } from "./tool.ts";
export { createWebFetchTool, type WebFetchOptions } from "./web-fetch.ts";
export { createWriteFileTool } from "./write-file.ts";
