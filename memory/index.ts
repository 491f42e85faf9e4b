export { DEFAULT_IDENTITY, DEFAULT_MEMORY, readPrefix } from "./identity.ts";
