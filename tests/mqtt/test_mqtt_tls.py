"""TLS to the broker: a private CA, a client certificate, and the insecure switch."""

from __future__ import annotations

import asyncio
import gc
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from broker_harness import Mosquitto, free_port
from mqtt_harness import FakeServices, camera, data_dir, mqtt_settings, running

from server.mqtt import MqttService
from server.mqtt.link import LinkState


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(name: str, cn: str, cwd: Path, san: str | None = None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
             cwd=cwd)  # fmt: skip
    ext = cwd / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", ext.name,
             cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
             "-subj", "/CN=motionhub test CA", cwd=d)  # fmt: skip
    _issue("server", "127.0.0.1", d, san="IP:127.0.0.1")
    _issue("client", "motionhub", d)
    return d


@pytest.fixture
def tls_broker(start_mosquitto: Callable[..., Mosquitto], pki: Path) -> tuple[Mosquitto, int, int]:
    """Plain listener (unused), a TLS listener that requires a client certificate, and a
    TLS listener that does not."""
    mutual, server_only = free_port(), free_port()
    tls = [f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}",
           f"keyfile {pki / 'server.key'}"]  # fmt: skip
    extra = [f"listener {mutual} 127.0.0.1", *tls, "require_certificate true",
             f"listener {server_only} 127.0.0.1", *tls]  # fmt: skip
    return start_mosquitto(extra=extra), mutual, server_only


async def test_connects_with_a_private_ca_and_a_client_certificate(
    tls_broker, pki: Path, mqtt_prefix: str, tmp_path: Path
) -> None:
    _, mutual, _ = tls_broker
    tls = {"ca": pki / "ca.crt", "cert": pki / "client.crt", "key": pki / "client.key"}
    settings = mqtt_settings(f"mqtts://127.0.0.1:{mutual}", mqtt_prefix, tls=tls)
    service = MqttService(FakeServices([camera("cam1")]), settings, data_dir(tmp_path))
    async with running(service):
        assert service.state is LinkState.CONNECTED


async def test_insecure_skips_verification(tls_broker, mqtt_prefix: str, tmp_path: Path) -> None:
    _, _, server_only = tls_broker
    settings = mqtt_settings(
        f"mqtts://127.0.0.1:{server_only}", mqtt_prefix, tls={"insecure": True}
    )
    service = MqttService(FakeServices([camera("cam1")]), settings, data_dir(tmp_path))
    async with running(service):
        assert service.state is LinkState.CONNECTED


# paho-mqtt drops the socket of a failed TLS handshake without closing it; Python closes it
# when the object is collected and warns. Nothing in motionhub holds it.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_an_unknown_ca_or_a_missing_client_certificate_is_refused(
    tls_broker, pki: Path, mqtt_prefix: str, tmp_path: Path
) -> None:
    _, mutual, server_only = tls_broker
    cases = [
        (f"mqtts://127.0.0.1:{server_only}", {}),  # the system CAs do not know ours
        (f"mqtts://127.0.0.1:{mutual}", {"ca": pki / "ca.crt"}),  # no client certificate
    ]
    for url, tls in cases:
        settings = mqtt_settings(url, mqtt_prefix, tls=tls)
        # A refused client certificate only shows as a connection that never gets its
        # CONNACK, so it takes the timeout to notice.
        service = MqttService(
            FakeServices([camera("cam1")]), settings, data_dir(tmp_path), timeout=1.0
        )
        await service.start()
        task = asyncio.create_task(service.run())
        await asyncio.sleep(2.5)
        assert not service.connected.is_set()
        assert service.link.failures >= 1
        assert service.link.last_error is not None
        # A refusal that TLS itself reports is not blamed on a port without TLS.
        assert "may not speak TLS" not in service.link.last_error
        await service.stop(2.0)
        await task
    gc.collect()  # so the leaked sockets are reported (and ignored) here, not at exit


@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <ssl.SSLSocket:pytest.PytestUnraisableExceptionWarning"
)
async def test_tls_to_a_plain_port_says_the_handshake_failed(
    start_mosquitto: Callable[..., Mosquitto],
    mqtt_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    plain = start_mosquitto()  # a broker without TLS: it drops the connection at the greeting
    url = f"mqtts://motionhub:hunter2-secret@127.0.0.1:{plain.port}"
    settings = mqtt_settings(url, mqtt_prefix, tls={"insecure": True})
    service = MqttService(FakeServices([camera("cam1")]), settings, data_dir(tmp_path), timeout=1.0)
    await service.start()
    task = asyncio.create_task(service.run())
    for _ in range(50):
        if service.link.last_error is not None:
            break
        await asyncio.sleep(0.1)
    await service.stop(2.0)
    await task
    gc.collect()
    error = service.link.last_error
    assert error is not None
    assert "TLS handshake with 127.0.0.1" in error, error
    assert "use mqtt://" in error, error
    assert "hunter2-secret" not in error
    assert "hunter2-secret" not in caplog.text
    assert any("TLS handshake" in r.getMessage() for r in caplog.records), caplog.text
