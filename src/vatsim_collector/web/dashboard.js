// The dashboard: reads the collector's own public API every 15 s and draws it. Every request
// goes to this origin (the page's Content-Security-Policy refuses anything else).

import { ActivityView } from "./activity.js";
import { AirportView } from "./airport.js";
import { getJSON } from "./api.js";
import { drawHourlyBars, drawTimeSeries } from "./charts.js";
import { byTestId, fmtAge, fmtDateTimeUTC, fmtInt, fmtPercent, fmtTimeUTC, html, setCardError, setNumber } from "./format.js";
import { TrafficMap } from "./map.js";

const REFRESH_MS = 15_000;
const HISTORY_HOURS = 24;
const BUCKET_MINUTES = 10;
const BUSIEST_LISTED = 10;
// More than are listed, so the map can shade sectors beyond the top ten.
const BUSIEST_SHADED = 60;
const AIRBORNE_KT = 50;
// Coverage scans a day of stored positions: far dearer than the rest, and an hourly share
// hardly moves in 15 s, so it is read every 5 minutes.
const COVERAGE_EVERY_MS = 300_000;

function setState(id, state, text) {
  const node = byTestId(id);
  node.dataset.state = state;
  node.textContent = text;
}


const ui = {
  map: null,
  sectorsLoaded: false,
  history: null,
  coverage: null,
  coverageAt: -Infinity,
  airport: null,
  activity: null,
  age: null, // { seconds, at }: the status's age and when it was read, to count on locally
  staleAfter: 120,
};

function renderStatus(status) {
  const live = status.live;
  setNumber("count-pilots", live.pilots);
  setNumber("count-controllers", live.controllers);
  setNumber("count-atis", live.atis);
  setNumber("count-observers", live.observers);
  setNumber("count-prefiles", live.prefiles);
  const feed = status.feed.status;
  setState("feed-status", feed, { ok: "Feed live", stale: "Feed stale", failing: "Feed failing", unknown: "No feed yet" }[feed]);
  const health = status.health.status;
  setState("health-status", health, { ok: "Database ok", degraded: "Database degraded", down: "Database down" }[health]);
  byTestId("health-status").title = status.health.reasons.join("\n") || "No problems reported";
  const last = status.last_snapshot_at ? new Date(status.last_snapshot_at) : null;
  const lastNode = byTestId("last-snapshot");
  lastNode.textContent = last ? fmtDateTimeUTC(last) : "none yet";
  lastNode.dateTime = status.last_snapshot_at ?? "";
  ui.age = status.age_seconds === null ? null : { seconds: status.age_seconds, at: performance.now() };
  ui.staleAfter = status.stale_after_seconds;
  tickAge();
}

function tickAge() {
  const age = ui.age === null ? null : ui.age.seconds + (performance.now() - ui.age.at) / 1000;
  setNumber("snapshot-age", age === null ? null : Math.round(age), fmtAge);
  const card = document.getElementById("card-age");
  const state = age === null ? "none" : age > ui.staleAfter ? "stale" : "fresh";
  card.dataset.state = state;
  byTestId("freshness").textContent = {
    none: "waiting for the first snapshot",
    fresh: `fresh · stale after ${fmtAge(ui.staleAfter)}`,
    stale: `stale: older than ${fmtAge(ui.staleAfter)}`,
  }[state];
}

function renderFlights(flights, controllers) {
  const airborne = flights.filter((f) => f.groundspeed >= AIRBORNE_KT).length;
  setNumber("count-airborne", airborne);
  setNumber("count-ground", flights.length - airborne);
  setNumber("map-aircraft-count", flights.length);
  ui.map.setTraffic(flights, controllers);
  setNumber("map-atc-count", Number(byTestId("map-atc").dataset.count));
}

function drawHistory() {
  const data = ui.history;
  if (!data) return;
  const chart = document.getElementById("history-chart");
  const points = data.points.map((p) => [Date.parse(p.at), p]);
  setNumber("history-points", points.length);
  document.getElementById("history-points-unit").textContent = points.length === 1 ? "bucket" : "buckets";
  const last = data.points[data.points.length - 1];
  setNumber("history-last-pilots", last ? last.pilots : null);
  setNumber("history-last-controllers", last ? last.controllers : null);
  if (!points.length) {
    chart.replaceChildren(html("p", { class: "empty", text: `No snapshots stored in the last ${HISTORY_HOURS} h.` }));
    return;
  }
  drawTimeSeries(chart, {
    start: Date.parse(data.from),
    end: Date.parse(data.to),
    gapMs: 1.5 * data.bucket_minutes * 60_000,
    series: [
      { label: "Pilots", cls: "s-pilots", axis: "left", area: true, points: points.map(([t, p]) => [t, p.pilots]) },
      { label: "Controllers", cls: "s-controllers", axis: "right", points: points.map(([t, p]) => [t, p.controllers]) },
    ],
  });
}

function drawCoverage() {
  const data = ui.coverage;
  if (!data) return;
  setNumber("coverage-overall", data.coverage, (v) => fmtPercent(v, 1));
  setNumber("coverage-samples", data.samples);
  const bars = data.hourly.map((h) => {
    const t = Date.parse(h.hour);
    const span = `${fmtTimeUTC(new Date(t), false)}–${fmtTimeUTC(new Date(t + 3600_000), false)} UTC`;
    const title = h.samples ? `${span}: ${fmtPercent(h.coverage, 1)} of ${fmtInt(h.samples)} positions` : `${span}: no positions`;
    return { t, share: h.samples ? h.coverage : null, title };
  });
  drawHourlyBars(document.getElementById("coverage-chart"), { bars });
}

function renderBusiest(sectors) {
  const listed = sectors.slice(0, BUSIEST_LISTED);
  const top = Math.max(1, ...listed.map((s) => s.current));
  const list = byTestId("busiest-list");
  list.dataset.count = String(listed.length);
  if (!listed.length) {
    list.replaceChildren(html("li", { class: "empty", text: "No aircraft inside any sector." }));
  } else {
    list.replaceChildren(
      ...listed.map((s, i) => {
        const bar = html("span", { class: "meter-fill" });
        bar.style.width = `${(100 * s.current) / top}%`;
        const row = html("li", { "data-testid": "busiest-row", dataset: { name: s.name }, tabindex: "0" }, [
          html("span", { class: "rank", text: String(i + 1) }),
          html("span", { class: "sector-name", "data-testid": "busiest-name", text: s.name }),
          html("span", { class: "meter" }, [bar]),
          html("span", { class: "num", "data-testid": `busiest-count-${s.name}`, "data-value": s.current, text: fmtInt(s.current) }),
        ]);
        for (const on of ["mouseenter", "focus"]) row.addEventListener(on, () => ui.map.highlight(s.name));
        for (const off of ["mouseleave", "blur"]) row.addEventListener(off, () => ui.map.highlight(null));
        return row;
      }),
    );
  }
  ui.map.setBusy(sectors);
}

const CATEGORY_LABELS = {
  network: "Network",
  timeout: "Timeout",
  http_status: "HTTP status",
  decode: "Decode",
  database: "Database",
  configuration: "Configuration",
  resource: "Resource",
  handler: "Handler",
  unknown: "Unknown",
};

function renderService(service) {
  const errors = service.errors;
  const chips = byTestId("error-categories");
  if (errors === null) {
    setNumber("errors-total", null);
    chips.replaceChildren(html("span", { class: "muted", text: "The error layer is not running in this process." }));
  } else {
    setNumber("errors-total", errors.total);
    const seen = Object.entries(errors.by_category).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
    chips.replaceChildren(
      ...(seen.length
        ? seen.map(([category, n]) =>
            html("span", { class: "chip" }, [
              `${CATEGORY_LABELS[category] ?? category} `,
              html("b", { class: "num", "data-testid": `errors-${category}`, "data-value": n, text: fmtInt(n) }),
            ]),
          )
        : [html("span", { class: "muted", text: "No errors recorded in the last hour." })]),
    );
  }
  const breakers = service.breakers;
  const open = breakers.filter((b) => b.state !== "closed").length;
  setNumber("breakers-open", open);
  setNumber("breakers-total", breakers.length);
  byTestId("breakers").replaceChildren(
    ...(breakers.length
      ? breakers.map((b) => {
          // Another node's breaker (several nodes share the database): named with its node.
          const other = b.node && b.node !== service.node;
          const id = other ? `breaker-${b.node}-${b.name}` : `breaker-${b.name}`;
          return html("li", { class: "breaker", "data-testid": id, dataset: { state: b.state } }, [
            html("span", { class: "led", "aria-hidden": "true" }),
            html("span", { class: "breaker-name", text: other ? `${b.name} @ ${b.node}` : b.name }),
            html("span", { class: "breaker-state", text: b.state.replace("_", "-") }),
          ]);
        })
      : [html("li", { class: "muted", text: "No circuit breakers in this process." })]),
  );
}

async function loadSectors() {
  try {
    ui.map.setSectors(await getJSON("/api/sectors/geojson?simplify=0.05"));
    ui.sectorsLoaded = true;
  } catch (error) {
    setCardError("card-map", error);
  }
}

async function refresh() {
  if (!ui.sectorsLoaded) await loadSectors();
  const [status, flights, controllers, history, coverage, busiest, service] = await Promise.allSettled([
    getJSON("/api/status"),
    getJSON("/api/flights"),
    getJSON("/api/controllers"),
    getJSON(`/api/history/counts?hours=${HISTORY_HOURS}&bucket_minutes=${BUCKET_MINUTES}`),
    performance.now() - ui.coverageAt >= COVERAGE_EVERY_MS ? getJSON("/api/coverage") : null,
    getJSON(`/api/sectors/busiest?limit=${BUSIEST_SHADED}`),
    getJSON("/api/status/breakers"),
  ]);
  const apply = (card, result, render) => {
    if (result.status === "fulfilled") {
      render(result.value);
      setCardError(card, null);
    } else {
      setCardError(card, result.reason);
    }
  };
  apply("card-live", status, renderStatus);
  document.body.dataset.reachable = String(status.status === "fulfilled");
  if (flights.status === "fulfilled" && controllers.status === "fulfilled") {
    renderFlights(flights.value.flights, controllers.value.controllers);
    if (ui.sectorsLoaded) setCardError("card-map", null);
  } else {
    setCardError("card-map", flights.reason ?? controllers.reason);
  }
  apply("card-history", history, (value) => {
    ui.history = value;
    drawHistory();
  });
  if (coverage.value !== null) {
    apply("card-coverage", coverage, (value) => {
      ui.coverage = value;
      ui.coverageAt = performance.now();
      drawCoverage();
    });
  }
  apply("card-busiest", busiest, (value) => renderBusiest(value.sectors));
  apply("card-service", service, renderService);
  // The airport view (when one is shown) follows the same refresh; it reports its own errors.
  await ui.airport.refresh();
  const now = new Date();
  const updated = byTestId("updated-at");
  updated.textContent = `${fmtTimeUTC(now)} UTC`;
  updated.dateTime = now.toISOString();
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
  // Restart the progress bar's animation: it shows the time to the next refresh.
  const progress = document.getElementById("refresh-progress");
  progress.classList.remove("running");
  void progress.offsetWidth;
  progress.classList.add("running");
}

let timer = null;

async function cycle() {
  clearTimeout(timer);
  try {
    await refresh();
  } finally {
    // A hidden tab stops polling; becoming visible again refreshes at once.
    if (!document.hidden) timer = setTimeout(cycle, REFRESH_MS);
  }
}

function redrawOnResize() {
  let pending = false;
  const observer = new ResizeObserver(() => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      drawHistory();
      drawCoverage();
      ui.airport.redraw();
    });
  });
  observer.observe(document.getElementById("history-chart"));
  observer.observe(document.getElementById("coverage-chart"));
  observer.observe(document.getElementById("airport-chart"));
}

function start() {
  ui.map = new TrafficMap(document.getElementById("map"));
  ui.airport = new AirportView();
  ui.activity = new ActivityView();
  ui.activity.load();
  setInterval(tickAge, 1000);
  redrawOnResize();
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) cycle();
  });
  cycle();
}

start();
