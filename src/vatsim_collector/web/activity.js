// The controller activity table: hours on position per member, position, facility or UTC day
// over a window the user picks (UTC), and a link to the same rows as CSV.

import { getJSON, query } from "./api.js";
import { byTestId, fmtDateTimeUTC, fmtInt, fromInputUTC, html, setCardError, setNumber, toInputUTC } from "./format.js";

const CARD = "card-activity";
const PATH = "/api/activity/controllers";
const DAY_MS = 86_400_000;
const LIMIT = 100;

function hours(value) {
  return value === null || value === undefined ? "—" : value.toFixed(2);
}

export class ActivityView {
  constructor() {
    this.from = document.getElementById("activity-from");
    this.to = document.getElementById("activity-to");
    this.group = document.getElementById("activity-group");
    this.csv = byTestId("activity-csv");
    // The last 24 h, to the next whole minute, until the user picks another window.
    const end = new Date(Math.ceil(Date.now() / 60_000) * 60_000);
    this.from.value = toInputUTC(new Date(end.getTime() - DAY_MS));
    this.to.value = toInputUTC(end);
    document.getElementById("activity-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load();
    });
    this.group.addEventListener("change", () => this.load());
  }

  params() {
    const from = fromInputUTC(this.from.value);
    const to = fromInputUTC(this.to.value);
    if (from === null || to === null) throw new Error("pick a start and an end");
    return { from: from.toISOString(), to: to.toISOString(), group_by: this.group.value, limit: LIMIT };
  }

  async load() {
    let params;
    try {
      params = this.params();
    } catch (error) {
      setCardError(CARD, error);
      return;
    }
    // The link always offers the rows asked for, even before (or without) an answer.
    this.csv.href = `${PATH}?${query({ ...params, format: "csv" })}`;
    try {
      const body = await getJSON(`${PATH}?${query(params)}`);
      this.render(body);
      setCardError(CARD, null);
    } catch (error) {
      setCardError(CARD, error);
    }
  }

  render(body) {
    setNumber("activity-hours", body.totals.hours, hours);
    setNumber("activity-groups", body.pagination.total);
    const rows = body.rows.map((r) =>
      html("tr", { "data-testid": "activity-row", dataset: { key: r.key } }, [
        html("td", { text: r.key }),
        html("td", { text: r.facility_name ?? "—" }),
        html("td", { class: "num", "data-value": r.hours, text: hours(r.hours) }),
        html("td", { class: "num", text: fmtInt(r.sessions) }),
        html("td", { class: "num", text: fmtInt(r.aircraft_handled) }),
        html("td", { text: fmtDateTimeUTC(new Date(r.first_seen)) }),
        html("td", { text: fmtDateTimeUTC(new Date(r.last_seen)) }),
      ]),
    );
    const table = byTestId("activity-rows");
    table.dataset.count = String(rows.length);
    table.dataset.from = body.from;
    table.dataset.to = body.to;
    table.replaceChildren(
      ...(rows.length
        ? rows
        : [html("tr", {}, [html("td", { class: "empty", colspan: 7, text: "No controller on position in this window." })])]),
    );
  }
}
