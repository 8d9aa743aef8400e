// One MJPEG stream read with fetch (so the bearer token can be sent), split into JPEG
// parts and shown through blob URLs. Used only for the enlarged camera.

import { fetchStream } from "./api.js";

const CRLF2 = [13, 10, 13, 10];

function indexOf(haystack, needle, from = 0) {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}

function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * Play `path` into `img` until `signal` aborts. Resolves when the stream ends; rejects
 * on HTTP or network errors. Parts must carry Content-Length (motionhub's do).
 */
export async function playMjpeg(path, img, signal, onFrame) {
  const response = await fetchStream(path, signal);
  const reader = response.body.getReader();
  let buffer = new Uint8Array(0);
  let url = null;
  try {
    for (;;) {
      const headerEnd = indexOf(buffer, CRLF2);
      if (headerEnd >= 0) {
        const head = new TextDecoder().decode(buffer.subarray(0, headerEnd));
        const match = /content-length:\s*(\d+)/i.exec(head);
        if (!match) throw new Error("MJPEG part without Content-Length");
        const length = Number(match[1]);
        const start = headerEnd + 4;
        if (buffer.length >= start + length) {
          const jpeg = buffer.slice(start, start + length);
          buffer = buffer.slice(start + length);
          const next = URL.createObjectURL(new Blob([jpeg], { type: "image/jpeg" }));
          img.src = next;
          if (url) URL.revokeObjectURL(url);
          url = next;
          onFrame?.();
          continue;
        }
      }
      const { value, done } = await reader.read();
      if (done) return;
      buffer = concat(buffer, value);
    }
  } finally {
    reader.cancel().catch(() => {});
    if (url) setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}
