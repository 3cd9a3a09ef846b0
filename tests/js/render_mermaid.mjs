// Render mermaid diagrams with the real `mermaid` package in headless Chromium (Debian's).
// Usage: node render_mermaid.mjs diagrams.json  -> prints [{ok, error, svgLength}, ...] as JSON.
// Used by tests/test_report.py; a diagram that mermaid cannot parse or draw comes back ok=false.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const diagrams = JSON.parse(readFileSync(process.argv[2], "utf8"));
const userDataDir = mkdtempSync(path.join(tmpdir(), "mermaid-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  headless: true,
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
try {
  const page = await context.newPage();
  // Nothing may come from the network: the page and mermaid are both local.
  await page.route("**/*", (route) => route.abort());
  await page.setContent("<!doctype html><html><body></body></html>");
  await page.addScriptTag({ path: path.join(here, "node_modules/mermaid/dist/mermaid.min.js") });
  const results = await page.evaluate(async (sources) => {
    globalThis.mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });
    const out = [];
    for (const [i, source] of sources.entries()) {
      try {
        const { svg } = await globalThis.mermaid.render(`diagram${i}`, source);
        const failed = svg.includes('aria-roledescription="error"');
        out.push({ ok: !failed, error: failed ? "mermaid drew its error diagram" : null,
                   svgLength: svg.length, svg });
      } catch (err) {
        out.push({ ok: false, error: String(err?.message ?? err), svgLength: 0 });
      }
    }
    return out;
  }, diagrams);
  process.stdout.write(JSON.stringify(results));
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
