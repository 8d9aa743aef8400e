"""An MQTT subscriber in a process of its own, for the ``latency`` suite.

``python -m server.bench.mqttsub mqtt://HOST:PORT TOPIC`` prints ``ready`` once subscribed,
then, for each event ``start`` message on ``TOPIC``, its delay in seconds (arrival time minus
the ``ts`` the server put in it), one per line. In its own process the subscriber is not
held up by the WebSocket load clients, so the delay is the server's and the broker's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from clients.listen import MqttTarget

__all__ = ["main"]


async def _subscribe(url: str, topic: str) -> None:
    async with MqttTarget(url).client() as client:
        await client.subscribe(topic, qos=1)
        print("ready", flush=True)
        async for message in client.messages:
            now = time.time()
            payload = message.payload
            if isinstance(payload, bytes) and payload.startswith(b'{"type":"start"'):
                print(now - json.loads(payload)["ts"], flush=True)


def main(argv: list[str] | None = None) -> None:
    """Subscribe and print delays until killed."""
    url, topic = (argv if argv is not None else sys.argv[1:])[:2]
    asyncio.run(_subscribe(url, topic))


if __name__ == "__main__":
    main()
