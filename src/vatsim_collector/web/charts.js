// Two hand-drawn SVG charts: a time series with a left and a right axis, and hourly bars.
// Both draw at the container's pixel size (text is never scaled) and redraw on resize.

import { fmtInt, fmtPercent, fmtTimeUTC, html, svg } from "./format.js";

const HOUR = 3600_000;

/** Smallest 1, 2, 2.5 or 5 times a power of ten that is >= x, at least 1 (counts are whole). */
function niceCeil(x) {
  if (x <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(x));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= x - 1e-9);
  return Number.isInteger(step) ? step : Math.ceil(step);
}

/** Interval count (3-5) whose axis top wastes least above ``max``. */
function intervals(max) {
  let best = 4;
  let bestTop = Infinity;
  for (const n of [4, 5, 3]) {
    const top = niceCeil(max / n) * n;
    if (top < bestTop) {
      best = n;
      bestTop = top;
    }
  }
  return best;
}

function hourStep(spanMs, width) {
  const fits = Math.max(2, Math.floor(width / 64));
  return [1, 2, 3, 4, 6, 12, 24].find((h) => (spanMs / HOUR) / h <= fits) ?? 24;
}

function hourTicks(start, end, stepHours) {
  const step = stepHours * HOUR;
  const ticks = [];
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t);
  return ticks;
}

function size(container, fallbackHeight) {
  const width = Math.max(240, Math.floor(container.clientWidth));
  const height = Math.max(160, Math.floor(container.clientHeight) || fallbackHeight);
  return { width, height };
}

/**
 * Series over [start, end] (epoch ms). ``series``: [{label, cls, axis: "left"|"right",
 * points: [[t, value], ...]}]. Points further apart than ``gapMs`` are not joined.
 */
export function drawTimeSeries(container, { start, end, series, gapMs }) {
  const { width, height } = size(container, 260);
  const m = { top: 14, right: 46, bottom: 28, left: 46 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const x = (t) => m.left + ((t - start) / (end - start)) * w;

  const root = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": series.map((s) => s.label).join(" and ") + " over time",
  });
  const axes = {};
  const n = intervals(Math.max(1, ...series[0].points.map((p) => p[1])));
  for (const s of series) {
    const max = Math.max(1, ...s.points.map((p) => p[1]));
    const step = niceCeil(max / n);
    axes[s.axis] = { step, top: step * n, y: (v) => m.top + h - (v / (step * n)) * h };
  }

  const grid = svg("g", { class: "grid" });
  for (let i = 0; i <= n; i += 1) {
    const yy = m.top + h - (i / n) * h;
    grid.append(svg("line", { x1: m.left, x2: m.left + w, y1: yy, y2: yy }));
    for (const [side, anchor, xx] of [
      ["left", "end", m.left - 8],
      ["right", "start", m.left + w + 8],
    ]) {
      const axis = axes[side];
      if (!axis) continue;
      grid.append(
        svg("text", { x: xx, y: yy, dy: "0.32em", "text-anchor": anchor, class: `tick ${side}` }, [
          fmtInt(axis.step * i),
        ]),
      );
    }
  }
  for (const t of hourTicks(start, end, hourStep(end - start, w))) {
    const xx = x(t);
    grid.append(svg("line", { class: "vtick", x1: xx, x2: xx, y1: m.top + h, y2: m.top + h + 4 }));
    grid.append(
      svg("text", { x: xx, y: m.top + h + 18, "text-anchor": "middle", class: "tick" }, [
        fmtTimeUTC(new Date(t), false),
      ]),
    );
  }
  root.append(grid);

  series.forEach((s) => {
    const y = axes[s.axis].y;
    const runs = [];
    let run = [];
    for (const [t, v] of s.points) {
      if (run.length && t - run[run.length - 1][0] > gapMs) {
        runs.push(run);
        run = [];
      }
      run.push([t, v]);
    }
    if (run.length) runs.push(run);
    for (const r of runs) {
      const line = r.map(([t, v], i) => `${i ? "L" : "M"}${x(t).toFixed(1)},${y(v).toFixed(1)}`);
      if (s.area && r.length > 1) {
        const base = (m.top + h).toFixed(1);
        const area = `${line.join("")}L${x(r[r.length - 1][0]).toFixed(1)},${base}L${x(r[0][0]).toFixed(1)},${base}Z`;
        root.append(svg("path", { class: `area ${s.cls}`, d: area }));
      }
      if (r.length > 1) root.append(svg("path", { class: `line ${s.cls}`, d: line.join("") }));
    }
    const last = s.points[s.points.length - 1];
    if (last) root.append(svg("circle", { class: `dot ${s.cls}`, cx: x(last[0]), cy: y(last[1]), r: 3.5 }));
  });

  const cursor = svg("g", { class: "cursor", visibility: "hidden" });
  const cursorLine = svg("line", { y1: m.top, y2: m.top + h });
  cursor.append(cursorLine);
  const cursorDots = series.map((s) => svg("circle", { class: `dot ${s.cls}`, r: 3.5 }));
  cursor.append(...cursorDots);
  root.append(cursor);
  const overlay = svg("rect", { class: "overlay", x: m.left, y: m.top, width: w, height: h });
  root.append(overlay);

  const tip = html("div", { class: "tooltip", hidden: "" });
  const times = series[0].points.map((p) => p[0]);
  overlay.addEventListener("pointermove", (event) => {
    if (!times.length) return;
    const box = root.getBoundingClientRect();
    const t = start + ((event.clientX - box.left - m.left) / w) * (end - start);
    let i = 0;
    for (let k = 1; k < times.length; k += 1) {
      if (Math.abs(times[k] - t) < Math.abs(times[i] - t)) i = k;
    }
    const xx = x(times[i]);
    cursorLine.setAttribute("x1", xx);
    cursorLine.setAttribute("x2", xx);
    const rows = series.map((s, k) => {
      const point = s.points.find((p) => p[0] === times[i]);
      cursorDots[k].setAttribute("visibility", point ? "visible" : "hidden");
      if (point) {
        cursorDots[k].setAttribute("cx", xx);
        cursorDots[k].setAttribute("cy", axes[s.axis].y(point[1]));
      }
      return html("div", {}, [
        html("span", { class: `swatch ${s.cls}` }),
        `${s.label} `,
        html("b", { text: point ? fmtInt(point[1]) : "—" }),
      ]);
    });
    tip.replaceChildren(html("div", { class: "tip-time", text: `${fmtTimeUTC(new Date(times[i]), false)} UTC` }), ...rows);
    cursor.setAttribute("visibility", "visible");
    tip.hidden = false;
    const left = Math.min(xx + 12, width - tip.offsetWidth - 4);
    tip.style.left = `${left < xx + 12 ? xx - tip.offsetWidth - 12 : left}px`;
    tip.style.top = `${m.top + 4}px`;
  });
  overlay.addEventListener("pointerleave", () => {
    cursor.setAttribute("visibility", "hidden");
    tip.hidden = true;
  });

  container.replaceChildren(root, tip);
}

/** Hourly shares as bars from 0 to 100 %. ``bars``: [{t, share (null: no data), title}]. */
export function drawHourlyBars(container, { bars }) {
  const { width, height } = size(container, 220);
  const m = { top: 12, right: 10, bottom: 28, left: 40 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const band = w / Math.max(1, bars.length);
  const y = (share) => m.top + h - share * h;

  const root = svg("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": "Share of positions in contact with ATC, by UTC hour",
  });
  const grid = svg("g", { class: "grid" });
  for (const share of [0, 0.25, 0.5, 0.75, 1]) {
    grid.append(svg("line", { x1: m.left, x2: m.left + w, y1: y(share), y2: y(share) }));
    grid.append(
      svg("text", { x: m.left - 8, y: y(share), dy: "0.32em", "text-anchor": "end", class: "tick" }, [
        fmtPercent(share),
      ]),
    );
  }
  root.append(grid);
  const every = bars.length ? hourStep(bars.length * HOUR, w) : 3;
  bars.forEach((bar, i) => {
    const x0 = m.left + i * band;
    const hour = new Date(bar.t).getUTCHours();
    const title = svg("title", {}, [bar.title]);
    if (bar.share === null) {
      root.append(svg("rect", { class: "bar nodata", x: x0 + band * 0.18, y: y(0) - 2, width: band * 0.64, height: 2 }, [title]));
    } else {
      const top = y(bar.share);
      root.append(
        svg("rect", {
          class: "bar",
          x: x0 + band * 0.15,
          y: Math.min(top, y(0) - 1),
          width: band * 0.7,
          height: Math.max(1, y(0) - top),
          rx: Math.min(3, band * 0.15),
        }, [title]),
      );
    }
    if (hour % every === 0) {
      root.append(
        svg("text", { x: x0 + band / 2, y: m.top + h + 18, "text-anchor": "middle", class: "tick" }, [
          `${String(hour).padStart(2, "0")}:00`,
        ]),
      );
    }
  });
  container.replaceChildren(root);
}

/**
 * Counts per time bucket as pairs of bars (departures, arrivals) over [start, end] (epoch ms).
 * ``buckets``: [{t, bucketMs, values: [n, n], title}]; ``classes`` names each bar's class.
 */
export function drawPairedBars(container, { start, end, buckets, classes, label }) {
  const { width, height } = size(container, 220);
  const m = { top: 12, right: 12, bottom: 28, left: 40 };
  const w = width - m.left - m.right;
  const h = height - m.top - m.bottom;
  const x = (t) => m.left + ((t - start) / (end - start)) * w;
  const n = intervals(Math.max(1, ...buckets.flatMap((b) => b.values)));
  const step = niceCeil(Math.max(1, ...buckets.flatMap((b) => b.values)) / n);
  const top = step * n;
  const y = (v) => m.top + h - (v / top) * h;

  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": label });
  const grid = svg("g", { class: "grid" });
  for (let i = 0; i <= n; i += 1) {
    const yy = y(step * i);
    grid.append(svg("line", { x1: m.left, x2: m.left + w, y1: yy, y2: yy }));
    grid.append(svg("text", { x: m.left - 8, y: yy, dy: "0.32em", "text-anchor": "end", class: "tick" }, [fmtInt(step * i)]));
  }
  for (const t of hourTicks(start, end, hourStep(end - start, w))) {
    const xx = x(t);
    grid.append(svg("line", { class: "vtick", x1: xx, x2: xx, y1: m.top + h, y2: m.top + h + 4 }));
    grid.append(svg("text", { x: xx, y: m.top + h + 18, "text-anchor": "middle", class: "tick" }, [fmtTimeUTC(new Date(t), false)]));
  }
  root.append(grid);
  for (const bucket of buckets) {
    const x0 = x(bucket.t);
    const band = Math.max(1, x(bucket.t + bucket.bucketMs) - x0);
    const bar = (band * 0.8) / bucket.values.length;
    bucket.values.forEach((value, k) => {
      if (value <= 0) return;
      root.append(
        svg("rect", {
          class: `bar ${classes[k]}`,
          x: x0 + band * 0.1 + k * bar,
          y: y(value),
          width: Math.max(1, bar - 0.5),
          height: Math.max(1, y(0) - y(value)),
        }, [svg("title", {}, [bucket.title])]),
      );
    });
  }
  container.replaceChildren(root);
}
