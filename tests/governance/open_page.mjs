// Open a local HTML file in headless Chromium (Debian's) with the network cut off, and report
// what a reader's browser would: console messages, page errors, requests it tried, and a few
// facts about the page. Usage: node open_page.mjs page.html [screenshot.png] -> JSON on stdout.
// Uses the playwright-core of tests/js (`make js-deps`).
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../js/package.json", import.meta.url));
const { chromium } = require("playwright-core");

const page_path = path.resolve(process.argv[2]);
const screenshot = process.argv[3] ? path.resolve(process.argv[3]) : null;
const url = pathToFileURL(page_path).href;
const userDataDir = mkdtempSync(path.join(tmpdir(), "audit-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const report = { console: [], pageErrors: [], requests: [] };
try {
  const page = await context.newPage();
  await page.setViewportSize({ width: 1280, height: 1000 });
  page.on("console", (msg) => report.console.push({ type: msg.type(), text: msg.text() }));
  page.on("pageerror", (err) => report.pageErrors.push(String(err?.message ?? err)));
  await page.route("**/*", (route) => {
    const asked = route.request().url();
    if (asked === url) return route.continue();
    report.requests.push(asked);
    return route.abort();
  });
  await page.goto(url, { waitUntil: "load" });
  Object.assign(report, await page.evaluate(() => ({
    title: document.title,
    h2: [...document.querySelectorAll("h2")].map((h) => h.textContent),
    svgs: document.querySelectorAll("figure.chart svg").length,
    tables: document.querySelectorAll("table").length,
    brokenAnchors: [...document.querySelectorAll('a[href^="#"]')]
      .map((a) => a.getAttribute("href").slice(1))
      .filter((id) => !document.getElementById(id)),
    scripts: document.querySelectorAll("script").length,
    text: document.body.innerText.length,
  })));
  if (screenshot) await page.screenshot({ path: screenshot });
  process.stdout.write(JSON.stringify(report));
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
