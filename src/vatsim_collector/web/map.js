// The traffic map: an equirectangular SVG (one SVG unit = one degree) with sector outlines,
// aircraft dots and ATC positions. Wheel or buttons zoom, dragging pans, double-click resets.

import { fmtInt, html, svg } from "./format.js";

// Latitudes beyond these carry almost no traffic; cutting them gives the wide card more room.
const LAT_MAX = 84;
const LAT_MIN = -62;
const WORLD = { x: 0, y: 0, w: 360, h: LAT_MAX - LAT_MIN };
const DOT_RADIUS = 0.85;
const ATC_RADIUS = 1.1;
const MAX_ZOOM = 24;

const px = (lon) => lon + 180;
const py = (lat) => LAT_MAX - lat;

function ringPath(ring) {
  return ring.map(([lon, lat], i) => `${i ? "L" : "M"}${px(lon).toFixed(3)},${py(lat).toFixed(3)}`).join("") + "Z";
}

function geometryPath(geometry) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  return polygons.map((rings) => rings.map(ringPath).join("")).join("");
}

function altitudeText(feet) {
  return feet >= 18000 ? `FL${Math.round(feet / 100)}` : `${fmtInt(feet)} ft`;
}

export class TrafficMap {
  constructor(container) {
    this.container = container;
    this.view = { ...WORLD };
    this.root = svg("svg", {
      class: "map",
      viewBox: this.viewBox(),
      preserveAspectRatio: "xMidYMid meet",
      role: "img",
      "aria-label": "Map of aircraft, ATC positions and sectors",
    });
    this.root.append(svg("rect", { class: "ocean", x: -360, y: -180, width: 1080, height: 540 }));
    const graticule = svg("g", { class: "graticule" });
    for (let lon = -150; lon <= 150; lon += 30) {
      graticule.append(svg("line", { x1: px(lon), x2: px(lon), y1: 0, y2: WORLD.h }));
    }
    for (let lat = -60; lat <= 80; lat += 30) {
      graticule.append(svg("line", { x1: 0, x2: 360, y1: py(lat), y2: py(lat) }));
    }
    graticule.append(svg("line", { class: "equator", x1: 0, x2: 360, y1: py(0), y2: py(0) }));
    this.sectors = svg("g", { class: "sectors", "data-testid": "map-sectors", "data-count": 0 });
    this.atc = svg("g", { class: "atc", "data-testid": "map-atc", "data-count": 0 });
    this.aircraft = svg("g", { class: "aircraft", "data-testid": "map-aircraft", "data-count": 0 });
    this.root.append(graticule, this.sectors, this.atc, this.aircraft);

    const zoom = (factor) => () => this.zoomAt(factor, this.view.x + this.view.w / 2, this.view.y + this.view.h / 2);
    const controls = html("div", { class: "map-controls" }, [
      html("button", { type: "button", title: "Zoom in", "aria-label": "Zoom in", text: "+" }),
      html("button", { type: "button", title: "Zoom out", "aria-label": "Zoom out", text: "−" }),
      html("button", { type: "button", title: "Whole world", "aria-label": "Reset view", text: "⟲" }),
    ]);
    const [plus, minus, reset] = controls.children;
    plus.addEventListener("click", zoom(1 / 1.6));
    minus.addEventListener("click", zoom(1.6));
    reset.addEventListener("click", () => this.setView({ ...WORLD }));
    container.replaceChildren(this.root, controls);
    this.listen();
  }

  viewBox() {
    const v = this.view;
    return `${v.x.toFixed(3)} ${v.y.toFixed(3)} ${v.w.toFixed(3)} ${v.h.toFixed(3)}`;
  }

  /** SVG units per CSS pixel (the view is letterboxed to keep the aspect ratio). */
  unitsPerPixel() {
    const box = this.root.getBoundingClientRect();
    return Math.max(this.view.w / Math.max(box.width, 1), this.view.h / Math.max(box.height, 1));
  }

  toWorld(event) {
    const box = this.root.getBoundingClientRect();
    const k = this.unitsPerPixel();
    const cx = box.left + box.width / 2;
    const cy = box.top + box.height / 2;
    return {
      x: this.view.x + this.view.w / 2 + (event.clientX - cx) * k,
      y: this.view.y + this.view.h / 2 + (event.clientY - cy) * k,
    };
  }

  setView(view) {
    const w = Math.min(WORLD.w, Math.max(WORLD.w / MAX_ZOOM, view.w));
    const h = (w / WORLD.w) * WORLD.h;
    const x = Math.min(WORLD.w - w, Math.max(0, view.x + (view.w - w) / 2));
    const y = Math.min(WORLD.h - h, Math.max(0, view.y + (view.h - h) / 2));
    this.view = { x, y, w, h };
    this.root.setAttribute("viewBox", this.viewBox());
    this.resizeMarks();
  }

  zoomAt(factor, wx, wy) {
    const v = this.view;
    const w = Math.min(WORLD.w, Math.max(WORLD.w / MAX_ZOOM, v.w * factor));
    const f = w / v.w;
    this.setView({ x: wx - (wx - v.x) * f, y: wy - (wy - v.y) * f, w, h: v.h * f });
  }

  listen() {
    this.root.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const p = this.toWorld(event);
        this.zoomAt(event.deltaY < 0 ? 1 / 1.25 : 1.25, p.x, p.y);
      },
      { passive: false },
    );
    let drag = null;
    this.root.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, view: { ...this.view }, k: this.unitsPerPixel() };
      this.root.setPointerCapture(event.pointerId);
      this.root.classList.add("dragging");
    });
    this.root.addEventListener("pointermove", (event) => {
      if (!drag) return;
      const dx = (event.clientX - drag.x) * drag.k;
      const dy = (event.clientY - drag.y) * drag.k;
      this.setView({ ...drag.view, x: drag.view.x - dx, y: drag.view.y - dy });
    });
    const end = () => {
      drag = null;
      this.root.classList.remove("dragging");
    };
    this.root.addEventListener("pointerup", end);
    this.root.addEventListener("pointercancel", end);
    this.root.addEventListener("dblclick", () => this.setView({ ...WORLD }));
  }

  /** Dots keep their size on screen whatever the zoom. */
  resizeMarks() {
    const scale = this.view.w / WORLD.w;
    for (const dot of this.aircraft.children) dot.setAttribute("r", (DOT_RADIUS * scale).toFixed(3));
    for (const ring of this.atc.children) ring.setAttribute("r", (ATC_RADIUS * scale).toFixed(3));
  }

  setSectors(collection) {
    const paths = collection.features.map((feature) => {
      const { name, lower_ft: lower, upper_ft: upper } = feature.properties;
      const band = lower === null && upper === null ? "" : ` (${lower === null ? "SFC" : altitudeText(lower)}–${upper === null ? "UNL" : altitudeText(upper)})`;
      return svg("path", { d: geometryPath(feature.geometry), "data-name": name }, [svg("title", {}, [`${name}${band}`])]);
    });
    this.sectors.replaceChildren(...paths);
    this.sectors.setAttribute("data-count", paths.length);
  }

  /** Shade the busiest sectors by their share of the busiest one's count. */
  setBusy(busiest) {
    const counts = new Map(busiest.map((s) => [s.name, s.current]));
    const top = Math.max(1, ...counts.values());
    for (const path of this.sectors.children) {
      const n = counts.get(path.dataset.name);
      path.classList.toggle("busy", n !== undefined);
      if (n === undefined) path.removeAttribute("fill-opacity");
      else path.setAttribute("fill-opacity", (0.12 + 0.4 * (n / top)).toFixed(2));
      path.firstChild.textContent = n === undefined ? path.dataset.name : `${path.dataset.name}: ${fmtInt(n)} aircraft`;
    }
  }

  highlight(name) {
    for (const path of this.sectors.children) path.classList.toggle("highlight", path.dataset.name === name);
  }

  setTraffic(flights, controllers) {
    const scale = this.view.w / WORLD.w;
    const dots = flights.map((f) => {
      const route = f.departure || f.arrival ? ` ${f.departure ?? "????"}→${f.arrival ?? "????"}` : "";
      const type = f.aircraft_short ? ` ${f.aircraft_short}` : "";
      return svg(
        "circle",
        { cx: px(f.longitude).toFixed(3), cy: py(f.latitude).toFixed(3), r: (DOT_RADIUS * scale).toFixed(3), class: f.groundspeed < 50 ? "ground" : null },
        [svg("title", {}, [`${f.callsign}${type}${route} · ${altitudeText(f.altitude)} · ${f.groundspeed} kt`])],
      );
    });
    this.aircraft.replaceChildren(...dots);
    this.aircraft.setAttribute("data-count", dots.length);
    const stations = controllers.filter((c) => c.kind === "controller" && !c.is_observer && c.latitude !== null && c.longitude !== null);
    const rings = stations.map((c) =>
      svg("circle", { cx: px(c.longitude).toFixed(3), cy: py(c.latitude).toFixed(3), r: (ATC_RADIUS * scale).toFixed(3) }, [
        svg("title", {}, [`${c.callsign} ${c.frequency}`]),
      ]),
    );
    this.atc.replaceChildren(...rings);
    this.atc.setAttribute("data-count", rings.length);
  }
}
