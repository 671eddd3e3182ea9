// Draws every chart of a page with Plotly from the JSON figures the server builds, and keeps
// live ones current: charts with data-live poll their source every data-refresh seconds, a
// DonkeyCar run's page reloads when its status changes (running -> COMPLETE/FAILED).
"use strict";

const REFRESH_MS = 1000 * Number(document.body.dataset.refresh || 5);
const PLOT_CONFIG = { responsive: true, displaylogo: false };

function showError(div, text) {
  div.replaceChildren();
  const p = document.createElement("p");
  p.className = "message";
  p.textContent = text;
  div.appendChild(p);
}

async function fetchJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function draw(div, figure) {
  if (div.querySelector(".message")) div.replaceChildren();
  await Plotly.react(div, figure.data, figure.layout, PLOT_CONFIG);
  div.dataset.drawn = String((div.dataset.drawn | 0) + 1);
}

// Charts sharing a source (reward and progress) share one request per round.
async function refreshCharts(divs) {
  const bySource = new Map();
  for (const div of divs) {
    if (!bySource.has(div.dataset.src)) bySource.set(div.dataset.src, []);
    bySource.get(div.dataset.src).push(div);
  }
  for (const [src, group] of bySource) {
    try {
      const body = await fetchJson(src);
      for (const div of group) {
        if (div.dataset.status && body.status && body.status !== div.dataset.status) {
          window.location.reload();
          return;
        }
        await draw(div, div.dataset.key ? body[div.dataset.key] : body.figure);
      }
    } catch (error) {
      for (const div of group) showError(div, String(error.message || error));
    }
  }
}

function mapControls() {
  const form = document.getElementById("map-controls");
  const div = document.getElementById("map-chart");
  if (!form || !div) return;
  const update = async () => {
    const query = new URLSearchParams(new FormData(form));
    try {
      const body = await fetchJson(`${form.dataset.src}?${query}`);
      await draw(div, body.figure);
    } catch (error) {
      showError(div, String(error.message || error));
    }
  };
  form.addEventListener("change", update);
  update();
}

// Figures that came with the page (data-initial names the JSON script element) draw at once.
function drawInitial(charts) {
  const pending = [];
  for (const div of charts) {
    const initial = div.dataset.initial && document.getElementById(div.dataset.initial);
    if (initial) draw(div, JSON.parse(initial.textContent)[div.dataset.key]);
    else pending.push(div);
  }
  return pending;
}

function start() {
  const charts = [...document.querySelectorAll(".chart[data-src]")];
  refreshCharts(drawInitial(charts));
  const live = charts.filter((div) => div.dataset.live || div.dataset.status === "running");
  if (live.length) setInterval(() => refreshCharts(live), REFRESH_MS);
  mapControls();
}

start();
