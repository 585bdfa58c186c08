// The airport view: a code typed in the search box shows that airport now (on ground,
// departing, arriving, ATC), its departures and arrivals per hour over the last 24 h and its
// latest movements. The code is kept in the address (#airport=EGLL) so the view can be linked.

import { getJSON, query } from "./api.js";
import { drawPairedBars } from "./charts.js";
import { byTestId, fmtDateTimeUTC, fmtInt, fmtTimeUTC, html, setCardError, setNumber } from "./format.js";

const CARD = "card-airport";
const DAY_MS = 86_400_000;
const BUCKET_MINUTES = 60;
const MOVEMENTS_LISTED = 100;
const CODE = /^[A-Z0-9]{2,8}$/;
const KIND_LABELS = {
  off_block: "off block",
  takeoff: "takeoff",
  landing: "landing",
  touch_and_go: "touch-and-go",
  go_around: "go-around",
  on_block: "on block",
};

const text = (value) => (value === null || value === undefined || value === "" ? "—" : String(value));

function cells(values, numeric = []) {
  return values.map((value, i) => html("td", { class: numeric.includes(i) ? "num" : null, text: text(value) }));
}

function fillRows(id, rows, columns, empty) {
  const body = byTestId(id);
  body.dataset.count = String(rows.length);
  body.replaceChildren(
    ...(rows.length ? rows : [html("tr", {}, [html("td", { class: "empty", colspan: columns, text: empty })])]),
  );
}

function row(testId, callsign, values, numeric) {
  return html("tr", { "data-testid": testId, dataset: { callsign } }, cells(values, numeric));
}

export class AirportView {
  constructor() {
    this.card = document.getElementById(CARD);
    this.icao = null;
    this.loading = false;
    this.last = null;
    document.getElementById("airport-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const code = document.getElementById("airport-input").value.trim().toUpperCase();
      if (!CODE.test(code)) {
        setCardError(CARD, new Error("an ICAO code is 2 to 8 letters and digits"));
        return;
      }
      history.replaceState(null, "", `#airport=${code}`);
      this.show(code);
    });
    const linked = /^#airport=([A-Za-z0-9]{2,8})$/.exec(location.hash);
    if (linked) {
      document.getElementById("airport-input").value = linked[1].toUpperCase();
      this.show(linked[1].toUpperCase());
    }
  }

  show(icao) {
    this.icao = icao;
    return this.refresh();
  }

  /** Reads the airport's three endpoints; the dashboard calls it on every refresh. */
  async refresh() {
    const icao = this.icao;
    if (icao === null || this.loading) return;
    this.loading = true;
    try {
      const now = await getJSON(`/api/airports/${encodeURIComponent(icao)}`);
      // The airport's own "at" is the server's now: the chart and the list follow its clock.
      const to = new Date(now.at ?? Date.now());
      const from = new Date(to.getTime() - DAY_MS);
      const window = { from: from.toISOString(), to: to.toISOString() };
      const [traffic, movements] = await Promise.all([
        getJSON(`/api/airports/${encodeURIComponent(icao)}/traffic?${query({ ...window, bucket_minutes: BUCKET_MINUTES })}`),
        getJSON(`/api/airports/${encodeURIComponent(icao)}/movements?${query({ ...window, limit: MOVEMENTS_LISTED })}`),
      ]);
      if (icao !== this.icao) return; // another code was asked for meanwhile
      this.render(now, traffic, movements, window);
      this.card.dataset.state = "shown";
      this.card.dataset.icao = icao;
      setCardError(CARD, null);
    } catch (error) {
      if (error.status === 404 && icao === this.icao) {
        // Not an airport: stop asking for it on every refresh.
        this.icao = null;
        this.last = null;
        this.card.dataset.state = "empty";
        byTestId("airport-title").textContent = `No airport ${icao} in the reference.`;
      }
      setCardError(CARD, error);
    } finally {
      this.loading = false;
    }
  }

  render(now, traffic, movements, window) {
    const icao = now.icao;
    const codes = [now.iata, now.country].filter(Boolean).join(" · ");
    byTestId("airport-title").textContent = `${icao} · ${now.name}${codes ? ` (${codes})` : ""}`;
    const departing = now.on_ground.filter((f) => f.departure === icao);
    setNumber("airport-on-ground", now.on_ground.length);
    setNumber("airport-departing", departing.length);
    setNumber("airport-arriving", now.inbound.length);
    setNumber("airport-departures-60", now.departures.last_60_min);
    setNumber("airport-departures-30", now.departures.last_30_min);
    setNumber("airport-arrivals-60", now.arrivals.last_60_min);
    setNumber("airport-arrivals-30", now.arrivals.last_30_min);
    setNumber("airport-atc", now.atc.length);
    byTestId("airport-atc-list").textContent = now.atc.length
      ? now.atc.map((a) => `${a.callsign} ${a.frequency}`).join(", ")
      : "no positions online";

    const ground = now.on_ground.map((f) =>
      row("airport-ground-row", f.callsign, [f.callsign, f.aircraft, f.departure, f.arrival, f.groundspeed, f.state], [4]),
    );
    byTestId("airport-ground-count").textContent = `(${fmtInt(ground.length)})`;
    fillRows("airport-ground-rows", ground, 6, "No aircraft on the ground.");
    fillRows(
      "airport-departing-rows",
      departing.map((f) => row("airport-departing-row", f.callsign, [f.callsign, f.aircraft, f.arrival, f.state])),
      4,
      "Nobody on the ground with this departure filed.",
    );
    fillRows(
      "airport-arriving-rows",
      now.inbound.map((f) =>
        row(
          "airport-arriving-row",
          f.callsign,
          [f.callsign, f.departure, f.altitude, f.distance_nm === null || f.distance_nm === undefined ? null : Math.round(f.distance_nm), f.eta ? `${fmtTimeUTC(new Date(f.eta), false)} UTC` : null],
          [2, 3],
        ),
      ),
      5,
      "Nobody inbound.",
    );
    const listed = movements.movements;
    fillRows(
      "airport-movement-rows",
      listed.map((m) =>
        row("airport-movement-row", m.callsign, [fmtDateTimeUTC(new Date(m.at)), m.callsign, (KIND_LABELS[m.kind] ?? m.kind) + (m.diversion ? " (diversion)" : ""), m.runway_heading], [3]),
      ),
      4,
      "No movements in the last 24 h.",
    );
    this.drawTraffic(traffic, window);
  }

  drawTraffic(traffic, window) {
    this.last = { traffic, window };
    const chart = document.getElementById("airport-chart");
    chart.dataset.from = window.from;
    chart.dataset.to = window.to;
    const buckets = traffic.buckets.map((b) => {
      const t = Date.parse(b.start);
      return {
        t,
        bucketMs: BUCKET_MINUTES * 60_000,
        values: [b.departures, b.arrivals],
        title: `${fmtTimeUTC(new Date(t), false)} UTC: ${fmtInt(b.departures)} departures, ${fmtInt(b.arrivals)} arrivals`,
      };
    });
    setNumber("airport-traffic-departures", traffic.buckets.reduce((n, b) => n + b.departures, 0));
    setNumber("airport-traffic-arrivals", traffic.buckets.reduce((n, b) => n + b.arrivals, 0));
    const peak = traffic.peak_hour;
    const peakStart = peak ? peak.start : null;
    const peakNode = byTestId("airport-peak-hour");
    peakNode.textContent = peakStart ? `${fmtTimeUTC(new Date(peakStart), false)} UTC · ${fmtInt(peak.total)}` : "—";
    if (peakStart) peakNode.dataset.value = String(peak.total);
    else delete peakNode.dataset.value;
    chart.dataset.buckets = String(buckets.length);
    drawPairedBars(chart, {
      start: Date.parse(window.from),
      end: Date.parse(window.to),
      buckets,
      classes: ["dep", "arr"],
      label: "Departures and arrivals per hour",
    });
  }

  /** Draws the last chart again at the container's new size. */
  redraw() {
    if (this.last) this.drawTraffic(this.last.traffic, this.last.window);
  }
}
