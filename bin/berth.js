#!/usr/bin/env node
// Runs the compiled entry point (`npm run build` writes dist/; `npm start` builds first). Without a build, it runs
// the TypeScript sources through tsx, so `npx berth` works straight from a checkout.
import { existsSync } from 'node:fs';
import { URL } from 'node:url';

const compiled = new URL('../dist/main.js', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/main.ts');
}
