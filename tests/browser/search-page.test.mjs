// Drives the search page in headless Chromium (Debian's /usr/bin/chromium, through
// playwright-core): a text search shown as thumbnails, an original opened, "more results", a
// capture-date range, an image search, "more like this" and an upload; saves screenshots of the
// results. Exits non-zero on the first failed check.
//
//   SEARCH_URL=http://127.0.0.1:9000/lambda-url/search/ \
//   QUERY_IMAGE=/path/red-circle.png QUERY_IMAGE_ID=<sha256> PREFIX=<key prefix> \
//   DATE_FROM=2020-09-18 DATE_TO=2020-09-22 DATE_COUNT=5 \
//   SCREENSHOT_DIR=.local/screenshots node tests/browser/search-page.test.mjs
//
// tests/search_browser.rs seeds the images and runs this with those variables.
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const need = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const url = new URL(need("SEARCH_URL"));
const queryImage = need("QUERY_IMAGE");
const queryId = need("QUERY_IMAGE_ID");
const prefix = process.env.PREFIX || "";
const shots = resolve(process.env.SCREENSHOT_DIR || ".local/screenshots");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error("check failed: " + message);
  console.log("ok -", message);
}

const profile = mkdtempSync(join(tmpdir(), "clipsearch-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
let failed = false;
try {
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  // Failed loads are reported with their URL by the response hook, not by the console one.
  page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push("console: " + m.text()); });
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url().split("?")[0]}`); });

  if (prefix) url.searchParams.set("prefix", prefix);
  await page.goto(url.toString(), { waitUntil: "load" });
  check((await page.title()) === "clipsearch", "the page loads");

  // Every tile shown must have loaded, from the content's thumbnail (not the original), at
  // most 384 px on its long side.
  const gridShown = async () => {
    await page.waitForFunction(() => {
      const imgs = [...document.querySelectorAll("#results .card img")];
      return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    }, null, { timeout: 60_000 });
    const tiles = await page.$$eval("#results .card img", (imgs) =>
      imgs.map((i) => ({ src: i.currentSrc, w: i.naturalWidth, h: i.naturalHeight })));
    const notThumbnails = tiles.filter((t) => !/\/\.clipsearch\/thumbnails\/[0-9a-f]{64}\?/.test(t.src) || Math.max(t.w, t.h) > 384);
    if (notThumbnails.length) throw new Error("tiles that are not thumbnails: " + JSON.stringify(notThumbnails.slice(0, 3)));
    return page.$$eval("#results .card", (cards) =>
      cards.map((c) => ({ id: c.dataset.id, score: Number(c.dataset.score), key: c.querySelector(".key").textContent, captured: c.dataset.captured })));
  };

  // Text search.
  await page.fill("#top-k", "12");
  await page.fill("#text", "a photo of a red circle");
  await page.click("#text-submit");
  await page.waitForFunction(() => /result/.test(document.querySelector("#status").textContent), null, { timeout: 60_000 });
  const textCards = await gridShown();
  check(textCards.length === 12, `a text search shows 12 results (got ${textCards.length})`);
  check(/red-circle/.test(textCards[0].key), `a red circle comes first (${textCards[0].key})`);
  check(textCards.every((c, i) => i === 0 || textCards[i - 1].score >= c.score), "results are ranked by score");
  check(true, "every tile is a thumbnail of at most 384 px");
  await page.screenshot({ path: join(shots, "search-text-results.png"), fullPage: true });

  // A click on a tile opens the original (the object itself, not its thumbnail).
  const [original] = await Promise.all([
    context.waitForEvent("page"),
    page.click("#results .card:first-child a.open"),
  ]);
  const originalResponse = await original.waitForEvent("response", { timeout: 60_000 }).catch(() => null);
  await original.waitForLoadState("load");
  const openedUrl = original.url();
  check(openedUrl.includes(encodeURI(textCards[0].key).split("/").pop()) && !openedUrl.includes(".clipsearch/thumbnails"),
    `a click opens the original (${openedUrl.split("?")[0]})`);
  check(!originalResponse || originalResponse.status() === 200, "and it loads");
  await original.close();

  // More results: the next page is added below, nothing shown twice.
  check(await page.isVisible("#more-results"), "a “More results” button follows a full page");
  await page.click("#more-results");
  await page.waitForFunction(() => document.querySelectorAll("#results .card").length > 12, null, { timeout: 60_000 });
  const twoPages = await gridShown();
  check(twoPages.length === 24, `“More results” adds the next 12 (now ${twoPages.length})`);
  check(new Set(twoPages.map((c) => c.id)).size === 24, "no result is shown twice");
  check(twoPages.slice(0, 12).every((c, i) => c.id === textCards[i].id), "the first page stays as it was");
  check(/^24 results/.test(await page.textContent("#status")), "the status counts both pages");

  // A capture-date range: only photos taken on those days.
  const dateFrom = process.env.DATE_FROM, dateTo = process.env.DATE_TO, dateCount = Number(process.env.DATE_COUNT || 0);
  if (dateFrom && dateTo) {
    await page.fill("#taken-after", dateFrom);
    await page.fill("#taken-before", dateTo);
    await page.click("#text-submit");
    await page.waitForFunction((n) => document.querySelectorAll("#results .card").length === n
      && /result/.test(document.querySelector("#status").textContent), dateCount, { timeout: 60_000 });
    const dated = await gridShown();
    check(dated.length === dateCount, `a date range shows the ${dateCount} photos taken then (got ${dated.length})`);
    check(dated.every((c) => c.captured.slice(0, 10) >= dateFrom && c.captured.slice(0, 10) <= dateTo),
      "each taken within the range, both days included");
    check(await page.isHidden("#more-results"), "with no further page");
    await page.screenshot({ path: join(shots, "search-date-range.png"), fullPage: true });
    await page.fill("#taken-after", "");
    await page.fill("#taken-before", "");
  }

  // A query in Chinese, through the multilingual text tower (scripts/test.sh gives the
  // function tests/fixtures/tiny-multilingual): the page keeps and shows the query as typed,
  // and the right images come first.
  const chinese = process.env.CJK_QUERY || "";
  if (chinese) {
    await page.fill("#text", chinese);
    await page.click("#text-submit");
    await page.waitForFunction((q) => document.querySelector("#status").textContent.includes(q), chinese, { timeout: 60_000 });
    const cjkCards = await gridShown();
    check((await page.inputValue("#text")) === chinese, "the CJK query stays in the box as typed");
    check(/red-circle/.test(cjkCards[0].key), `“${chinese}” puts a red circle first (${cjkCards[0].key})`);
    await page.screenshot({ path: join(shots, "search-cjk-results.png"), fullPage: true });
  }

  // A right-to-left query with an emoji: the box takes the script's direction, the status line
  // shows the query isolated inside the English sentence, and results come back.
  const rtl = "صورة دائرة حمراء 🔴";
  await page.fill("#text", rtl);
  check(await page.$eval("#text", (el) => getComputedStyle(el).direction) === "rtl", "an Arabic query is typed right to left");
  await page.click("#text-submit");
  await page.waitForFunction((q) => document.querySelector("#status").textContent.includes(`“\u2068${q}\u2069”`), rtl, { timeout: 60_000 });
  const rtlCards = await gridShown();
  check(rtlCards.length === 12, `an Arabic query shows results (got ${rtlCards.length})`);
  check(/^\d+ results for “/.test(await page.textContent("#status")), "the sentence around it stays left to right");
  await page.screenshot({ path: join(shots, "search-rtl-results.png"), fullPage: true });

  // Image search: choose a file as a user would through the drop area's file picker.
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.click("#drop")]);
  await chooser.setFiles(queryImage);
  await page.waitForFunction((id) => document.querySelector("#results .card")?.dataset.id === id, queryId, { timeout: 60_000 });
  const imageCards = await gridShown();
  check(imageCards[0].id === queryId, "an image search puts that image first");
  check(imageCards[0].score > 0.99, `with a score of about 1 (${imageCards[0].score})`);
  check(await page.isVisible("#query-preview"), "the query image is previewed");
  await page.screenshot({ path: join(shots, "search-image-results.png"), fullPage: true });

  // More like this: the first result's neighbours, without it.
  await page.click("#results .card:first-child button.more");
  await page.waitForFunction((id) => {
    const first = document.querySelector("#results .card");
    return first && first.dataset.id !== id && /images like/.test(document.querySelector("#status").textContent);
  }, queryId, { timeout: 60_000 });
  const moreCards = await gridShown();
  check(moreCards.every((c) => c.id !== queryId), "more like this leaves the query image out");

  // The duplicates view: the planted copy and its original are one group of identical copies,
  // shown as thumbnails, the one to keep first.
  const copyKey = process.env.COPY_KEY, originalKey = process.env.QUERY_IMAGE_KEY;
  if (copyKey && originalKey) {
    await page.click("#duplicates-button");
    await page.waitForFunction(() => /duplicate group/.test(document.querySelector("#status").textContent), null, { timeout: 120_000 });
    const groups = await page.$$eval("#results .dup-group", (sections) =>
      sections.map((s) => ({ kind: s.dataset.kind, keys: [...s.querySelectorAll(".card")].map((c) => c.dataset.key) })));
    const planted = groups.find((g) => g.keys.includes(copyKey));
    check(planted && planted.kind === "exact" && planted.keys.includes(originalKey) && planted.keys.length === 2,
      `the copy and its original form one exact group (${JSON.stringify(planted)})`);
    check(groups.filter((g) => g.kind === "exact").length === 1, "and it is the only exact group");
    await gridShown();
    await page.screenshot({ path: join(shots, "search-duplicates.png"), fullPage: true });
  }

  // Upload through a presigned PUT straight to S3.
  await page.setInputFiles("#upload-file", queryImage);
  await page.waitForFunction(() => /Uploaded|failed/.test(document.querySelector("#status").textContent), null, { timeout: 60_000 });
  const status = await page.textContent("#status");
  check(/Uploaded 1 image/.test(status), `an upload goes to S3 (${status})`);

  check(problems.length === 0, `no page errors (${problems.join("; ")})`);

  // An error is shown, not thrown (Chromium logs the 400 itself, so this comes last).
  await page.fill("#top-k", "500");
  await page.fill("#text", "a photo of a red circle");
  await page.click("#text-submit");
  await page.waitForFunction(() => document.querySelector("#status").classList.contains("error"), null, { timeout: 60_000 });
  check(/top_k/.test(await page.textContent("#status")), "a bad request shows the API's message");

  console.log(`screenshots in ${shots}`);
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
  try {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: join(shots, "search-failure.png"), fullPage: true });
  } catch (_) { /* best effort */ }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
