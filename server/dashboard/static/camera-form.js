// The camera add/edit dialog: POST /api/cameras or PATCH /api/cameras/{id}.

import { api } from "./api.js";
import { $ } from "./util.js";

export class CameraForm {
  constructor(dialog, { onSaved }) {
    this.dialog = dialog;
    this.form = $("form", dialog);
    this.error = $(".form-error", dialog);
    this.onSaved = onSaved;
    this.camera = null;
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.save();
    });
    $("[data-action=cancel]", dialog).addEventListener("click", () => dialog.close());
    $("[data-action=delete]", dialog).addEventListener("click", () => this.remove());
  }

  field(name) {
    return this.form.elements.namedItem(name);
  }

  open(camera = null) {
    this.camera = camera;
    this.form.reset();
    this.error.textContent = "";
    $("h2", this.dialog).textContent = camera ? `Edit ${camera.name || camera.id}` : "Add a camera";
    this.field("id").disabled = Boolean(camera);
    $("[data-action=delete]", this.dialog).hidden = !camera;
    if (camera) {
      this.field("id").value = camera.id;
      this.field("name").value = camera.name === camera.id ? "" : camera.name;
      this.field("url").value = camera.url;
      this.field("detect_url").value = camera.detect_url || "";
      this.field("kind").value = camera.kind;
      this.field("rtsp_transport").value = camera.rtsp_transport;
      this.field("enabled").checked = camera.enabled;
      this.field("detect_enabled").checked = camera.detect.enabled;
      this.field("fps").value = camera.detect.fps;
      this.field("sensitivity").value = camera.detect.sensitivity;
      this.field("off_delay").value = camera.events.off_delay;
      this.field("min_frames").value = camera.events.min_frames;
    }
    this.dialog.showModal();
  }

  values() {
    const number = (name) => Number(this.field(name).value);
    return {
      name: this.field("name").value.trim(),
      url: this.field("url").value.trim(),
      detect_url: this.field("detect_url").value.trim() || null,
      kind: this.field("kind").value,
      rtsp_transport: this.field("rtsp_transport").value,
      enabled: this.field("enabled").checked,
      detect: {
        enabled: this.field("detect_enabled").checked,
        fps: number("fps"),
        sensitivity: number("sensitivity"),
      },
      events: { off_delay: number("off_delay"), min_frames: number("min_frames") },
    };
  }

  async save() {
    const body = this.values();
    this.error.textContent = "";
    try {
      let saved;
      if (this.camera) {
        // The API shows URLs redacted; sending one back unchanged keeps the credentials,
        // but leaving it out is clearer.
        if (body.url === this.camera.url) delete body.url;
        if (body.detect_url === this.camera.detect_url) delete body.detect_url;
        saved = await api(`api/cameras/${encodeURIComponent(this.camera.id)}`, { method: "PATCH", body });
      } else {
        body.id = this.field("id").value.trim();
        if (body.detect_url === null) delete body.detect_url;
        saved = await api("api/cameras", { method: "POST", body });
      }
      this.dialog.close();
      this.onSaved(saved);
    } catch (err) {
      this.error.textContent = err.message;
    }
  }

  async remove() {
    if (!this.camera || !window.confirm(`Delete camera ${this.camera.name || this.camera.id}? Its events stay.`)) return;
    try {
      await api(`api/cameras/${encodeURIComponent(this.camera.id)}`, { method: "DELETE" });
      this.dialog.close();
      this.onSaved(null);
    } catch (err) {
      this.error.textContent = err.message;
    }
  }
}
