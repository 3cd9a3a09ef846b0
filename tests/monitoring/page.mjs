// Open the monitoring page in headless Chromium (the tests' own, via tests/js's playwright-core)
// with every network request refused, and report what a reader sees.
// Usage: node page.mjs report.html screenshot.png  -> prints JSON:
//   {errors: [...console errors and page errors], requests: [...non-file URLs asked for],
//    numbers: [{key, value, format, text}], charts: <number of drawn plotly charts>}
import { createRequire } from "node:module";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "..", "js", "package.json"));
const { chromium } = require("playwright-core");

const [page_path, screenshot] = process.argv.slice(2);
const userDataDir = mkdtempSync(path.join(tmpdir(), "monitoring-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 1000 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const errors = [];
const requests = [];
try {
  const page = await context.newPage();
  page.on("console", (msg) => { if (msg.type() === "error") errors.push(msg.text()); });
  page.on("pageerror", (err) => errors.push(String(err?.message ?? err)));
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith("file:")) return route.continue();
    requests.push(url);
    return route.abort();
  });
  await page.goto(pathToFileURL(path.resolve(page_path)).href, { waitUntil: "load" });
  await page.waitForFunction(() => document.querySelectorAll(".js-plotly-plot .main-svg").length > 0,
                             null, { timeout: 30000 });
  const numbers = await page.$$eval("[data-key]", (els) => els.map((e) => ({
    key: e.dataset.key, value: JSON.parse(e.dataset.value), format: e.dataset.format,
    text: e.textContent,
  })));
  const charts = await page.$$eval(".js-plotly-plot", (els) => els.length);
  await page.screenshot({ path: screenshot, fullPage: false });
  process.stdout.write(JSON.stringify({ errors, requests, numbers, charts }));
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
