// The Pulse app stand-in: reads config.json (written next to index.html by
// playbooks/deploy_app.yml: {"apiUrl": "https://api.<domain>"}) and shows the chain height and
// the latest block of that API, every few seconds. No framework, no build step beyond
// lab/pulse-app/build.py (which puts this file under assets/ with a content hash in its name).
const BUILD = "__BUILD_ID__";
const REFRESH_MS = 3000;

const $ = (id) => document.getElementById(id);

function show(state, message) {
  document.body.dataset.state = state;
  $("status").textContent = message;
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function loadConfig() {
  const config = await getJson("config.json");
  const apiUrl = String(config.apiUrl || "").replace(/\/+$/, "");
  if (!/^https?:\/\//.test(apiUrl)) throw new Error("config.json has no apiUrl");
  return apiUrl;
}

async function api(apiUrl, path) {
  const body = await getJson(apiUrl + path);
  if (body.success !== true) throw new Error(`${path}: ${body.error || "failed"}`);
  return body.data;
}

async function refresh(apiUrl) {
  try {
    const [chain, latest] = await Promise.all([api(apiUrl, "/chain"), api(apiUrl, "/block/latest")]);
    $("height").textContent = String(chain.height);
    $("latest-index").textContent = String(latest.index);
    $("latest-hash").textContent = latest.block_hash || chain.latest_hash;
    $("latest-time").textContent = new Date(latest.timestamp).toISOString();
    $("latest-heartbeats").textContent = String((latest.heartbeats || []).length);
    show("ok", `Live from ${apiUrl} (updated ${new Date().toISOString().slice(11, 19)} UTC)`);
  } catch (error) {
    show("error", `The API ${apiUrl} did not answer: ${error.message}`);
  }
}

async function main() {
  $("build").textContent = BUILD;
  $("path").textContent = window.location.pathname;
  let apiUrl;
  try {
    apiUrl = await loadConfig();
  } catch (error) {
    show("error", `No configuration: ${error.message}`);
    return;
  }
  $("api-url").textContent = apiUrl;
  await refresh(apiUrl);
  setInterval(() => refresh(apiUrl), REFRESH_MS);
}

main();
