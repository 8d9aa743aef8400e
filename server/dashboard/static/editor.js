// The zone and mask editor: draw polygons on the live frame, save them with
// PATCH /api/cameras/{id} (zones and masks replace the whole list).

import { api, fetchImage } from "./api.js";
import { $, clamp, el, fitCanvas, tracePolygon } from "./util.js";

const HIT_PX = 12;
const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_POINTS = 64;

const round = (v) => Math.round(clamp(v, 0, 1) * 10000) / 10000;

export class ZoneEditor {
  constructor(dialog, { onSaved }) {
    this.dialog = dialog;
    this.onSaved = onSaved;
    this.stage = $(".editor-stage", dialog);
    this.img = $("img", this.stage);
    this.canvas = $("canvas", this.stage);
    this.nameInput = $("input[name=zone-name]", dialog);
    this.error = $(".form-error", dialog);
    this.lists = { zone: $("ul[data-kind=zone]", dialog), mask: $("ul[data-kind=mask]", dialog) };
    this.camera = null;
    this.zones = [];
    this.masks = [];
    this.draft = null;
    this.drag = null;
    this.timer = null;
    this.url = null;

    this.canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.pointerMove(e));
    this.canvas.addEventListener("pointerup", () => (this.drag = null));
    this.canvas.addEventListener("pointercancel", () => (this.drag = null));
    this.canvas.addEventListener("keydown", (e) => {
      if (e.key === "Enter") this.finish();
      else if (e.key === "Escape" && this.draft) {
        e.preventDefault();
        this.draft = null;
        this.draw();
      } else if (e.key === "Backspace") this.undo();
    });
    $("[data-action=finish]", dialog).addEventListener("click", () => this.finish());
    $("[data-action=undo]", dialog).addEventListener("click", () => this.undo());
    $("[data-action=cancel]", dialog).addEventListener("click", () => dialog.close());
    $("[data-action=save]", dialog).addEventListener("click", () => this.save());
    $("form", dialog).addEventListener("submit", (e) => e.preventDefault());
    for (const radio of dialog.querySelectorAll("input[name=mode]")) {
      radio.addEventListener("change", () => {
        this.nameInput.closest("label").hidden = this.mode() !== "zone";
        if (this.draft) this.draft.kind = this.mode();
        this.draw();
      });
    }
    this.img.addEventListener("load", () => {
      this.stage.style.aspectRatio = `${this.img.naturalWidth} / ${this.img.naturalHeight}`;
      this.draw();
    });
    new ResizeObserver(() => this.draw()).observe(this.canvas);
    dialog.addEventListener("close", () => {
      clearTimeout(this.timer);
      this.camera = null;
    });
  }

  mode() {
    return this.dialog.querySelector("input[name=mode]:checked").value;
  }

  open(camera) {
    this.camera = camera;
    this.zones = (camera.zones || []).map((z) => ({ name: z.name, points: z.points.map((p) => [...p]) }));
    this.masks = (camera.masks || []).map((m) => m.map((p) => [...p]));
    this.draft = null;
    this.error.textContent = "";
    this.nameInput.value = "";
    $("h2", this.dialog).textContent = `Zones and masks: ${camera.name || camera.id}`;
    this.renderLists();
    this.dialog.showModal();
    this.refresh();
    this.canvas.focus();
  }

  async refresh() {
    if (!this.camera) return;
    const camera = this.camera;
    try {
      const url = await fetchImage(`api/cameras/${encodeURIComponent(camera.id)}/snapshot.jpg`);
      if (this.camera !== camera) {
        URL.revokeObjectURL(url);
        return;
      }
      const old = this.url;
      this.url = url;
      this.img.src = url;
      if (old) setTimeout(() => URL.revokeObjectURL(old), 1000);
    } catch {
      // no frame right now: keep drawing on the last one
    }
    if (this.camera === camera) this.timer = setTimeout(() => this.refresh(), 1000);
  }

  point(e) {
    const rect = this.canvas.getBoundingClientRect();
    return [round((e.clientX - rect.left) / rect.width), round((e.clientY - rect.top) / rect.height)];
  }

  /** The vertex under the pointer, as [points array, index]. */
  hit(e) {
    const rect = this.canvas.getBoundingClientRect();
    const near = (p) => Math.hypot(p[0] * rect.width - (e.clientX - rect.left), p[1] * rect.height - (e.clientY - rect.top)) <= HIT_PX;
    const shapes = [...(this.draft ? [this.draft.points] : []), ...this.zones.map((z) => z.points), ...this.masks];
    for (const points of shapes) {
      const i = points.findIndex(near);
      if (i >= 0) return [points, i];
    }
    return null;
  }

  pointerDown(e) {
    e.preventDefault();
    this.canvas.focus();
    const hit = this.hit(e);
    if (hit && this.draft && hit[0] === this.draft.points && hit[1] === 0 && this.draft.points.length >= 3) {
      this.finish();
      return;
    }
    if (hit) {
      this.drag = hit;
      this.canvas.setPointerCapture(e.pointerId);
      return;
    }
    if (!this.draft) this.draft = { kind: this.mode(), points: [] };
    if (this.draft.points.length >= MAX_POINTS) {
      this.error.textContent = `A shape has at most ${MAX_POINTS} points.`;
      return;
    }
    this.draft.points.push(this.point(e));
    this.error.textContent = "";
    this.draw();
  }

  pointerMove(e) {
    if (!this.drag) return;
    const [points, i] = this.drag;
    points[i] = this.point(e);
    this.draw();
  }

  undo() {
    if (!this.draft) return;
    this.draft.points.pop();
    if (!this.draft.points.length) this.draft = null;
    this.draw();
  }

  finish() {
    const draft = this.draft;
    if (!draft || draft.points.length < 3) {
      this.error.textContent = "A shape needs at least 3 points.";
      return;
    }
    if (draft.kind === "zone") {
      let name = this.nameInput.value.trim();
      if (!name) {
        let n = this.zones.length + 1;
        while (this.zones.some((z) => z.name === `zone${n}`)) n += 1;
        name = `zone${n}`;
      }
      if (!NAME.test(name)) {
        this.error.textContent = "Zone names use letters, digits, '_' and '-'.";
        return;
      }
      if (this.zones.some((z) => z.name === name)) {
        this.error.textContent = `There is already a zone called ${name}.`;
        return;
      }
      this.zones.push({ name, points: draft.points });
      this.nameInput.value = "";
    } else {
      this.masks.push(draft.points);
    }
    this.draft = null;
    this.error.textContent = "";
    this.renderLists();
    this.draw();
  }

  renderLists() {
    const item = (label, remove) =>
      el("li", {}, el("span", { text: label }), el("button", { type: "button", class: "btn small ghost", text: "Remove", onclick: remove }));
    this.lists.zone.replaceChildren(
      ...this.zones.map((z, i) =>
        item(`${z.name} (${z.points.length} points)`, () => {
          this.zones.splice(i, 1);
          this.renderLists();
          this.draw();
        }),
      ),
    );
    this.lists.mask.replaceChildren(
      ...this.masks.map((m, i) =>
        item(`mask ${i + 1} (${m.length} points)`, () => {
          this.masks.splice(i, 1);
          this.renderLists();
          this.draw();
        }),
      ),
    );
  }

  draw() {
    fitCanvas(this.canvas);
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    const scale = window.devicePixelRatio || 1;
    ctx.clearRect(0, 0, width, height);
    ctx.lineWidth = 2 * scale;
    ctx.font = `${13 * scale}px system-ui, sans-serif`;
    const vertices = (points, color) => {
      ctx.fillStyle = color;
      for (const [x, y] of points) {
        ctx.beginPath();
        ctx.arc(x * width, y * height, 4 * scale, 0, Math.PI * 2);
        ctx.fill();
      }
    };
    for (const mask of this.masks) {
      tracePolygon(ctx, mask, width, height);
      ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
      ctx.fill();
      ctx.strokeStyle = "rgba(200, 200, 200, 0.9)";
      ctx.stroke();
      vertices(mask, "#ddd");
    }
    for (const zone of this.zones) {
      tracePolygon(ctx, zone.points, width, height);
      ctx.fillStyle = "rgba(120, 200, 255, 0.2)";
      ctx.fill();
      ctx.strokeStyle = "rgba(120, 200, 255, 0.95)";
      ctx.stroke();
      vertices(zone.points, "#78c8ff");
      const [x, y] = zone.points[0];
      ctx.fillStyle = "#fff";
      ctx.fillText(zone.name, x * width + 6 * scale, y * height - 6 * scale);
    }
    if (this.draft) {
      const color = this.draft.kind === "zone" ? "#ffc800" : "#ff7a7a";
      ctx.beginPath();
      this.draft.points.forEach(([x, y], i) => (i ? ctx.lineTo(x * width, y * height) : ctx.moveTo(x * width, y * height)));
      ctx.strokeStyle = color;
      ctx.setLineDash([6 * scale, 4 * scale]);
      ctx.stroke();
      ctx.setLineDash([]);
      vertices(this.draft.points, color);
    }
  }

  async save() {
    if (this.draft) this.finish();
    if (this.draft) return;
    const camera = this.camera;
    try {
      const saved = await api(`api/cameras/${encodeURIComponent(camera.id)}`, {
        method: "PATCH",
        body: { zones: this.zones, masks: this.masks },
      });
      this.dialog.close();
      this.onSaved(saved);
    } catch (err) {
      this.error.textContent = err.message;
    }
  }
}
