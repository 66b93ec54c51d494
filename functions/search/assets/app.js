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

  async function run(describe, request) {
    buttons().forEach((b) => { b.disabled = true; });
    setStatus("Searching…");
    try {
      const answer = await request();
      show(answer);
      const n = answer.results.length;
      setStatus(`${n} result${n === 1 ? "" : "s"} for ${describe} in ${Math.round(answer.took_ms)} ms (${answer.model})`);
    } catch (e) {
      results.replaceChildren();
      setStatus(e.message, true);
    } finally {
      buttons().forEach((b) => { b.disabled = false; });
    }
  }

  function show(answer) {
    const cards = answer.results.map((hit) => {
      const card = document.createElement("article");
      card.className = "card";
      card.dataset.id = hit.id;
      card.dataset.score = String(hit.score);
      const img = document.createElement("img");
      img.src = hit.url;
      img.alt = hit.key;
      img.loading = "lazy";
      const meta = document.createElement("div");
      meta.className = "meta";
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = hit.score.toFixed(3);
      const key = document.createElement("span");
      key.className = "key";
      key.textContent = hit.key.split("/").pop();
      key.dir = "auto";
      key.title = `s3://${hit.bucket}/${hit.key} · ${hit.width}×${hit.height}`;
      meta.append(score, key);
      const more = document.createElement("button");
      more.type = "button";
      more.className = "secondary more";
      more.textContent = "More like this";
      more.addEventListener("click", () => searchById(hit.id, hit.key));
      card.append(img, meta, more);
      return card;
    });
    results.replaceChildren(...cards);
  }

  // A query or key in a right-to-left script is isolated (U+2068 … U+2069), so it neither flips
  // the sentence around it nor takes its punctuation.
  const isolate = (text) => `\u2068${text}\u2069`;

  function searchText(text) {
    run(`“${isolate(text)}”`, () => call(api("/search"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ text, ...options() }),
    }));
  }

  function searchById(id, label) {
    run(`images like ${isolate(label)}`, () => call(api("/search"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ id, ...options() }),
    }));
  }

  function searchImage(file) {
    const preview = $("query-preview");
    if (preview.src.startsWith("blob:")) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    $("drop-label").textContent = file.name;
    // The raw bytes as the body: no base64 inflation, so the whole 6 MB is usable.
    const query = new URLSearchParams(Object.entries(options()).map(([k, v]) => [k, String(v)]));
    run(file.name, () => call(api("/search") + "?" + query, {
      method: "POST",
      headers: { "content-type": file.type || "application/octet-stream" },
      body: file,
    }));
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
