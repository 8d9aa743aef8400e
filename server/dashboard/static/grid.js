// The camera grid: a tile per camera with its live image, motion boxes and zones drawn
// from WebSocket `motion` messages, status, and per-zone motion indicators.
//
// Images: each visible tile refreshes snapshot.jpg on a timer through a shared limiter,
// instead of one MJPEG stream per tile, because browsers allow only ~6 connections per
// host and an MJPEG stream holds one for ever.

import { Limiter, fetchImage } from "./api.js";
import { debounce, el, fitCanvas, tracePolygon } from "./util.js";

// Faster while there is motion, so the drawn boxes stay close to the picture under them;
// slow while the camera is away.
const REFRESH_MS = { motion: 350, idle: 1000, offline: 5000 };
const STALE_MOTION_MS = 3000;
const images = new Limiter(3);

export class CameraGrid {
  constructor(root, actions) {
    this.root = root;
    this.actions = actions; // {open, edit, zones, sensitivity}
    this.tiles = new Map();
    this.role = null;
    this.visibility = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          this.tiles.get(entry.target.dataset.camera)?.setVisible(entry.isIntersecting);
        }
      },
      { rootMargin: "100px" },
    );
  }

  /** Reconcile the tiles with the camera list from `GET /api/cameras`. */
  setCameras(cameras) {
    const ids = new Set(cameras.map((c) => c.id));
    for (const [id, tile] of this.tiles) {
      if (!ids.has(id)) {
        this.visibility.unobserve(tile.node);
        tile.destroy();
        this.tiles.delete(id);
      }
    }
    for (const camera of cameras) {
      let tile = this.tiles.get(camera.id);
      if (!tile) {
        tile = new Tile(camera, this.actions);
        this.tiles.set(camera.id, tile);
        this.visibility.observe(tile.node);
      }
      tile.update(camera);
      this.root.append(tile.node); // keeps the configured order
    }
  }

  has(id) {
    return this.tiles.has(id);
  }

  /** The connection to the server is lost: what the tiles knew may no longer hold. */
  markUnknown(reason) {
    for (const tile of this.tiles.values()) tile.setUnknown(reason);
  }

  onMessage(msg) {
    const tile = this.tiles.get(msg.camera);
    if (!tile) return;
    if (msg.type === "motion") tile.setMotion(msg);
    else if (msg.type === "camera_status") tile.setStatus(msg.status, msg.last_error, msg.fps);
  }
}

class Tile {
  constructor(camera, actions) {
    this.id = camera.id;
    this.camera = camera;
    this.actions = actions;
    this.visible = false;
    this.motion = null;
    this.frames = 0;
    this.url = null;
    this.timer = null;
    this.loading = false;

    this.img = el("img", { alt: "", decoding: "async" });
    this.canvas = el("canvas", { class: "overlay", "aria-hidden": "true" });
    this.placeholder = el("div", { class: "placeholder", text: "Waiting for an image…" });
    this.frame = el(
      "button",
      { class: "frame", type: "button", title: "Open the live view", onclick: () => actions.open(this.camera) },
      this.img,
      this.canvas,
      this.placeholder,
    );
    this.title = el("h3");
    this.statusLabel = el("span", { class: "status" });
    this.indicator = el("span", { class: "motion-indicator", title: "Motion" });
    this.zones = el("ul", { class: "zones", "aria-label": "Zones" });
    this.sensitivity = el("input", {
      type: "range",
      min: 0,
      max: 100,
      step: 1,
      "aria-label": "Sensitivity",
    });
    this.sensitivityValue = el("output");
    this.zonesButton = el("button", { type: "button", class: "btn small ghost", text: "Zones", onclick: () => actions.zones(this.camera) });
    this.editButton = el("button", { type: "button", class: "btn small ghost", text: "Edit", onclick: () => actions.edit(this.camera) });
    const send = debounce((v) => actions.sensitivity(this.camera, v), 250);
    this.sensitivity.addEventListener("input", () => {
      this.sensitivityValue.textContent = this.sensitivity.value;
      send(Number(this.sensitivity.value));
    });
    this.node = el(
      "article",
      { class: "tile", dataset: { camera: camera.id, frames: 0, motion: "false" } },
      el("header", {}, this.indicator, this.title, this.statusLabel),
      this.frame,
      el(
        "footer",
        {},
        this.zones,
        el(
          "label",
          { class: "sensitivity admin-only", title: "Sensitivity (applies live)" },
          el("span", { text: "Sensitivity" }),
          this.sensitivity,
          this.sensitivityValue,
        ),
        el(
          "div",
          { class: "tile-actions admin-only" },
          this.zonesButton,
          this.editButton,
        ),
      ),
    );
    this.img.addEventListener("load", () => {
      this.placeholder.hidden = true;
      this.frame.style.aspectRatio = `${this.img.naturalWidth} / ${this.img.naturalHeight}`;
      this.frames += 1;
      this.node.dataset.frames = String(this.frames);
      this.draw();
    });
    this.resize = new ResizeObserver(() => this.draw());
    this.resize.observe(this.canvas);
    this.onVisibility = () => this.schedule(0);
    document.addEventListener("visibilitychange", this.onVisibility);
  }

  update(camera) {
    this.camera = camera;
    const name = camera.name || camera.id;
    this.title.textContent = name;
    // A long name is cut short on the tile; the tooltip has all of it. The controls name
    // their camera, as every tile has the same ones.
    this.title.title = name;
    this.frame.setAttribute("aria-label", `Open the live view of ${name}`);
    this.sensitivity.setAttribute("aria-label", `Sensitivity of ${name}`);
    this.zonesButton.setAttribute("aria-label", `Zones of ${name}`);
    this.editButton.setAttribute("aria-label", `Edit ${name}`);
    this.setStatus(camera.status, camera.last_error, camera.fps);
    if (document.activeElement !== this.sensitivity) {
      this.sensitivity.value = camera.detect?.sensitivity ?? 50;
      this.sensitivityValue.textContent = this.sensitivity.value;
    }
    const active = this.motion?.zones ?? {};
    this.zones.replaceChildren(
      ...(camera.zones || []).map((z) =>
        el("li", { class: active[z.name] ? "zone active" : "zone", dataset: { zone: z.name }, text: z.name }),
      ),
    );
    this.node.classList.toggle("detect-off", camera.detect && !camera.detect.enabled);
    this.draw();
  }

  setStatus(status, lastError, fps) {
    const was = this.node.dataset.status;
    this.node.dataset.status = status;
    this.lastError = lastError;
    const rate = status === "online" && fps ? ` · ${fps.toFixed(1)} fps` : "";
    this.statusLabel.textContent = status + rate;
    this.statusLabel.title = lastError || "";
    if (!this.frames) this.placeholder.textContent = this.offlineText();
    if (was && was !== "online" && status === "online") this.schedule(0);
  }

  setUnknown(reason) {
    this.setStatus("unknown", reason, 0);
    this.motion = null;
    this.node.dataset.motion = "false";
    for (const item of this.zones.children) item.classList.remove("active");
    this.draw();
  }

  offlineText() {
    const status = this.node.dataset.status;
    if (status === "offline") return this.lastError ? `Offline: ${this.lastError}` : "Offline";
    return status === "starting" ? "Connecting to the camera…" : "No image yet";
  }

  setMotion(msg) {
    const started = msg.motion && !this.motion?.motion;
    this.motion = { ...msg, seen: performance.now() };
    if (started && !this.loading) this.schedule(0);
    this.node.dataset.motion = String(msg.motion);
    for (const item of this.zones.children) {
      item.classList.toggle("active", Boolean(msg.zones?.[item.dataset.zone]));
    }
    this.draw();
  }

  interval() {
    if (this.node.dataset.status !== "online") return REFRESH_MS.offline;
    return this.motion?.motion ? REFRESH_MS.motion : REFRESH_MS.idle;
  }

  setVisible(visible) {
    this.visible = visible;
    if (visible) this.schedule(0);
  }

  schedule(ms) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), ms);
  }

  async refresh() {
    if (!this.visible || document.hidden || this.loading || !this.node.isConnected) return;
    this.loading = true;
    try {
      const url = await images.run(() => fetchImage(`api/cameras/${encodeURIComponent(this.id)}/snapshot.jpg`));
      const old = this.url;
      this.url = url;
      this.img.src = url;
      if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
      this.node.classList.remove("stale");
    } catch (err) {
      this.node.classList.add("stale");
      if (err.status === 503) this.placeholder.textContent = this.offlineText();
    } finally {
      this.loading = false;
      this.schedule(this.interval());
    }
    // Motion boxes fade out if the camera stops reporting.
    if (this.motion && performance.now() - this.motion.seen > STALE_MOTION_MS) {
      this.motion = null;
      this.node.dataset.motion = "false";
      this.draw();
    }
  }

  draw() {
    const canvas = this.canvas;
    fitCanvas(canvas);
    const ctx = canvas.getContext("2d");
    const { width, height } = canvas;
    ctx.clearRect(0, 0, width, height);
    const scale = window.devicePixelRatio || 1;
    const active = this.motion?.zones ?? {};
    ctx.lineWidth = 1.5 * scale;
    for (const mask of this.camera.masks || []) {
      tracePolygon(ctx, mask, width, height);
      ctx.fillStyle = "rgba(0, 0, 0, 0.45)";
      ctx.fill();
    }
    for (const zone of this.camera.zones || []) {
      tracePolygon(ctx, zone.points, width, height);
      const on = Boolean(active[zone.name]);
      ctx.strokeStyle = on ? "rgba(255, 92, 92, 0.95)" : "rgba(120, 200, 255, 0.8)";
      ctx.fillStyle = on ? "rgba(255, 92, 92, 0.18)" : "rgba(120, 200, 255, 0.06)";
      ctx.fill();
      ctx.stroke();
    }
    if (this.motion?.motion) {
      ctx.strokeStyle = "rgba(255, 200, 0, 0.95)";
      ctx.lineWidth = 2 * scale;
      for (const [x1, y1, x2, y2] of this.motion.boxes || []) {
        ctx.strokeRect(x1 * width, y1 * height, (x2 - x1) * width, (y2 - y1) * height);
      }
    }
  }

  destroy() {
    clearTimeout(this.timer);
    this.resize.disconnect();
    document.removeEventListener("visibilitychange", this.onVisibility);
    if (this.url) URL.revokeObjectURL(this.url);
    this.node.remove();
  }
}
