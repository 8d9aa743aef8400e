// The event timeline: stored events from the REST API, kept live by WebSocket event
// messages (upserts by event id), filtered by camera and zone, with snapshots.

import { api, fetchImage } from "./api.js";
import { el, formatDuration, formatFull, formatWhen } from "./util.js";

const PAGE = 30;
// Live events are added at the top for as long as the page is open; beyond this many the
// oldest leave the page (memory) and come back with "Older events". `data-keep` on the
// list overrides it.
const KEEP = 300;

export class Timeline {
  constructor({ list, more, empty, cameraSelect, zoneSelect, onOpen, onNewest }) {
    this.list = list;
    this.more = more;
    this.empty = empty;
    this.cameraSelect = cameraSelect;
    this.zoneSelect = zoneSelect;
    this.onOpen = onOpen;
    this.onNewest = onNewest;
    this.items = new Map(); // id -> {event, node, img, url}
    this.cursor = null;
    this.names = new Map();
    this.generation = 0;
    this.thumbs = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          const item = this.items.get(entry.target.dataset.eventId);
          if (!item) continue;
          item.visible = entry.isIntersecting;
          if (item.visible) this.loadThumb(item);
        }
      },
      { rootMargin: "200px" },
    );
    cameraSelect.addEventListener("change", () => {
      this.fillZones();
      this.reload();
    });
    zoneSelect.addEventListener("change", () => this.reload());
    more.addEventListener("click", () => this.loadPage());
  }

  /** Refresh the filter choices from the camera list. */
  setCameras(cameras) {
    this.cameras = cameras;
    this.names = new Map(cameras.map((c) => [c.id, c.name || c.id]));
    const current = this.cameraSelect.value;
    this.cameraSelect.replaceChildren(
      el("option", { value: "", text: "All cameras" }),
      ...cameras.map((c) => el("option", { value: c.id, text: c.name || c.id })),
    );
    this.cameraSelect.value = this.names.has(current) ? current : "";
    this.fillZones();
    for (const item of this.items.values()) this.render(item);
  }

  fillZones() {
    const camera = this.cameraSelect.value;
    const zones = new Set();
    for (const c of this.cameras || []) {
      if (!camera || c.id === camera) for (const z of c.zones || []) zones.add(z.name);
    }
    const current = this.zoneSelect.value;
    this.zoneSelect.replaceChildren(
      el("option", { value: "", text: "All zones" }),
      ...[...zones].sort().map((z) => el("option", { value: z, text: z })),
    );
    this.zoneSelect.value = zones.has(current) ? current : "";
  }

  matches(event) {
    const camera = this.cameraSelect.value;
    const zone = this.zoneSelect.value;
    return (!camera || event.camera === camera) && (!zone || (event.zones || []).includes(zone));
  }

  async reload() {
    this.generation += 1;
    for (const item of this.items.values()) this.drop(item);
    this.items.clear();
    this.cursor = null;
    await this.loadPage();
  }

  async loadPage() {
    const generation = this.generation;
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (this.cameraSelect.value) query.set("camera", this.cameraSelect.value);
    if (this.zoneSelect.value) query.set("zone", this.zoneSelect.value);
    if (this.cursor) query.set("cursor", this.cursor);
    this.more.disabled = true;
    try {
      const page = await api(`api/events?${query}`);
      if (generation !== this.generation) return;
      for (const event of page.events) this.upsert(event);
      if (!this.cursor && page.events.length) this.onNewest?.(page.events[0].id);
      this.cursor = page.next_cursor;
      this.more.hidden = !this.cursor;
      this.empty.hidden = this.items.size > 0;
    } finally {
      this.more.disabled = false;
      this.list.dataset.loaded = "true";
    }
  }

  /** A WebSocket message: event_start / event_update / event_end. */
  onMessage(msg) {
    if (msg.event && this.matches(msg.event)) this.upsert(msg.event, true);
  }

  /** After a reconnect: events that were open may have ended meanwhile. */
  async refreshOpen() {
    const open = [...this.items.values()].filter((i) => !i.event.end);
    for (const item of open) {
      try {
        this.upsert(await api(`api/events/${encodeURIComponent(item.event.id)}`), true);
      } catch (err) {
        // Deleted meanwhile (by hand, by retention, or a new data directory): it would
        // otherwise stay "ongoing" for ever. Unreachable: keep what we have.
        if (err.status === 404 && this.items.get(item.event.id) === item) this.remove(item.event.id);
      }
    }
  }

  /** An event that is gone from the server (event_deleted, or not found any more). */
  remove(id) {
    const item = this.items.get(id);
    if (!item) return;
    this.drop(item);
    this.items.delete(id);
    this.empty.hidden = this.items.size > 0 || Boolean(this.cursor);
  }

  upsert(event, live = false) {
    let item = this.items.get(event.id);
    if (!item) {
      item = { event, url: null, thumbFor: null, visible: false };
      item.img = el("img", { alt: "", loading: "lazy" });
      item.text = el("div", { class: "event-text" });
      item.node = el(
        "li",
        { class: "event", dataset: { eventId: event.id } },
        el(
          "button",
          { type: "button", class: "event-open", onclick: () => this.onOpen(item.event, item.url) },
          el("div", { class: "thumb" }, item.img),
          item.text,
        ),
      );
      this.items.set(event.id, item);
      this.insert(item);
      this.empty.hidden = true;
      this.thumbs.observe(item.node);
      if (live) {
        item.node.classList.add("fresh");
        this.trim();
      }
    }
    item.event = event;
    this.render(item);
    // The snapshot is written after event_start, and a better one may follow.
    if (item.visible) this.loadThumb(item);
  }

  /** Drop the oldest events beyond the limit; "Older events" pages back to them. */
  trim() {
    const keep = Math.max(1, Number(this.list.dataset.keep) || KEEP);
    if (this.items.size <= keep) return;
    while (this.items.size > keep) {
      const id = this.list.lastElementChild.dataset.eventId;
      this.drop(this.items.get(id));
      this.items.delete(id);
    }
    this.cursor = this.list.lastElementChild.dataset.eventId;
    this.more.hidden = false;
  }

  insert(item) {
    // Newest first; ids are ULIDs, so they sort by start time.
    for (const other of this.list.children) {
      if (other.dataset.eventId < item.event.id) {
        this.list.insertBefore(item.node, other);
        return;
      }
    }
    this.list.append(item.node);
  }

  render(item) {
    const e = item.event;
    const name = this.names.get(e.camera) ?? e.camera;
    const ongoing = !e.end;
    const duration = ongoing ? "ongoing" : formatDuration((Date.parse(e.end) - Date.parse(e.start)) / 1000);
    item.node.classList.toggle("ongoing", ongoing);
    item.node.classList.toggle("interrupted", Boolean(e.interrupted));
    item.node.dataset.camera = e.camera;
    item.text.replaceChildren(
      el("div", { class: "event-title" }, el("strong", { text: name }), el("time", { datetime: e.start, title: formatFull(e.start), text: formatWhen(e.start) })),
      el(
        "div",
        { class: "event-meta" },
        el("span", { class: ongoing ? "badge live" : "badge", text: duration }),
        el("span", { text: `peak ${Math.round(e.peak_score * 100)}%` }),
        ...(e.zones || []).map((z) => el("span", { class: "zone", text: z })),
      ),
    );
  }

  async loadThumb(item) {
    const e = item.event;
    if (!e.has_snapshot || item.loadingThumb) return;
    const version = `${e.end ?? ""}|${e.peak_score}`;
    if (item.thumbFor === version) return;
    // While an event is open its snapshot may improve often; refresh it at most every 2 s.
    if (!e.end && item.thumbAt && performance.now() - item.thumbAt < 2000) {
      clearTimeout(item.thumbTimer);
      item.thumbTimer = setTimeout(() => this.loadThumb(item), 2000);
      return;
    }
    item.loadingThumb = true;
    item.thumbAt = performance.now();
    try {
      const url = await fetchImage(`api/events/${encodeURIComponent(e.id)}/snapshot.jpg`, { cache: "no-cache" });
      if (this.items.get(e.id) !== item) {
        URL.revokeObjectURL(url);
        return;
      }
      if (item.url) URL.revokeObjectURL(item.url);
      item.url = url;
      item.img.src = url;
      item.thumbFor = version;
    } catch {
      // Not written yet: the next update of the event tries again.
      return;
    } finally {
      item.loadingThumb = false;
    }
    // The event changed while this one loaded: fetch its newer snapshot too.
    if (`${item.event.end ?? ""}|${item.event.peak_score}` !== version) this.loadThumb(item);
  }

  drop(item) {
    clearTimeout(item.thumbTimer);
    this.thumbs.unobserve(item.node);
    if (item.url) URL.revokeObjectURL(item.url);
    item.node.remove();
  }
}
