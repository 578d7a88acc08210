// embstore explorer: nearest words, analogies and a 2D map, all from this server's /api/.
// The view lives in the URL (/?word=king, /?a=man&b=king&c=woman), so a reload or a shared
// link shows the same view. No framework, no build step: served as is by the package.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const PAD = 40; // pixels above and below the points when the map is fitted
const SIDE = 80; // pixels left and right of them, for labels

// -- the view, read from and written to the URL ------------------------------------------

function readState() {
  const q = new URLSearchParams(location.search);
  const list = (name) => (q.get(name) || "").split(/\s+/).filter(Boolean);
  return {
    word: q.get("word") || "", a: q.get("a") || "", b: q.get("b") || "", c: q.get("c") || "",
    k: q.get("k") || "10", method: q.get("method") || "add", proj: q.get("proj") || "pca",
    index: q.get("index") || "", add: list("add"),
  };
}

function writeState(state, push) {
  const q = new URLSearchParams();
  if (state.word) q.set("word", state.word);
  if (state.a || state.b || state.c) { q.set("a", state.a); q.set("b", state.b); q.set("c", state.c); }
  if (state.k !== "10") q.set("k", state.k);
  if (state.method !== "add" && !state.word) q.set("method", state.method);
  if (state.proj !== "pca") q.set("proj", state.proj);
  if (state.index) q.set("index", state.index);
  if (state.add.length) q.set("add", state.add.join(" "));
  const url = "/" + (q.toString() ? "?" + q.toString() : "");
  if (url !== location.pathname + location.search) {
    if (push) history.pushState(null, "", url); else history.replaceState(null, "", url);
  }
}

let state = readState();

function go(changes) {
  state = Object.assign({}, state, changes);
  writeState(state, true);
  show();
}

// -- talking to the API --------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) { super(body.error || ("HTTP " + status)); this.status = status; this.body = body; }
}

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) if (value !== "" && value != null) query.set(name, value);
  const response = await fetch("/api/" + path + "?" + query.toString(), { headers: { Accept: "application/json" } });
  let body;
  try { body = await response.json(); } catch (e) { body = { error: "the server answered " + response.status }; }
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

// -- drawing the page ----------------------------------------------------------------------

function el(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

function showMessage(error) {
  const box = $("message");
  box.replaceChildren();
  if (!error) { box.hidden = true; return; }
  box.hidden = false;
  box.append(el("span", { class: "text" }, error.message));
  const suggestions = (error.body && error.body.suggestions) || [];
  if (suggestions.length) {
    box.append(el("br"), el("span", {}, "Did you mean: "));
    for (const word of suggestions) {
      const button = el("button", { type: "button", class: "suggestion", "data-word": word }, word);
      button.addEventListener("click", () => go({ word, a: "", b: "", c: "" }));
      box.append(button);
    }
  }
}

function showResults(title, result) {
  $("results-title").textContent = title;
  const list = $("results");
  list.replaceChildren();
  for (const { word, score } of result.neighbours) {
    const item = el("li");
    const button = el("button", { type: "button", class: "word", "data-word": word, title: "centre on " + word }, word);
    button.addEventListener("click", () => go({ word, a: "", b: "", c: "" }));
    item.append(button, el("span", { class: "score" }, score.toFixed(4)));
    list.append(item);
  }
  for (const note of result.notes || []) list.append(el("li", { class: "note" }, note));
}

function fillForms() {
  if (![...$("k").options].some((o) => o.value === state.k)) $("k").append(el("option", {}, state.k)); // /?k=7
  $("search").value = state.word;
  for (const name of ["a", "b", "c", "k", "method"]) $(name).value = state[name];
  $("projection").value = state.proj;
  if ([...$("index").options].some((o) => o.value === state.index)) $("index").value = state.index;
}

let shown = 0; // the newest view asked for: answers to older ones are dropped
let notice = null; // an error to show with the next view (an unknown word added to the map)

async function show() {
  const ticket = ++shown;
  fillForms();
  showMessage(notice);
  notice = null;
  try {
    let points; // [{word, role}], in map order
    let arrows = [];
    let scores = {};
    if (state.word) {
      const result = await api("nearest", { word: state.word, k: state.k, index: state.index });
      if (ticket !== shown) return;
      showResults("Nearest to " + (result.neighbours.length ? state.word : ""), result);
      const centre = resolvedWord(result, state.word);
      points = [{ word: centre, role: "centre" }].concat(result.neighbours.map((n) => ({ word: n.word, role: "neighbour" })));
      for (const n of result.neighbours) scores[n.word] = n.score;
      document.title = state.word + " - embstore explorer";
    } else if (state.a && state.b && state.c) {
      const result = await api("analogy", { a: state.a, b: state.b, c: state.c, k: state.k, method: state.method,
                                           index: state.index });
      if (ticket !== shown) return;
      showResults(state.a + " : " + state.b + " :: " + state.c + " : ?", result);
      points = [state.a, state.b, state.c].map((word) => ({ word, role: "analogy" }))
        .concat(result.neighbours.map((n) => ({ word: n.word, role: "neighbour" })));
      for (const n of result.neighbours) scores[n.word] = n.score;
      if (result.neighbours.length) arrows = [[state.a, state.b], [state.c, result.neighbours[0].word]];
      document.title = state.a + " : " + state.b + " :: " + state.c + " - embstore explorer";
    } else {
      showResults("", { neighbours: [] });
      clearMap("Type a word, or an analogy, to draw its neighbourhood.");
      return;
    }
    for (const word of state.add) if (!points.some((p) => p.word === word)) points.push({ word, role: "added" });
    await drawMap(points, arrows, scores, ticket);
  } catch (error) {
    if (ticket !== shown) return;
    showResults("", { neighbours: [] });
    clearMap("");
    showMessage(error);
  } finally {
    if (ticket === shown) document.body.dataset.shown = location.search || "?"; // the view drawn (tests wait on it)
  }
}

function resolvedWord(result, asked) {
  // A case-insensitive match is reported in a note: "'King' is not in the vocabulary; using 'king' ..."
  for (const note of result.notes || []) {
    const match = note.match(/; using '(.*)' \(case-insensitive match\)$/);
    if (match) return match[1];
  }
  return asked;
}

// -- the map: own SVG drawing, zoom (wheel, buttons), pan (drag), hover ---------------------------

const view = { points: [], arrows: [], scale: 1, x: 0, y: 0, width: 0, height: 0 };

function clearMap(caption) {
  view.points = [];
  $("map").replaceChildren();
  $("map-caption").textContent = caption;
}

async function drawMap(points, arrows, scores, ticket) {
  let projected;
  try {
    projected = await api("project", { words: points.map((p) => p.word).join(" "), method: state.proj });
  } catch (error) {
    if (ticket !== shown) return;
    if (error.status === 404 && state.add.includes(error.body.word)) { // an added word is unknown: say so, keep the rest
      notice = error;
      state.add = state.add.filter((w) => w !== error.body.word);
      writeState(state, false);
      return show();
    }
    throw error;
  }
  if (ticket !== shown) return;
  const role = {};
  for (const p of points) role[p.word] = p.role;
  view.points = projected.words.map((word, i) => ({
    word, role: role[word] || "neighbour", score: scores[word], x: projected.coordinates[i][0], y: projected.coordinates[i][1],
  }));
  view.arrows = arrows;
  view.labels = projected.axis_labels;
  $("map-caption").textContent = (projected.method === "pca" ? "PCA" : "t-SNE") + " of " + view.points.length +
    " words (unit vectors): " + projected.axis_labels.join(", ") + ". Wheel or +/- to zoom, drag to pan, click a word to centre on it.";
  fit();
}

function fit() {
  const box = $("map").getBoundingClientRect();
  view.width = box.width; view.height = box.height;
  const xs = view.points.map((p) => p.x), ys = view.points.map((p) => p.y);
  const spanX = Math.max(...xs) - Math.min(...xs) || 1, spanY = Math.max(...ys) - Math.min(...ys) || 1;
  view.scale = Math.min((view.width - 2 * SIDE) / spanX, (view.height - 2 * PAD) / spanY);
  view.x = SIDE - Math.min(...xs) * view.scale;
  view.y = view.height - PAD + Math.min(...ys) * view.scale; // y grows upwards on the map
  render();
}

const screenX = (p) => view.x + p.x * view.scale;
const screenY = (p) => view.y - p.y * view.scale;

function render() {
  const svg = $("map");
  svg.replaceChildren();
  const defs = document.createElementNS(SVG, "defs");
  const marker = document.createElementNS(SVG, "marker");
  for (const [k, v] of Object.entries({ id: "arrowhead", viewBox: "0 0 10 10", refX: "14", refY: "5", markerWidth: "7",
    markerHeight: "7", orient: "auto-start-reverse" })) marker.setAttribute(k, v);
  const head = document.createElementNS(SVG, "path");
  head.setAttribute("d", "M 0 0 L 10 5 L 0 10 z");
  head.setAttribute("fill", "#b03a2e");
  marker.append(head); defs.append(marker); svg.append(defs);
  const at = {};
  for (const p of view.points) at[p.word] = p;
  for (const [from, to] of view.arrows) {
    if (!at[from] || !at[to]) continue;
    const line = document.createElementNS(SVG, "line");
    line.setAttribute("class", "arrow");
    line.setAttribute("x1", screenX(at[from])); line.setAttribute("y1", screenY(at[from]));
    line.setAttribute("x2", screenX(at[to])); line.setAttribute("y2", screenY(at[to]));
    svg.append(line);
  }
  const order = view.points.slice().sort((p, q) => (p.role === "neighbour") - (q.role === "neighbour")).reverse();
  const places = labelPlaces(view.points);
  for (const p of order) {
    const dot = document.createElementNS(SVG, "circle");
    dot.setAttribute("cx", screenX(p)); dot.setAttribute("cy", screenY(p));
    dot.setAttribute("r", p.role === "neighbour" ? 5 : 7);
    dot.setAttribute("class", "point " + p.role);
    dot.setAttribute("data-word", p.word);
    const title = document.createElementNS(SVG, "title");
    title.textContent = p.word;
    dot.append(title);
    dot.addEventListener("mouseenter", (event) => hover(p, dot, event));
    dot.addEventListener("mouseleave", () => { dot.classList.remove("hover"); $("tooltip").hidden = true; });
    dot.addEventListener("click", () => go({ word: p.word, a: "", b: "", c: "" }));
    const label = document.createElementNS(SVG, "text");
    const place = places.get(p.word);
    label.setAttribute("x", place.x); label.setAttribute("y", place.y);
    label.setAttribute("text-anchor", place.anchor);
    label.setAttribute("class", "label " + p.role);
    label.textContent = p.word;
    svg.append(dot, label);
  }
}

// Each label goes right of its point, else left, above or below, wherever it overlaps no label
// placed before it (the words asked about first) and no point; else right, overlapping.
function labelPlaces(points) {
  const boxes = [], places = new Map();
  const overlaps = (box) => boxes.some((o) => box.x1 < o.x2 && o.x1 < box.x2 && box.y1 < o.y2 && o.y1 < box.y2);
  const dots = points.map((p) => ({ x1: screenX(p) - 4, x2: screenX(p) + 4, y1: screenY(p) - 4, y2: screenY(p) + 4 }));
  const ordered = points.slice().sort((p, q) => (p.role === "neighbour") - (q.role === "neighbour"));
  for (const p of ordered) {
    const x = screenX(p), y = screenY(p), width = 7 * p.word.length + 4, height = 13;
    const options = [
      { x: x + 8, y: y + 4, anchor: "start", box: { x1: x + 7, x2: x + 8 + width, y1: y - 8, y2: y + 5 } },
      { x: x - 8, y: y + 4, anchor: "end", box: { x1: x - 8 - width, x2: x - 7, y1: y - 8, y2: y + 5 } },
      { x: x, y: y - 9, anchor: "middle", box: { x1: x - width / 2, x2: x + width / 2, y1: y - 9 - height, y2: y - 7 } },
      { x: x, y: y + 18, anchor: "middle", box: { x1: x - width / 2, x2: x + width / 2, y1: y + 6, y2: y + 6 + height } },
    ];
    const others = dots.filter((d, i) => points[i] !== p);
    const inside = (o) => o.box.x1 >= 0 && o.box.x2 <= view.width && o.box.y1 >= 0 && o.box.y2 <= view.height;
    const free = (o) => inside(o) && !overlaps(o.box) && !others.some((d) => o.box.x1 < d.x2 && d.x1 < o.box.x2 && o.box.y1 < d.y2 && d.y1 < o.box.y2);
    const chosen = options.find(free) || options.find(inside) || options[0];
    boxes.push(chosen.box);
    places.set(p.word, chosen);
  }
  return places;
}

function hover(p, dot, event) {
  dot.classList.add("hover");
  const tip = $("tooltip");
  tip.textContent = p.word + (p.score != null ? "  cosine " + p.score.toFixed(4) : "");
  const panel = $("map-panel").getBoundingClientRect();
  tip.style.left = (event.clientX - panel.left + 12) + "px";
  tip.style.top = (event.clientY - panel.top + 12) + "px";
  tip.hidden = false;
}

function zoom(factor, cx, cy) {
  if (!view.points.length) return;
  if (cx == null) { cx = view.width / 2; cy = view.height / 2; }
  view.x = cx - (cx - view.x) * factor;
  view.y = cy - (cy - view.y) * factor;
  view.scale *= factor;
  render();
}

function wireMap() {
  const svg = $("map");
  svg.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = svg.getBoundingClientRect();
    zoom(event.deltaY < 0 ? 1.2 : 1 / 1.2, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  let drag = null;
  svg.addEventListener("pointerdown", (event) => {
    if (event.target.tagName === "circle") return;
    drag = { x: event.clientX, y: event.clientY, vx: view.x, vy: view.y };
    svg.classList.add("dragging");
  });
  window.addEventListener("pointermove", (event) => {
    if (!drag) return;
    view.x = drag.vx + event.clientX - drag.x;
    view.y = drag.vy + event.clientY - drag.y;
    render();
  });
  window.addEventListener("pointerup", () => { drag = null; svg.classList.remove("dragging"); });
  $("zoom-in").addEventListener("click", () => zoom(1.25));
  $("zoom-out").addEventListener("click", () => zoom(1 / 1.25));
  $("zoom-reset").addEventListener("click", () => { if (view.points.length) fit(); });
  window.addEventListener("resize", () => { if (view.points.length) fit(); });
}

// -- completion --------------------------------------------------------------------------------

function wireCompletion() {
  const input = $("search"), list = $("completions");
  let timer = null, asked = 0, selected = -1;
  const close = () => { list.hidden = true; selected = -1; };
  const mark = () => [...list.children].forEach((li, i) => li.setAttribute("aria-selected", i === selected));
  input.addEventListener("input", () => {
    clearTimeout(timer);
    const prefix = input.value;
    if (!prefix) { close(); return; }
    timer = setTimeout(async () => {
      const ticket = ++asked;
      let found;
      try { found = await api("words", { prefix, limit: 8 }); } catch (e) { return; }
      if (ticket !== asked || input.value !== prefix) return;
      list.replaceChildren(...found.words.map((word) => {
        const li = el("li", { role: "option", "data-word": word }, word);
        li.addEventListener("mousedown", (event) => { event.preventDefault(); close(); go({ word, a: "", b: "", c: "" }); });
        return li;
      }));
      selected = -1;
      list.hidden = !found.words.length;
    }, 120);
  });
  input.addEventListener("keydown", (event) => {
    const count = list.hidden ? 0 : list.children.length;
    if (event.key === "ArrowDown" && count) { selected = (selected + 1) % count; mark(); event.preventDefault(); }
    else if (event.key === "ArrowUp" && count) { selected = (selected - 1 + count) % count; mark(); event.preventDefault(); }
    else if (event.key === "Escape") close();
    else if (event.key === "Enter" && selected >= 0 && count) {
      event.preventDefault();
      const word = list.children[selected].dataset.word;
      close();
      go({ word, a: "", b: "", c: "" });
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  return close;
}

// -- start ---------------------------------------------------------------------------------------

async function start() {
  const closeCompletion = wireCompletion();
  wireMap();
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    closeCompletion();
    const word = $("search").value.trim();
    if (word) go({ word, a: "", b: "", c: "" });
  });
  $("analogy-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const [a, b, c] = ["a", "b", "c"].map((name) => $(name).value.trim());
    if (a && b && c) go({ word: "", a, b, c, method: $("method").value });
  });
  $("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const words = $("add-word").value.split(/\s+/).filter(Boolean);
    $("add-word").value = "";
    if (words.length) go({ add: state.add.concat(words.filter((w) => !state.add.includes(w))) });
  });
  $("k").addEventListener("change", () => go({ k: $("k").value }));
  $("projection").addEventListener("change", () => go({ proj: $("projection").value }));
  $("index").addEventListener("change", () => go({ index: $("index").value }));
  window.addEventListener("popstate", () => { state = readState(); show(); });
  try {
    const info = await api("info");
    const name = info.path.split("/").pop();
    $("store-info").textContent = name + ": " + info.words.toLocaleString("en") + " words \u00d7 " + info.dimension;
    for (const index of info.indexes) {
      if (index.kind !== "exact" && !index.stale && !index.damaged) $("index").append(el("option", { value: index.kind }, index.kind));
    }
  } catch (error) {
    showMessage(error);
  }
  await show();
  document.body.dataset.ready = "1";
}

start();
