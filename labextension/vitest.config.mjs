// Unit tests of the pure modules (citations, graph model, event reducer, text helpers, proposals): node, no DOM.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    cache: false
  }
});
