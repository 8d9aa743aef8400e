// The /ws connection: token by subprotocol (or a first auth message), reconnect with
// backoff and jitter, and resume from the last event seen.

import { authEvents, tokenStore } from "./api.js";

// Characters allowed in a Sec-WebSocket-Protocol value (an HTTP token).
const TOKEN_SAFE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const LAST_EVENT = "motionhub.lastEvent";
const MAX_DELAY = 30000;

export class LiveFeed extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.state = "idle";
    this.detail = "";
    this.attempt = 0;
    this.timer = null;
    this.retryAt = 0;
    this.lastEventId = sessionStorage.getItem(LAST_EVENT);
    this.everConnected = false;
  }

  start() {
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  /** Close and connect again at once (after a token change). */
  restart() {
    const old = this.ws;
    this.ws = null;
    old?.close(1000, "reconnecting");
    this.start();
  }

  send(message) {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  noteEvent(id) {
    if (!this.lastEventId || id > this.lastEventId) {
      this.lastEventId = id;
      sessionStorage.setItem(LAST_EVENT, id);
    }
  }

  connect() {
    const url = new URL("ws", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const token = tokenStore.get();
    const viaProtocol = token && TOKEN_SAFE.test(token);
    const protocols = viaProtocol ? ["motionhub", `bearer.${token}`] : ["motionhub"];
    this.setState(this.attempt ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(url, protocols);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    ws.addEventListener("open", () => {
      if (token && !viaProtocol) ws.send(JSON.stringify({ type: "auth", token }));
    });
    ws.addEventListener("message", (e) => this.receive(ws, e.data));
    ws.addEventListener("close", (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (e.code === 1008) {
        this.setState("unauthorized", e.reason || "token refused");
        authEvents.dispatchEvent(new Event("unauthorized"));
        return;
      }
      this.retry(e.code === 1013 ? "server asked to retry" : "");
    });
  }

  receive(ws, data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (msg.type === "hello") {
      const reconnect = this.everConnected;
      this.everConnected = true;
      this.attempt = 0;
      this.setState("live");
      if (this.lastEventId) ws.send(JSON.stringify({ type: "resume", since: this.lastEventId }));
      msg.reconnect = reconnect;
    } else if (msg.type?.startsWith("event_") && msg.event?.id) {
      this.noteEvent(msg.event.id);
    }
    this.dispatchEvent(new CustomEvent("message", { detail: msg }));
  }

  retry(why = "") {
    // Exponential backoff with full jitter, capped; reset once a hello arrives.
    const cap = Math.min(MAX_DELAY, 500 * 2 ** this.attempt);
    const delay = cap / 2 + Math.random() * (cap / 2);
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    this.setState("reconnecting", why);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setState(state, detail = "") {
    this.state = state;
    this.detail = detail;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, detail } }));
  }
}
