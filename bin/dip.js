#!/usr/bin/env node
// The `dip` command (npm link / npx): runs the TypeScript sources through tsx, as `npm run dip` does.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
