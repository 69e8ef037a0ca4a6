import { defineConfig } from 'vitest/config';
import type { Plugin } from 'vite';
import { existsSync, readdirSync } from 'node:fs';

// Without a GPU, Dawn (npm `webgpu`) runs on SwiftShader, the CPU Vulkan driver that Debian's chromium ships.
// Point the Vulkan loader at it unless the environment already names a driver (as on a GPU machine).
const swiftshaderIcd = '/usr/lib/chromium/vk_swiftshader_icd.json';
const vulkanEnv: Record<string, string> =
  !process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES && existsSync(swiftshaderIcd)
    ? { VK_ICD_FILENAMES: swiftshaderIcd }
    : {};

// The dashboard's bundled models: folders under public/models/ with a config.json, and the files in each (listed when
// the server starts). The app asks for exactly these files: a dev server answers unknown paths with index.html.
const bundledModels: Record<string, string[]> = {};
if (existsSync('public/models')) {
  for (const d of readdirSync('public/models', { withFileTypes: true })) {
    const dir = `public/models/${d.name}`;
    if (d.isDirectory() && existsSync(`${dir}/config.json`)) {
      bundledModels[d.name] = readdirSync(dir, { withFileTypes: true }).filter((f) => f.isFile()).map((f) => f.name).sort();
    }
  }
}

// index.html's Content-Security-Policy allows styles from files only. The development server injects imported CSS as
// <style> elements, so there (and only there) style-src also gets 'unsafe-inline'.
const devServerStyles: Plugin = {
  name: 'moescope-dev-csp',
  apply: 'serve',
  transformIndexHtml: (html) => html.replace("style-src 'self';", "style-src 'self' 'unsafe-inline';"),
};

export default defineConfig({
  plugins: [devServerStyles],
  define: { __MOESCOPE_BUNDLED_MODELS__: JSON.stringify(bundledModels) },
  server: { port: 5173 },
  build: { target: 'es2022', chunkSizeWarningLimit: 2000 },
  test: {
    include: ['tests/**/*.test.ts'],
    // The page under stress (a lost device, 300 random actions) takes minutes of two busy cores beside the other
    // e2e files, where its time limits fail by load alone: it runs on its own, `npm run test:stress`.
    exclude: process.env.MOESCOPE_STRESS ? ['node_modules/**'] : ['node_modules/**', 'tests/e2e/reliability.test.ts'],
    env: vulkanEnv,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
