#!/usr/bin/env node
// moescope CLI entry: runs the TypeScript sources through tsx (no build step).
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/moescope.ts');
