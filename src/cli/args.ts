// Command-line values shared by the CLI's commands. Sizes parse as the app's Memory setting does (src/io/memory.ts).
export { parseMemorySize as parseBytes } from '../io/memory';
