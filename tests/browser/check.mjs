// Opens a report written by `nsod report` in Debian's Chromium (headless, through playwright-core) and prints what a
// user would see, as JSON, for tests/report.rs to compare with the run folder:
//   console errors and failed requests on every page visited; the counts and per-class table of the summary; the
//   warnings shown; the gallery's thumbnails (loaded or not); in the viewer of image K, the boxes, the tooltip of
//   the first box a rule changed, and how many boxes of a class stay visible once its toggle is unchecked; the
//   rule table's rows, sorted and filtered; the time to render the first gallery page. Screenshots go to SHOTS/.
// Usage: node check.mjs REPORT_DIR K SHOTS_DIR   (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from "playwright-core";
import path from "node:path";
import { pathToFileURL } from "node:url";
import fs from "node:fs";

const [dir, k, shots] = process.argv.slice(2);
fs.mkdirSync(shots, { recursive: true });
const url = (rel) => pathToFileURL(path.join(path.resolve(dir), rel)).href;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
const out = { console_errors: [], failed_requests: [], pages: {} };
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
page.on("console", (m) => { if (m.type() === "error") out.console_errors.push(`${page.url()}: ${m.text()}`); });
page.on("pageerror", (e) => out.console_errors.push(`${page.url()}: ${e.message}`));
page.on("requestfailed", (r) => out.failed_requests.push(`${r.url()}: ${r.failure()?.errorText}`));
page.on("response", (r) => { if (r.status() >= 400) out.failed_requests.push(`${r.url()}: HTTP ${r.status()}`); });

// The first gallery page, timed from navigation to every thumbnail on screen decoded.
let t0 = Date.now();
await page.goto(url("gallery/1.html"), { waitUntil: "load" });
await page.evaluate(async () => {
  const imgs = Array.from(document.images).filter((i) => i.loading !== "lazy" || i.getBoundingClientRect().top < innerHeight);
  await Promise.all(imgs.map((i) => (i.complete ? null : new Promise((r) => { i.onload = i.onerror = r; }))));
});
out.first_page_ms = Date.now() - t0;
out.pages.gallery = await page.evaluate(() => ({
  items: document.querySelectorAll(".gallery li").length,
  thumbnails: document.querySelectorAll(".gallery img").length,
  broken: Array.from(document.images).filter((i) => i.complete && i.naturalWidth === 0 && i.getBoundingClientRect().top < innerHeight).length,
  next: !!document.querySelector(".pager a[rel=next]"),
}));
await page.screenshot({ path: path.join(shots, "gallery.png") });

await page.goto(url("index.html"), { waitUntil: "load" });
out.pages.index = await page.evaluate(() => ({
  images: +document.getElementById("count-images").textContent,
  detections: +document.getElementById("count-detections").textContent,
  changes: +document.getElementById("count-changes").textContent,
  per_class: Object.fromEntries(Array.from(document.querySelectorAll("#per-class tbody tr")).map((r) => [r.dataset.class, +r.querySelector(".count").textContent])),
  warnings: Array.from(document.querySelectorAll("#warnings li")).map((li) => li.textContent),
  warning_visible: !!document.getElementById("warnings") && document.getElementById("warnings").getBoundingClientRect().height > 0,
}));
await page.screenshot({ path: path.join(shots, "index.png"), fullPage: true });

if (k !== undefined && k !== "-") {
  await page.goto(url(`view/${k}.html`), { waitUntil: "load" });
  const v = await page.evaluate(() => ({
    boxes: document.querySelectorAll("#scene polygon.det").length,
    changed: document.querySelectorAll('#scene polygon.det[data-changed="1"]').length,
    classes: Array.from(document.querySelectorAll("#classes input")).map((i) => i.dataset.class),
    picture: !!document.querySelector("#scene image"),
  }));
  const first = await page.$('#scene polygon.det[data-changed="1"]');
  if (first) {
    // Hover the box's centre (a polygon's box can be covered by neighbours: dispatch on the element itself).
    await first.hover({ force: true });
    await page.waitForSelector("#tip:not([hidden])", { timeout: 5000 });
    v.hovered = await first.evaluate((p) => +p.dataset.index);
    v.tooltip = await page.textContent("#tip");
    await page.screenshot({ path: path.join(shots, "viewer-hover.png") });
    await page.mouse.move(0, 0);
  }
  if (v.classes.length) {
    const c = v.classes[0];
    const visible = () => page.evaluate((c) => Array.from(document.querySelectorAll("#scene polygon.det")).filter((p) => p.dataset.class === c && getComputedStyle(p).display !== "none").length, c);
    v.toggle_class = c;
    v.visible_before = await visible();
    await page.uncheck(`#classes input[data-class="${c}"]`);
    v.visible_after = await visible();
    v.shown_after = +(await page.textContent("#n-visible"));
    await page.check(`#classes input[data-class="${c}"]`);
    // The slider at 1.0 leaves only perfect scores.
    await page.fill("#conf", "1");
    v.shown_at_conf_1 = +(await page.textContent("#n-visible"));
    await page.fill("#conf", "0");
  }
  await page.screenshot({ path: path.join(shots, "viewer.png") });
  out.pages.view = v;
}

await page.goto(url("rules/1.html"), { waitUntil: "load" });
const rows = () => page.evaluate(() => Array.from(document.querySelectorAll("#changes tbody tr")).filter((r) => !r.hidden).map((r) => Array.from(r.cells).map((c) => c.textContent)));
const r = { rows: (await rows()).length };
if (r.rows > 1) {
  await page.click("#changes th:nth-child(5)");
  await page.click("#changes th:nth-child(5)");
  const sorted = await rows();
  r.sorted_desc = sorted.every((row, i) => i === 0 || parseFloat(sorted[i - 1][4]) >= parseFloat(row[4]));
  const word = sorted[0][1].split("(")[0];
  await page.fill("input.filter", word);
  const filtered = await rows();
  r.filter = word;
  r.filtered = filtered.length;
  r.filtered_match = filtered.every((row) => row.join(" ").toLowerCase().includes(word.toLowerCase()));
}
out.pages.rules = r;
await browser.close();
console.log(JSON.stringify(out));
