"use strict";
// The search page: plain DOM code, no framework, no build step. Every API URL is relative to
// where the page is mounted (/, /lambda-url/search/, an API Gateway stage).
(() => {
  const base = location.pathname.replace(/\/index\.html$/, "").replace(/\/+$/, "");
  const api = (path) => base + path;
  const $ = (id) => document.getElementById(id);
  const status = $("status");
  const results = $("results");
  const buttons = () => document.querySelectorAll("button");
  const moreButton = $("more-results");
  // The search on screen: how to fetch a page of it, and the offset of the next page.
  let current = null;

  function setStatus(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  function options() {
    const out = {};
    const k = parseInt($("top-k").value, 10);
    if (!Number.isNaN(k)) out.top_k = k;
    const min = parseFloat($("min-score").value);
    if (!Number.isNaN(min)) out.min_score = min;
    const prefix = $("prefix").value;
    if (prefix) out.prefix = prefix;
    // Dates are whole days in UTC; "to" includes its day, so the bound is the next midnight.
    const after = $("taken-after").value;
    if (after) out.taken_after = after;
    const before = $("taken-before").value;
    if (before) {
      const next = new Date(before + "T00:00:00Z");
      next.setUTCDate(next.getUTCDate() + 1);
      out.taken_before = next.toISOString().slice(0, 10);
    }
    const sort = $("sort").value;
    if (sort !== "relevance") out.sort = sort;
    return out;
  }

  async function call(url, init) {
    let response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      throw new Error("network error: " + e.message);
    }
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    if (!response.ok) {
      const message = body && body.error ? body.error.message : "HTTP " + response.status;
      throw new Error(message);
    }
    return body;
  }

  // `page(offset)` fetches one page of a search (or of the duplicate groups: `render` and
  // `summary` say how to show it); "More results" asks for the next one.
  async function run(describe, page, append, render = show, summary = searchSummary) {
    buttons().forEach((b) => { b.disabled = true; });
    setStatus(append ? "Loading more…" : "Searching…");
    try {
      const answer = await page(append ? current.next : 0);
      render(answer, append);
      current = { describe, page, render, summary, next: answer.next_offset };
      moreButton.hidden = answer.next_offset == null;
      setStatus(summary(describe, answer));
    } catch (e) {
      if (!append) {
        results.replaceChildren();
        moreButton.hidden = true;
      }
      setStatus(e.message, true);
    } finally {
      buttons().forEach((b) => { b.disabled = false; });
    }
  }

  function searchSummary(describe, answer) {
    const n = results.children.length;
    return `${n} result${n === 1 ? "" : "s"} for ${describe} in ${Math.round(answer.took_ms)} ms (${answer.model})`;
  }

  moreButton.addEventListener("click", () => {
    if (current) run(current.describe, current.page, true, current.render, current.summary);
  });

  // A tile: the thumbnail (the original when there is none), the original on click.
  function tile(hit) {
    const img = document.createElement("img");
    img.src = hit.thumbnail_url || hit.url;
    img.addEventListener("error", () => { if (img.src !== hit.url) img.src = hit.url; });
    img.alt = hit.key;
    img.loading = "lazy";
    const open = document.createElement("a");
    open.className = "open";
    open.href = hit.url;
    open.target = "_blank";
    open.rel = "noopener";
    open.title = "Open the original";
    open.append(img);
    return open;
  }

  function keyLabel(hit) {
    const key = document.createElement("span");
    key.className = "key";
    key.textContent = hit.key.split("/").pop();
    key.dir = "auto";
    key.title = `s3://${hit.bucket}/${hit.key} · ${hit.width}×${hit.height}`;
    return key;
  }

  // Duplicate groups: each a row of tiles, the one to keep (most pixels) outlined first.
  function showGroups(answer, append) {
    const sections = answer.groups.map((group) => {
      const section = document.createElement("section");
      section.className = "dup-group";
      section.dataset.kind = group.kind;
      const title = document.createElement("h2");
      title.textContent = `${group.members.length} ${group.kind === "exact" ? "identical copies" : "near copies"}`;
      const members = document.createElement("div");
      members.className = "members";
      members.append(...group.members.map((m, i) => {
        const card = document.createElement("article");
        card.className = "card" + (i === 0 ? " keep" : "");
        card.dataset.id = m.id;
        card.dataset.key = m.key;
        const meta = document.createElement("div");
        meta.className = "meta";
        const facts = document.createElement("span");
        facts.className = "taken";
        facts.textContent = `${i === 0 ? "keep · " : ""}${m.width}×${m.height} · ${Math.round(m.byte_size / 1024)} KB · ${m.similarity.toFixed(3)}`;
        meta.append(keyLabel(m), facts);
        card.append(tile(m), meta);
        return card;
      }));
      section.append(title, members);
      return section;
    });
    if (append) results.append(...sections);
    else results.replaceChildren(...sections);
  }

  function findDuplicates() {
    const prefix = $("prefix").value;
    const page = (offset) => {
      const query = new URLSearchParams({ limit: "20", offset: String(offset) });
      if (prefix) query.set("prefix", prefix);
      return call(api("/duplicates") + "?" + query);
    };
    run("duplicates", page, false, showGroups,
      (_, answer) => `${answer.total_groups} duplicate group${answer.total_groups === 1 ? "" : "s"} among ${answer.scanned} images (threshold ${answer.threshold}, ${Math.round(answer.took_ms)} ms)`);
  }
  $("duplicates-button").addEventListener("click", findDuplicates);

  function show(answer, append) {
    const cards = answer.results.map((hit) => {
      const card = document.createElement("article");
      card.className = "card";
      card.dataset.id = hit.id;
      card.dataset.score = String(hit.score);
      card.dataset.captured = hit.captured_at;
      const open = tile(hit);
      const meta = document.createElement("div");
      meta.className = "meta";
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = hit.score.toFixed(3);
      const key = keyLabel(hit);
      const taken = document.createElement("span");
      taken.className = "taken";
      taken.textContent = hit.captured_at.slice(0, 10) + (hit.captured_from === "modified" ? " (file date)" : "");
      taken.title = `taken ${hit.captured_at} (${hit.captured_from})`;
      meta.append(score, key, taken);
      const more = document.createElement("button");
      more.type = "button";
      more.className = "secondary more";
      more.textContent = "More like this";
      more.addEventListener("click", () => searchById(hit.id, hit.key));
      card.append(open, meta, more);
      return card;
    });
    if (append) results.append(...cards);
    else results.replaceChildren(...cards);
  }

  const postJson = (body) => call(api("/search"), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });

  // A query or key in a right-to-left script is isolated (U+2068 … U+2069), so it neither flips
  // the sentence around it nor takes its punctuation.
  const isolate = (text) => `\u2068${text}\u2069`;

  // The options are read once per search, so every page of it asks the same question.
  function searchText(text) {
    const chosen = options();
    run(`“${isolate(text)}”`, (offset) => postJson({ text, ...chosen, offset }));
  }

  function searchById(id, label) {
    const chosen = options();
    run(`images like ${isolate(label)}`, (offset) => postJson({ id, ...chosen, offset }));
  }

  function searchImage(file) {
    const preview = $("query-preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("drop-label").textContent = file.name;
    // The raw bytes as the body: no base64 inflation, so the whole 6 MB is usable.
    const chosen = options();
    run(file.name, (offset) => {
      const query = new URLSearchParams(Object.entries({ ...chosen, offset }).map(([k, v]) => [k, String(v)]));
      return call(api("/search") + "?" + query, {
        method: "POST",
        headers: { "content-type": file.type || "application/octet-stream" },
        body: file,
      });
    });
  }

  async function upload(files) {
    let done = 0;
    for (const file of files) {
      setStatus(`Uploading ${file.name}…`);
      try {
        const ticket = await call(api("/uploads"), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ filename: file.name, content_type: file.type }),
        });
        if (file.size > ticket.max_bytes) throw new Error(`it is over the ${ticket.max_bytes}-byte limit`);
        // A signed POST policy: S3 checks key, type and size; the file must be the last part.
        const form = new FormData();
        for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
        form.append("file", file);
        const sent = await fetch(ticket.url, { method: ticket.method, body: form });
        if (!sent.ok) throw new Error(`storage answered HTTP ${sent.status}`);
        done += 1;
      } catch (e) {
        setStatus(`Upload of ${file.name} failed: ${e.message}`, true);
        return;
      }
    }
    setStatus(`Uploaded ${done} image${done === 1 ? "" : "s"}; they become searchable once indexed.`);
  }

  // ?prefix=…&top_k=…&q=… prefill the controls (links to a folder or a search can be shared).
  const initial = new URLSearchParams(location.search);
  if (initial.get("prefix")) $("prefix").value = initial.get("prefix");
  if (initial.get("top_k")) $("top-k").value = initial.get("top_k");

  $("text-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("text").value.trim();
    if (text) searchText(text);
    else setStatus("Type something to search for.", true);
  });

  const drop = $("drop");
  const fileInput = $("image-file");
  drop.addEventListener("click", () => fileInput.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") fileInput.click(); });
  fileInput.addEventListener("change", () => { if (fileInput.files[0]) searchImage(fileInput.files[0]); fileInput.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) searchImage(file);
  });

  const uploadInput = $("upload-file");
  $("upload-button").addEventListener("click", () => uploadInput.click());
  uploadInput.addEventListener("change", () => { if (uploadInput.files.length) upload([...uploadInput.files]); uploadInput.value = ""; });

  if (initial.get("q")) {
    $("text").value = initial.get("q");
    searchText(initial.get("q"));
  }
})();
