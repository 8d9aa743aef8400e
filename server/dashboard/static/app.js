// The dashboard: wires the live feed, the camera grid, the timeline and the dialogs.

import { api, authEvents, fetchImage, tokenStore } from "./api.js";
import { CameraForm } from "./camera-form.js";
import { ZoneEditor } from "./editor.js";
import { CameraGrid } from "./grid.js";
import { LiveFeed } from "./live.js";
import { playMjpeg } from "./mjpeg.js";
import { Timeline } from "./timeline.js";
import { $, debounce, formatWhen, sleep } from "./util.js";

const body = document.body;
const live = new LiveFeed();
let cameras = [];

// ---- notices -------------------------------------------------------------------------------

const toast = $("#toast");
let toastTimer = null;
function notify(text) {
  toast.textContent = text;
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (toast.hidden = true), 5000);
}

// ---- cameras -------------------------------------------------------------------------------

const grid = new CameraGrid($("#grid"), {
  open: openCamera,
  edit: (camera) => cameraForm.open(camera),
  zones: (camera) => editor.open(camera),
  sensitivity: setSensitivity,
});
const timeline = new Timeline({
  list: $("#events"),
  more: $("#more-events"),
  empty: $("#no-events"),
  cameraSelect: $("#filter-camera"),
  zoneSelect: $("#filter-zone"),
  onOpen: openEvent,
  onNewest: (id) => live.noteEvent(id),
});
const cameraForm = new CameraForm($("#camera-dialog"), { onSaved: () => loadCameras() });
const editor = new ZoneEditor($("#zone-dialog"), { onSaved: () => loadCameras() });

async function loadCameras() {
  try {
    cameras = (await api("api/cameras")).cameras;
  } catch (err) {
    if (err.status !== 401) notify(`Cameras: ${err.message}`);
    return;
  }
  grid.setCameras(cameras);
  timeline.setCameras(cameras);
  $("#no-cameras").hidden = cameras.length > 0;
  body.dataset.cameras = String(cameras.length);
}
const reloadCameras = debounce(loadCameras, 300);

async function setSensitivity(camera, value) {
  try {
    const saved = await api(`api/cameras/${encodeURIComponent(camera.id)}`, {
      method: "PATCH",
      body: { detect: { sensitivity: value } },
    });
    camera.detect = saved.detect;
  } catch (err) {
    notify(`Sensitivity: ${err.message}`);
  }
}

async function loadTimeline() {
  try {
    await timeline.reload();
  } catch (err) {
    if (err.status !== 401) notify(`Events: ${err.message}`);
  }
}

// ---- the live view and event snapshots -----------------------------------------------------

const viewDialog = $("#view-dialog");
const viewImage = $("img", viewDialog);
let viewAbort = null;

viewDialog.addEventListener("close", () => {
  viewAbort?.abort();
  viewAbort = null;
  viewImage.removeAttribute("src");
});
$("[data-action=close]", viewDialog).addEventListener("click", () => viewDialog.close());

function openCamera(camera) {
  delete viewDialog.dataset.source;
  $("h2", viewDialog).textContent = camera.name || camera.id;
  $(".view-caption", viewDialog).textContent = "Live";
  viewDialog.showModal();
  viewAbort?.abort();
  const abort = new AbortController();
  viewAbort = abort;
  streamCamera(camera.id, abort.signal);
}

async function streamCamera(id, signal) {
  // One MJPEG stream for the enlarged camera only; snapshots again if it cannot stream.
  const path = `api/cameras/${encodeURIComponent(id)}`;
  while (!signal.aborted) {
    try {
      await playMjpeg(`${path}/stream.mjpeg?fps=8&boxes=true`, viewImage, signal, () => {
        viewDialog.dataset.source = "mjpeg";
      });
    } catch (err) {
      if (signal.aborted) return;
      try {
        const url = await fetchImage(`${path}/snapshot.jpg?boxes=true`, { signal });
        viewDialog.dataset.source = "snapshot";
        const old = viewImage.src;
        viewImage.src = url;
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      } catch {
        // camera away: try again shortly
      }
    }
    await sleep(1000);
  }
}

function openEvent(event, url) {
  viewAbort?.abort();
  viewAbort = null;
  delete viewDialog.dataset.source;
  const name = cameras.find((c) => c.id === event.camera)?.name ?? event.camera;
  $("h2", viewDialog).textContent = `${name}: event at ${formatWhen(event.start)}`;
  const caption = $(".view-caption", viewDialog);
  caption.textContent = (event.zones || []).length ? `Zones: ${event.zones.join(", ")}` : "";
  if (url) viewImage.src = url;
  else {
    // Its thumbnail was never loaded (the event was not scrolled into view): fetch it here.
    viewImage.removeAttribute("src");
    if (event.has_snapshot) showEventSnapshot(event, caption);
    else caption.textContent = "This event has no snapshot.";
  }
  viewDialog.showModal();
}

async function showEventSnapshot(event, caption) {
  const abort = new AbortController();
  viewAbort = abort;
  try {
    const url = await fetchImage(`api/events/${encodeURIComponent(event.id)}/snapshot.jpg`, {
      signal: abort.signal,
      cache: "no-cache",
    });
    if (abort.signal.aborted) URL.revokeObjectURL(url);
    else {
      viewImage.src = url;
      abort.signal.addEventListener("abort", () => URL.revokeObjectURL(url));
    }
  } catch {
    if (!abort.signal.aborted) caption.textContent = "The snapshot could not be loaded.";
  }
}

// ---- connection state ----------------------------------------------------------------------

const conn = $("#conn");
let connTimer = null;
function renderConnection() {
  const { state, detail } = live;
  conn.dataset.state = state;
  let label = { connecting: "Connecting…", live: "Live", unauthorized: "Token needed" }[state] ?? state;
  clearTimeout(connTimer);
  if (state === "reconnecting") {
    const seconds = Math.max(0, Math.ceil((live.retryAt - Date.now()) / 1000));
    label = seconds ? `Reconnecting in ${seconds} s` : "Reconnecting…";
    connTimer = setTimeout(renderConnection, 500);
  }
  $(".label", conn).textContent = label;
  conn.title = detail || "";
}
live.addEventListener("state", renderConnection);
live.addEventListener("state", () => {
  // Camera status and counts come over the connection: without it they are unknown, not
  // "online". The next hello loads them again.
  if (live.state !== "reconnecting" || !live.everConnected) return;
  grid.markUnknown("no connection to the server");
  $("#stats").textContent = "";
});

live.addEventListener("message", (e) => {
  const msg = e.detail;
  switch (msg.type) {
    case "hello":
      body.dataset.role = msg.role || "viewer";
      body.dataset.connections = String(Number(body.dataset.connections || 0) + 1);
      loadCameras();
      if (msg.reconnect) timeline.refreshOpen();
      break;
    case "motion":
      grid.onMessage(msg);
      break;
    case "camera_status":
      if (grid.has(msg.camera)) grid.onMessage(msg);
      else reloadCameras();
      break;
    case "camera_removed":
      reloadCameras();
      break;
    case "event_start":
    case "event_update":
    case "event_end":
      timeline.onMessage(msg);
      break;
    case "event_deleted":
      timeline.remove(msg.id);
      break;
    case "stats":
      $("#stats").textContent = `${msg.cameras_online}/${msg.cameras_total} online · ${msg.events_total} events`;
      break;
    case "resumed":
      body.dataset.resumedSince = msg.since;
      break;
    case "error":
      notify(`Server: ${msg.message}`);
      break;
    default:
      break;
  }
});

// ---- token ---------------------------------------------------------------------------------

const tokenDialog = $("#token-dialog");
const tokenForm = $("form", tokenDialog);

function openToken(reason) {
  if (tokenDialog.open) return;
  $(".form-error", tokenDialog).textContent = reason || "";
  tokenForm.elements.token.value = tokenStore.get();
  tokenForm.elements.remember.checked = tokenStore.remembered();
  tokenDialog.showModal();
}

tokenForm.addEventListener("submit", (e) => {
  e.preventDefault();
  tokenStore.set(tokenForm.elements.token.value.trim(), tokenForm.elements.remember.checked);
  tokenDialog.close();
  live.restart();
  loadCameras();
  loadTimeline();
});
$("[data-action=cancel]", tokenDialog).addEventListener("click", () => tokenDialog.close());
$("[data-action=signout]", tokenDialog).addEventListener("click", () => {
  tokenStore.set("", false);
  tokenDialog.close();
  live.restart();
});
$("#token-button").addEventListener("click", () => openToken(""));
authEvents.addEventListener("unauthorized", () =>
  openToken(tokenStore.get() ? "The server refused this token." : "This server needs a token."),
);

$("#add-camera").addEventListener("click", () => cameraForm.open(null));

// ---- start ---------------------------------------------------------------------------------

renderConnection();
live.start();
loadCameras();
loadTimeline();
