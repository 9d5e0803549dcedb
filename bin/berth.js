#!/usr/bin/env node
// Runs the compiled entry point in dist/ (`npm run build` writes it; `npm start` and `npm pack` build first, so an
// installed package always has it). In a git checkout without a build, it runs the TypeScript sources through tsx
// (a development dependency), so `npx berth` works straight from a checkout.
import { existsSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

const compiled = new URL('../dist/main.js', import.meta.url);
const sources = new URL('../src/main.ts', import.meta.url);
if (existsSync(compiled)) {
  await import(compiled.href);
} else if (existsSync(sources)) {
  let register;
  try {
    ({ register } = await import('tsx/esm/api'));
  } catch {
    process.stderr.write(
      'berth: dist/ is not built and tsx is not installed: run `npm ci`, or `npm run build`.\n',
    );
    process.exit(1);
  }
  register();
  await import(sources.href);
} else {
  process.stderr.write(
    'berth: this installation has no dist/main.js (the package was not built): reinstall berth.\n',
  );
  process.exit(1);
}
