// drive.js - drives web/index.html in headless Chromium through its controls
// (file inputs, the URL field, typing, buttons) for test/test_web.py, and
// writes what the page computed as JSON.
//
//   node drive.js JOB.json OUT.json
//
// JOB: {"url": page, "chromium": path, "timeout": ms per step,
//       "steps": [{"weights": file} | {"weights_url": url} | {"image": file, "labels": text, "templates": text}]}
//       (a step with "screenshot": path saves the page as a PNG after it)
// OUT: one entry per step: {"state", "error", "status", "result"} (result: the page's window.clipLast
// for a classification, its window.clipModel for a load), plus "console": the page's and worker's messages.
"use strict";
const fs = require("fs");
let puppeteer;
try {
  puppeteer = require("puppeteer-core");
} catch (e) {
  console.error("drive.js: puppeteer-core is not installed (npm ci --prefix test/web)");
  process.exit(77);
}

const [jobPath, outPath] = process.argv.slice(2);
const job = JSON.parse(fs.readFileSync(jobPath, "utf8"));
const timeout = job.timeout || 120000;

// the page's state, once it has left "working"/"loading"
async function settle(page, accept) {
  await page.waitForFunction((ok) => ok.includes(document.getElementById("state").dataset.state), { timeout,
    polling: 50 }, accept);
  return page.evaluate(() => ({
    state: document.getElementById("state").dataset.state,
    error: document.getElementById("error").textContent,
    status: document.getElementById("model-status").textContent,
  }));
}

async function setText(page, selector, text) {
  await page.$eval(selector, (el) => { el.value = ""; });
  await page.focus(selector);
  if (text) await page.keyboard.sendCharacter(text); // typed as one input event (newlines included)
}

(async () => {
  const browser = await puppeteer.launch({
    executablePath: job.chromium || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
    protocolTimeout: timeout * 2,
  });
  const out = { steps: [], console: [] };
  let page = null;
  try {
    page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 900 });
    page.on("console", (m) => out.console.push(m.type() + ": " + m.text()));
    page.on("pageerror", (e) => out.console.push("pageerror: " + e.message));
    page.on("workercreated", (w) => {
      out.console.push("worker: " + w.url());
      w.on("console", (m) => out.console.push("worker " + m.type() + ": " + m.text()));
    });
    await page.goto(job.url, { waitUntil: "load" });
    for (const step of job.steps) {
      const t0 = Date.now();
      let r;
      if (step.weights || step.weights_url) {
        await page.evaluate(() => {
          document.getElementById("state").dataset.state = "idle";
          window.clipModel = null;
        });
        if (step.weights) {
          const input = await page.$("#weights-file");
          await input.uploadFile(step.weights);
        } else {
          await setText(page, "#weights-url", step.weights_url);
          await page.click("#weights-load");
        }
        // loaded (the page then classifies the image it has, if any), or refused
        await page.waitForFunction(() => window.clipModel || document.getElementById("state").dataset.state === "error",
          { timeout, polling: 50 });
        r = await settle(page, ["ready", "done", "error"]);
        r.result = await page.evaluate(() => window.clipModel);
      } else {
        // the image first (the page classifies it with the labels it has), then the
        // labels typed in, then the button: the answer to that click is the one read
        await page.evaluate(() => { document.getElementById("state").dataset.state = "idle"; });
        const input = await page.$("#image-file");
        await input.uploadFile(step.image);
        await setText(page, "#labels", step.labels);
        await setText(page, "#templates", step.templates || "");
        await page.click("#classify");
        await page.waitForFunction(() => {
          const s = document.getElementById("state").dataset.state;
          return s === "error" || (s === "done" && window.clipLast && window.clipLast.seq === window.clipRequests);
        }, { timeout, polling: 50 });
        r = await settle(page, ["done", "error"]);
        if (r.state === "done") {
          r.result = await page.evaluate(() => {
            const c = Object.assign({}, window.clipLast);
            c.pixels = Array.from(c.pixels);
            return c;
          });
          r.ranking = await page.$$eval("#ranking li", (lis) => lis.map((li) => li.textContent));
        }
      }
      r.ms = Date.now() - t0;
      out.steps.push(r);
      if (step.screenshot) await page.screenshot({ path: step.screenshot, fullPage: true });
    }
  } catch (e) {
    // what the page said is the clue: keep it with the failure
    out.failure = String(e && e.message ? e.message : e);
    if (page) {
      const seen = await page.evaluate(() => ["state", "error", "model-status", "busy"].map((id) => id + ": " +
        (id === "state" ? document.getElementById(id).dataset.state : document.getElementById(id).textContent)))
        .catch(() => []);
      out.failure += " (the page: " + seen.join("; ") + ")";
    }
    console.error("drive.js: " + out.failure + "\n" + out.console.join("\n"));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
})().catch((e) => {
  console.error("drive.js: " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
