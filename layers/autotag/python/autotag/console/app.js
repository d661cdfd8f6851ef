// autotag console: plain JavaScript, no build step. Every call goes to the API this page is served
// by, with the API key from sessionStorage. Text from the API is only ever set as textContent.
"use strict";

const KEY_STORAGE = "autotag.apiKey";
const POLL_MS = 3000;
// ?page_size=N (1..100) changes how many images a page holds; 24 fills a grid on most screens.
const PAGE = Math.min(100, Math.max(1, Number(new URLSearchParams(window.location.search).get("page_size")) || 24));
const API_BASE = new URL("../", window.location.href); // .../<stage>/console/ -> .../<stage>/

const $ = (selector) => document.querySelector(selector);
const view = () => $("#view");
const thumbs = new Map(); // "bucket/key@size@updated_at" -> data URL
let pollTimer = null;
let renderId = 0;

// --- small DOM helper -------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// A live redraw replaces nodes: put keyboard focus back on the control that had it.
function keepingFocus(redraw) {
  const active = document.activeElement;
  const label = active && active !== document.body ? active.getAttribute("aria-label") || active.id : null;
  redraw();
  if (!label || document.activeElement !== document.body) return;
  const again = [...view().querySelectorAll("[aria-label], [id]")]
    .find((node) => node.getAttribute("aria-label") === label || node.id === label);
  if (again) again.focus();
}

function say(message, isError = false) {
  const status = $("#status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

// --- API ------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.requestId = body && body.request_id;
  }
}

function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

function segments(text) {
  return text.split("/").map(encodeURIComponent).join("/");
}

async function api(path, options = {}) {
  const key = apiKey();
  if (!key) {
    askForKey();
    throw new ApiError(403, { code: "no_api_key", message: "enter an API key first" });
  }
  const headers = { "x-api-key": key, Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(new URL(path, API_BASE), {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    cache: "no-store",
  });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new ApiError(response.status, body);
    if (response.status === 403 && (error.code === "invalid_api_key" || !error.code)) askForKey();
    throw error;
  }
  return body;
}

function failure(error) {
  const id = error.requestId ? ` (request ${error.requestId})` : "";
  return `${error.message}${error.code ? ` [${error.code}]` : ""}${id}`;
}

async function thumbnail(bucket, key, size, version) {
  const id = `${bucket}/${key}@${size}@${version || ""}`;
  if (!thumbs.has(id)) {
    const body = await api(`v1/thumbnails/${segments(bucket)}/${segments(key)}?size=${size}`);
    thumbs.set(id, `data:${body.content_type};base64,${body.data}`);
  }
  return thumbs.get(id);
}

function fillThumb(img, bucket, key, size, version) {
  thumbnail(bucket, key, size, version)
    .then((src) => { img.src = src; })
    .catch((error) => {
      img.alt = `${img.alt} (thumbnail unavailable: ${error.message})`;
      img.classList.add("missing");
    });
}

// --- key handling -----------------------------------------------------------------------------------
function askForKey() {
  const form = $("#key-form");
  form.hidden = false;
  $("#api-key").focus();
}

function takeKeyFromFragment() {
  // `autotag local` prints the console URL with #key=...: keep it in this tab, drop it from the URL.
  const match = /(?:^#|&)key=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  sessionStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]));
  history.replaceState(null, "", window.location.pathname + window.location.search + "#/");
}

// --- routing -----------------------------------------------------------------------------------------
function route() {
  const hash = window.location.hash.replace(/^#/, "") || "/";
  const parts = hash.split("/").filter((p) => p !== "");
  stopPolling();
  renderId += 1;
  for (const link of document.querySelectorAll("[data-nav]")) link.removeAttribute("aria-current");
  if (parts[0] === "image" && parts.length >= 3) {
    return showImage(decodeURIComponent(parts[1]), decodeURIComponent(parts.slice(2).join("/")));
  }
  if (parts[0] === "search" && parts.length >= 2) return showSearch(decodeURIComponent(parts[1]));
  if (parts[0] === "failed") return showFailed();
  return showRecent();
}

function imageHref(bucket, key) {
  return `#/image/${encodeURIComponent(bucket)}/${encodeURIComponent(key)}`;
}

function current(nav) {
  const link = document.querySelector(`[data-nav="${nav}"]`);
  if (link) link.setAttribute("aria-current", "page");
}

function heading(text) {
  const h = el("h2", { text, tabindex: "-1" });
  return h;
}

function chip(tag) {
  const person = tag.provider === "person";
  const confidence = tag.confidence === null || tag.confidence === undefined ? "" : ` ${Math.round(tag.confidence * 100)}%`;
  return el("li", { class: person ? "chip person" : "chip", text: `${tag.name}${confidence}`, title: `by ${tag.provider}` });
}

function card(bucket, key, version, tags, extra) {
  const img = el("img", { class: "thumb", alt: key, width: 256, height: 256, loading: "lazy" });
  fillThumb(img, bucket, key, 256, version);
  return el("li", { class: "card", "data-key": key },
    el("a", { class: "open", href: imageHref(bucket, key), "aria-label": `Open ${key}` },
      img, el("div", { class: "name", text: key })),
    el("ul", { class: "chips", "aria-label": `Top tags of ${key}` }, tags.map(chip)),
    extra || null);
}

// --- recent images (live) -------------------------------------------------------------------------------
async function showRecent() {
  current("recent");
  const mine = renderId;
  const grid = el("ul", { class: "grid", id: "recent-grid", "aria-label": "Recently tagged images" });
  const more = el("button", { type: "button", hidden: true }, "Load more");
  view().replaceChildren(heading("Recently tagged"), grid, el("div", { class: "pager" }, more));
  let items = [];
  let cursor = null;
  let loadedMore = false;
  const draw = () => grid.replaceChildren(...items.map((i) =>
    card(i.bucket, i.key, i.updated_at, i.top_tags)));
  const signature = (list) => list.map((i) => `${i.bucket}/${i.key}@${i.updated_at}@${i.top_tags.map((t) => t.name).join(",")}`).join("|");

  async function firstPage(announce) {
    const page = await api(`v1/images?status=tagged&limit=${PAGE}`);
    if (mine !== renderId) return;
    const fresh = page.items;
    const known = new Set(items.map((i) => `${i.bucket}/${i.key}`));
    const newOnes = fresh.filter((i) => !known.has(`${i.bucket}/${i.key}`)).length;
    // Pages loaded with "Load more" stay below the live first page.
    const extra = loadedMore ? items.filter((i) => !fresh.some((f) => f.bucket === i.bucket && f.key === i.key)) : [];
    const merged = [...fresh, ...extra];
    if (signature(merged) !== signature(items)) {
      items = merged;
      keepingFocus(draw);
      if (announce && newOnes) say(`${newOnes} new image${newOnes === 1 ? "" : "s"} tagged`);
    }
    if (cursor === null) { cursor = page.cursor; more.hidden = !cursor; }
    if (!items.length) grid.replaceChildren(el("li", { class: "empty", text: "No tagged images yet. Upload one to the images bucket; it appears here when tagged." }));
  }

  more.addEventListener("click", async () => {
    try {
      const page = await api(`v1/images?status=tagged&limit=${PAGE}&cursor=${encodeURIComponent(cursor)}`);
      loadedMore = true;
      items = [...items, ...page.items.filter((i) => !items.some((k) => k.bucket === i.bucket && k.key === i.key))];
      cursor = page.cursor;
      more.hidden = !cursor;
      draw();
    } catch (error) { say(failure(error), true); }
  });
  try {
    await firstPage(false);
    say(`${items.length} image${items.length === 1 ? "" : "s"}; updates live`);
  } catch (error) { say(failure(error), true); }
  startPolling(() => firstPage(true));
}

function startPolling(tick) {
  stopPolling();
  const live = $("#live");
  live.textContent = "live";
  pollTimer = window.setInterval(() => {
    if (document.visibilityState !== "visible" || !apiKey()) return;
    tick().catch(() => { live.textContent = "live (retrying)"; });
  }, POLL_MS);
}

function stopPolling() {
  if (pollTimer !== null) window.clearInterval(pollTimer);
  pollTimer = null;
  const live = $("#live");
  if (live) live.textContent = "";
}

// --- search by tag ----------------------------------------------------------------------------------------
async function showSearch(tag) {
  const mine = renderId;
  $("#search-tag").value = tag;
  const list = el("ul", { class: "grid", "aria-label": `Images tagged ${tag}` });
  const prev = el("button", { type: "button", disabled: true }, "Previous page");
  const next = el("button", { type: "button", disabled: true }, "Next page");
  const where = el("span", { class: "meta" });
  view().replaceChildren(heading(`Images tagged “${tag}”`), list, el("nav", { class: "pager", "aria-label": "Pages" }, prev, where, next));
  const cursors = [null];
  let index = 0;
  async function load() {
    const cursor = cursors[index];
    const query = `limit=${PAGE}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    try {
      const page = await api(`v1/tags/${encodeURIComponent(tag)}/images?${query}`);
      if (mine !== renderId) return;
      list.replaceChildren(...page.items.map((hit) => card(hit.bucket, hit.key, hit.updated_at,
        [{ name: hit.tag, confidence: hit.confidence, provider: (hit.providers || []).join(", ") }])));
      if (!page.items.length) list.replaceChildren(el("li", { class: "empty", text: `No image is tagged “${tag}”.` }));
      cursors[index + 1] = page.cursor;
      prev.disabled = index === 0;
      next.disabled = !page.cursor;
      where.textContent = `Page ${index + 1}`;
      say(`${page.items.length} image${page.items.length === 1 ? "" : "s"} on page ${index + 1}`);
    } catch (error) { say(failure(error), true); }
  }
  prev.addEventListener("click", () => { if (index > 0) { index -= 1; load(); } });
  next.addEventListener("click", () => { if (cursors[index + 1]) { index += 1; load(); } });
  await load();
}

// --- one image ---------------------------------------------------------------------------------------------
async function showImage(bucket, key) {
  const mine = renderId;
  view().replaceChildren(heading(key));
  let response;
  try {
    response = await api(`v1/images/${segments(bucket)}/${segments(key)}`);
  } catch (error) { say(failure(error), true); return; }
  if (mine !== renderId) return;
  renderImage(bucket, key, response);
  // Live: a re-tag or another person's correction shows up without a reload.
  let seen = stamp(response);
  startPolling(async () => {
    const fresh = await api(`v1/images/${segments(bucket)}/${segments(key)}`);
    if (mine !== renderId || stamp(fresh) === seen) return;
    seen = stamp(fresh);
    if (document.activeElement && document.activeElement.closest("form.add")) return; // do not steal typing
    keepingFocus(() => renderImage(bucket, key, fresh));
    say("Updated: the image's tags changed");
  });
}

function stamp(response) {
  const image = response.image;
  return `${image.updated_at}|${image.corrections ? image.corrections.version : 0}|${image.status}`;
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
}

function renderImage(bucket, key, response) {
  const image = response.image;
  const inForce = response.tags_in_force || [];
  const picture = el("img", { alt: image.title || key, id: "picture" });
  const frame = el("div", { class: "frame" }, picture);
  fillThumb(picture, bucket, key, 1024, image.updated_at);
  for (const tag of inForce) {
    for (const box of tag.boxes || []) {
      frame.append(el("div", {
        class: "box", "data-tag": tag.name,
        style: `left:${box.left * 100}%;top:${box.top * 100}%;width:${box.width * 100}%;height:${box.height * 100}%`,
      }, el("span", { text: tag.name })));
    }
  }
  const highlight = (name, on) => {
    for (const node of frame.querySelectorAll(".box")) node.classList.toggle("hl", on && node.dataset.tag === name);
  };

  const rows = inForce.map((tag) => el("tr", {
    onmouseenter: () => highlight(tag.name, true), onmouseleave: () => highlight(tag.name, false),
  },
  el("th", { scope: "row", text: tag.name }),
  el("td", { text: percent(tag.confidence) }),
  el("td", { class: "provider", text: (tag.sources || [tag.provider]).join(", ") }),
  el("td", { class: "wide", text: tag.boxes && tag.boxes.length ? String(tag.boxes.length) : "" }),
  el("td", {}, el("button", {
    type: "button", class: "danger", "aria-label": `Remove tag ${tag.name}`,
    onfocus: () => highlight(tag.name, true), onblur: () => highlight(tag.name, false),
    onclick: () => correct(bucket, key, { remove: [tag.name] }, `Removed “${tag.name}”`),
  }, "Remove"))));
  const tagTable = el("table", { id: "tags-in-force" },
    el("caption", { text: `Tags in force (${inForce.length})` }),
    el("thead", {}, el("tr", {}, ["Tag", "Confidence", "Provider", "Boxes", "Edit"].map((h, i) =>
      el("th", { scope: "col", class: i === 3 ? "wide" : null, text: h })))),
    el("tbody", {}, rows));

  const input = el("input", { id: "add-tag", name: "tag", type: "text", required: true, maxlength: 128, autocomplete: "off" });
  const addForm = el("form", { class: "add", onsubmit: (event) => {
    event.preventDefault();
    const name = input.value.trim();
    if (name) correct(bucket, key, { add: [name] }, `Added “${name}”`);
  } }, el("label", { for: "add-tag", text: "Add a tag" }), input, el("button", { type: "submit", class: "primary" }, "Add"));

  const said = el("table", { id: "provider-tags" },
    el("caption", { text: "What the providers said" }),
    el("thead", {}, el("tr", {}, ["Tag", "Confidence", "Provider"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, (image.tags || []).map((tag) => el("tr", {},
      el("th", { scope: "row", text: tag.name }), el("td", { text: percent(tag.confidence) }),
      el("td", { class: "provider", text: (tag.sources || [tag.provider]).join(", ") })))));

  const log = (image.corrections && image.corrections.log) || [];
  const decided = el("table", { id: "corrections" },
    el("caption", { text: "What people decided" }),
    el("thead", {}, el("tr", {}, ["Tag", "Decision", "By", "When"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, log.length ? log.slice().reverse().map((d) => el("tr", {},
      el("th", { scope: "row", text: d.tag }), el("td", { text: d.action === "add" ? "added" : "removed" }),
      el("td", { text: d.by }), el("td", { text: new Date(d.at).toLocaleString() }))) :
      el("tr", {}, el("td", { colspan: 4, class: "empty", text: "No corrections yet." }))));

  const s3 = image.s3_tags && image.s3_tags.written ? Object.keys(image.s3_tags.written) : [];
  const details = el("div", {},
    image.title ? el("p", {}, el("strong", { text: "Title: " }), image.title) : null,
    image.description ? el("p", {}, el("strong", { text: "Description: " }), image.description) : null,
    image.classification ? el("p", {}, el("strong", { text: "Classification: " }), `${image.classification.label} (${percent(image.classification.confidence)})`) : null,
    el("p", { class: "meta", text: `s3://${bucket}/${key} · ${image.status}${image.width ? ` · ${image.width}×${image.height}` : ""} · ${(image.providers || []).map((p) => `${p.provider}: ${p.status}`).join(", ")}` }),
    s3.length ? el("p", { class: "meta", text: `S3 tags written by the pipeline: ${s3.join(", ")}` }) : null,
    image.status === "failed" ? el("p", { class: "reason", text: `${image.error_code}: ${image.error}` }) : null);

  const content = el("div", { class: "image-page" },
    el("div", {}, frame),
    el("div", {}, details, tagTable, addForm, decided, said));
  const h = heading(image.title || key);
  view().replaceChildren(h, content);
}

async function correct(bucket, key, change, done) {
  say("Saving…");
  try {
    const response = await api(`v1/images/${segments(bucket)}/${segments(key)}/tags`, { method: "PATCH", body: change });
    renderImage(bucket, key, response);
    const written = Object.keys(response.s3_tags.written || {});
    say(`${done}. S3 tags now: ${written.join(", ") || "none"}`);
    const field = $("#add-tag");
    if (field) field.focus(); // the removed row's button is gone: keep the keyboard in the editor
  } catch (error) { say(failure(error), true); }
}

// --- failed images ------------------------------------------------------------------------------------------
async function showFailed() {
  current("failed");
  const mine = renderId;
  const list = el("ul", { id: "failed-list", "aria-label": "Images that could not be tagged" });
  const more = el("button", { type: "button", hidden: true }, "Load more");
  view().replaceChildren(heading("Failed images"), el("div", { class: "failed" }, list), el("div", { class: "pager" }, more));
  let cursor = null;
  const item = (i) => {
    const button = el("button", { type: "button", class: "primary", "aria-label": `Retry ${i.key}` }, "Retry");
    const outcome = el("p", { class: "meta", role: "status" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      outcome.textContent = "Retrying…";
      try {
        const result = await api("v1/tags", { method: "POST", body: { s3: { bucket: i.bucket, key: i.key }, store: true } });
        outcome.replaceChildren("Tagged: ", (result.tags || []).slice(0, 5).map((t) => t.name).join(", ") || "no tags", " · ",
          el("a", { href: imageHref(i.bucket, i.key), text: "open" }));
        say(`Retried ${i.key}: tagged`);
      } catch (error) {
        outcome.textContent = `Still failing: ${failure(error)}`;
        button.disabled = false;
        say(`Retried ${i.key}: still failing`, true);
      }
    });
    return el("li", { "data-key": i.key },
      el("a", { href: imageHref(i.bucket, i.key), text: `s3://${i.bucket}/${i.key}` }),
      el("span", { class: "reason", text: `${i.error_code || "error"}: ${i.error || "unknown reason"}` }),
      el("span", { class: "meta", text: `failed ${new Date(i.updated_at).toLocaleString()}` }),
      el("div", {}, button), outcome);
  };
  let shown = "";
  async function load(append) {
    const page = await api(`v1/images?status=failed&limit=${PAGE}${append && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    if (mine !== renderId) return;
    const ids = page.items.map((i) => `${i.bucket}/${i.key}@${i.updated_at}`).join("|");
    if (append) list.append(...page.items.map(item));
    else if (ids !== shown) {
      shown = ids;
      keepingFocus(() => list.replaceChildren(...page.items.map(item)));
      if (!page.items.length) list.replaceChildren(el("li", { class: "empty", text: "No failed images." }));
    }
    cursor = page.cursor;
    more.hidden = !cursor;
  }
  more.addEventListener("click", () => load(true).catch((error) => say(failure(error), true)));
  try { await load(false); say("Failed images; updates live"); } catch (error) { say(failure(error), true); }
  startPolling(() => load(false));
}

// --- start -----------------------------------------------------------------------------------------------------
function start() {
  takeKeyFromFragment();
  // The fragment is the router's: the skip link moves focus instead of navigating.
  $(".skip").addEventListener("click", (event) => { event.preventDefault(); view().focus(); });
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("#api-key").value.trim());
    $("#api-key").value = "";
    $("#key-form").hidden = true;
    say("API key set for this tab");
    route();
  });
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    stopPolling();
    view().replaceChildren();
    say("API key forgotten");
    askForKey();
  });
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const tag = $("#search-tag").value.trim();
    if (tag) window.location.hash = `#/search/${encodeURIComponent(tag)}`;
  });
  window.addEventListener("hashchange", () => { route(); view().focus(); });
  if (!apiKey()) askForKey();
  else route();
}

start();
