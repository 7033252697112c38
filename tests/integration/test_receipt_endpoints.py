"""The public receipt endpoints, over real HTTP, against a real store.

Each provider's receipts are made as the provider makes them, with secrets and
keys this file generates (see tests/unit/test_receipts_*.py): Twilio's HMAC,
SendGrid's ECDSA, SNS's RSA over a certificate served by a local TLS server
(admitted with HERALD_SNS_CERT_HOSTS and trusted with HERALD_SNS_CA_FILE),
Postmark's Basic credentials, Mailgun's HMAC. Notifications are put in SENT
through the store the app uses, as the worker would leave them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import socket
import sqlite3
import time
import uuid
from base64 import b64encode
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

import httpx
import pydantic
import pytest
import pytest_asyncio
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from prometheus_client.parser import text_string_to_metric_families

from herald import retention
from herald.api import authz
from herald.api.app import create_app
from herald.config import Settings
from herald.models import Channel, NewNotification, Sent, Status
from herald.store.base import ListFilter, Store
from tests import pg
from tests.conftest import make_settings
from tests.integration.fakehttp import FakeServer, Reply, Seen, fake_server
from tests.scrape import Scrape

TOPIC = "arn:aws:sns:eu-west-1:123456789012:herald-ses"
TWILIO_TOKEN = "twilio-auth-token-for-receipts-0123"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
POSTMARK_USER, POSTMARK_PASSWORD = "postmark-hooks", "pm-s3cret:with-colon"
MAILGUN_KEY = "key-mailgun-webhook-signing-0123456789"
SNS_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EMAIL, PHONE = "Ann.Bounce@example.com", "+14155550123"


def _der(key: ec.EllipticCurvePrivateKey) -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64encode(public).decode()


def _certificate(
    subject: str, key: Any, issuer: x509.Name | None = None, signer: Any = None,
    ca: bool = False, ip: str | None = None,
) -> x509.Certificate:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip is not None:
        alt = [x509.IPAddress(IPv4Address(ip)), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(signer or key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


SNS_CERT = _pem(_certificate("sns.amazonaws.com", SNS_KEY))


@dataclass
class SnsServer:
    """A local HTTPS stand-in for sns.<region>.amazonaws.com: serves the signing
    certificate at /cert.pem and takes subscription confirmations at /confirm."""

    fake: FakeServer
    host: str  # 127.0.0.1:port
    ca_file: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}"


@pytest_asyncio.fixture
async def sns(tmp_path: Path) -> AsyncIterator[SnsServer]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Herald test CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("127.0.0.1", key, issuer=ca.subject, signer=ca_key, ip="127.0.0.1")
    (tmp_path / "ca.pem").write_bytes(_pem(ca))
    (tmp_path / "server.pem").write_bytes(_pem(cert))
    (tmp_path / "server.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip

    def answer(seen: Seen) -> Reply:
        if seen.path == "/cert.pem":
            return Reply(200, SNS_CERT, {"content-type": "application/x-pem-file"})
        if seen.path == "/confirm":
            return Reply(200, b"<ConfirmSubscriptionResponse/>", {"content-type": "text/xml"})
        return Reply(404)

    fake = FakeServer(answer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    host = f"127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        fake, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=1,
        ssl_certfile=str(tmp_path / "server.pem"), ssl_keyfile=str(tmp_path / "server.key"),
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield SnsServer(fake, host, tmp_path / "ca.pem")
    finally:
        server.should_exit = True
        await task
        sock.close()


def configured(sns: SnsServer, **extra: Any) -> dict[str, Any]:
    """Settings with every provider's receipts on."""
    return {
        "twilio_auth_token": TWILIO_TOKEN,
        "sendgrid_webhook_public_key": _der(SENDGRID_KEY),
        "postmark_webhook_user": POSTMARK_USER,
        "postmark_webhook_password": POSTMARK_PASSWORD,
        "mailgun_signing_key": MAILGUN_KEY,
        "ses_receipts": True,
        "ses_topic_arns": [TOPIC],
        "sns_cert_hosts": [sns.host],
        "sns_ca_file": str(sns.ca_file),
        **extra,
    }


@dataclass(frozen=True)
class Post:
    path: str
    headers: dict[str, str]
    body: bytes


class Kind:
    """How one provider posts: ``post`` makes a genuine receipt for ``event``."""

    name: ClassVar[str]
    channel: ClassVar[Channel] = Channel.EMAIL
    recipient: ClassVar[str] = EMAIL
    events: ClassVar[dict[str, Status]]
    hard: ClassVar[str]  # the event that bounces (or fails) and may suppress
    suppresses: ClassVar[bool] = True
    stale_age: ClassVar[float | None]  # how old a receipt is refused; None: none carries a time

    @property
    def path(self) -> str:
        return f"/api/receipts/{self.name}"

    def new_id(self) -> str:
        return f"<{secrets.token_hex(8)}@herald.test>"

    def post(self, base: str, message_id: str, event: str, age: float = 0.0) -> Post:
        raise NotImplementedError

    def forged(self, base: str, message_id: str, event: str) -> Post:
        """Signed, but not with the secret Herald holds."""
        raise NotImplementedError

    def modified(self, post: Post) -> Post | None:
        """The body changed after signing; None where the body is not signed."""
        raise NotImplementedError


class Twilio(Kind):
    name, channel, recipient = "twilio", Channel.SMS, PHONE
    events = {"delivered": Status.DELIVERED, "undelivered": Status.UNDELIVERED,
              "failed": Status.UNDELIVERED}  # fmt: skip
    hard, suppresses, stale_age = "undelivered", False, None  # the callback carries no time

    def new_id(self) -> str:
        return "SM" + secrets.token_hex(16)

    def post(self, base: str, message_id: str, event: str, age: float = 0.0,
             token: str = TWILIO_TOKEN) -> Post:  # fmt: skip
        form = {"AccountSid": "AC" + "f" * 32, "MessageSid": message_id, "MessageStatus": event,
                "To": self.recipient, "From": "+15005550006"}  # fmt: skip
        signature = twilio_signature(base + self.path, form, token)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Twilio-Signature": signature}  # fmt: skip
        return Post(self.path, headers, urlencode(form).encode())

    def forged(self, base: str, message_id: str, event: str) -> Post:
        return self.post(base, message_id, event, token="not-" + TWILIO_TOKEN)

    def modified(self, post: Post) -> Post:
        form = dict(parse_qsl(post.body.decode()))
        form["MessageStatus"] = "delivered" if form["MessageStatus"] != "delivered" else "failed"
        return replace(post, body=urlencode(form).encode())


def twilio_signature(url: str, form: dict[str, str], token: str = TWILIO_TOKEN) -> str:
    text = url + "".join(f"{name}{form[name]}" for name in sorted(form))
    return b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


class SendGrid(Kind):
    name = "sendgrid"
    events = {"delivered": Status.DELIVERED, "bounce": Status.BOUNCED,
              "spamreport": Status.COMPLAINED, "dropped": Status.BOUNCED}  # fmt: skip
    hard, stale_age = "bounce", 1000.0

    @staticmethod
    def event(message_id: str, event: str) -> dict[str, Any]:
        found = {"email": EMAIL, "timestamp": int(time.time()) - 2, "smtp-id": message_id,
                 "event": event, "sg_event_id": secrets.token_hex(8),
                 "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88"}  # fmt: skip
        if event == "bounce":
            found.update(type="bounce", status="5.1.1", reason="550 no such user")
        return found

    def batch(self, events: list[dict[str, Any]], age: float = 0.0,
              key: ec.EllipticCurvePrivateKey = SENDGRID_KEY) -> Post:  # fmt: skip
        body = json.dumps(events).encode()
        stamp = str(int(time.time() - age))
        signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        headers = {"Content-Type": "application/json",
                   "X-Twilio-Email-Event-Webhook-Signature": b64encode(signature).decode(),
                   "X-Twilio-Email-Event-Webhook-Timestamp": stamp}  # fmt: skip
        return Post(self.path, headers, body)

    def post(self, base: str, message_id: str, event: str, age: float = 0.0) -> Post:
        return self.batch([self.event(message_id, event)], age)

    def forged(self, base: str, message_id: str, event: str) -> Post:
        other = ec.generate_private_key(ec.SECP256R1())
        return self.batch([self.event(message_id, event)], key=other)

    def modified(self, post: Post) -> Post:
        [event] = json.loads(post.body)
        event["event"] = "delivered"
        return replace(post, body=json.dumps([event]).encode())


class Ses(Kind):
    name = "ses"
    events = {"Delivery": Status.DELIVERED, "Bounce": Status.BOUNCED,
              "Complaint": Status.COMPLAINED}  # fmt: skip
    hard, stale_age = "Bounce", 4000.0  # SNS's window is an hour
    cert_host = ""  # set per test: the local SNS server's host

    def record(self, message_id: str, event: str) -> dict[str, Any]:
        at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        mail = {"timestamp": at, "messageId": "0102018f-" + secrets.token_hex(8),
                "source": "herald@example.com", "destination": [EMAIL],
                "commonHeaders": {"messageId": message_id}}  # fmt: skip
        sections: dict[str, dict[str, Any]] = {
            "Delivery": {"delivery": {"timestamp": at, "recipients": [EMAIL],
                                      "smtpResponse": "250 ok"}},
            "Bounce": {"bounce": {"timestamp": at, "bounceType": "Permanent",
                                  "bounceSubType": "General", "feedbackId": secrets.token_hex(6),
                                  "bouncedRecipients": [{"emailAddress": EMAIL, "status": "5.1.1",
                                                         "diagnosticCode": "smtp; 550"}]}},
            "Complaint": {"complaint": {"timestamp": at, "complaintFeedbackType": "abuse",
                                        "complainedRecipients": [{"emailAddress": EMAIL}]}},
        }  # fmt: skip
        return {"notificationType": event, "mail": mail, **sections[event]}

    def envelope(self, message: str, kind: str = "Notification", age: float = 0.0,
                 key: rsa.RSAPrivateKey = SNS_KEY, **fields: str) -> Post:  # fmt: skip
        at = datetime.fromtimestamp(time.time() - age, UTC)
        record = {"Type": kind, "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
                  "Message": message, "Timestamp": at.isoformat(timespec="milliseconds")
                  .replace("+00:00", "Z"), "SignatureVersion": "1",
                  "SigningCertURL": f"https://{self.cert_host}/cert.pem", **fields}  # fmt: skip
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        if kind != "Notification":
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                     "Type"]  # fmt: skip
        canonical = "".join(f"{n}\n{record[n]}\n" for n in names if n in record)
        signature = key.sign(canonical.encode(), padding.PKCS1v15(), hashes.SHA1())
        record["Signature"] = b64encode(signature).decode()
        headers = {"Content-Type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": kind}
        return Post(self.path, headers, json.dumps(record).encode())

    def post(self, base: str, message_id: str, event: str, age: float = 0.0) -> Post:
        return self.envelope(json.dumps(self.record(message_id, event)), age=age)

    def forged(self, base: str, message_id: str, event: str) -> Post:
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.envelope(json.dumps(self.record(message_id, event)), key=other)

    def modified(self, post: Post) -> Post:
        record = json.loads(post.body)
        record["Message"] = record["Message"].replace('"Permanent"', '"Transient"')
        record["Message"] = record["Message"].replace('"Delivery"', '"Bounce"')
        return replace(post, body=json.dumps(record).encode())


class Postmark(Kind):
    name = "postmark"
    events = {"Delivery": Status.DELIVERED, "HardBounce": Status.BOUNCED,
              "SpamComplaint": Status.COMPLAINED}  # fmt: skip
    hard, stale_age = "HardBounce", 2 * 86400.0

    def new_id(self) -> str:
        return str(uuid.uuid4())

    def post(self, base: str, message_id: str, event: str, age: float = 0.0,
             password: str = POSTMARK_PASSWORD) -> Post:  # fmt: skip
        at = datetime.fromtimestamp(time.time() - 5 - age, UTC).isoformat().replace("+00:00", "Z")
        if event == "Delivery":
            record: dict[str, Any] = {"RecordType": "Delivery", "Recipient": EMAIL,
                                      "DeliveredAt": at, "Details": "250 ok"}  # fmt: skip
        else:
            record = {"RecordType": "Bounce" if event == "HardBounce" else "SpamComplaint",
                      "Type": event, "Email": EMAIL, "BouncedAt": at, "Inactive": True,
                      "ID": secrets.randbelow(10**12)}  # fmt: skip
        record.update(MessageID=message_id, MessageStream="outbound")
        basic = b64encode(f"{POSTMARK_USER}:{password}".encode()).decode()
        headers = {"Content-Type": "application/json", "Authorization": f"Basic {basic}"}
        return Post(self.path, headers, json.dumps(record).encode())

    def forged(self, base: str, message_id: str, event: str) -> Post:
        return self.post(base, message_id, event, password="wrong-password")

    def modified(self, post: Post) -> None:
        return None  # Postmark signs nothing: the credentials are its whole scheme


class Mailgun(Kind):
    name = "mailgun"
    events = {"delivered": Status.DELIVERED, "failed": Status.BOUNCED,
              "complained": Status.COMPLAINED}  # fmt: skip
    hard, stale_age = "failed", 1000.0

    def post(self, base: str, message_id: str, event: str, age: float = 0.0,
             key: str = MAILGUN_KEY) -> Post:  # fmt: skip
        stamp, token = str(int(time.time() - age)), secrets.token_hex(25)
        made = hmac.new(key.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
        headers = {"message-id": message_id.strip("<>")}  # Mailgun's, without brackets
        data: dict[str, Any] = {"id": secrets.token_hex(8), "timestamp": time.time() - 1,
                                "event": event, "recipient": EMAIL,
                                "message": {"headers": headers}}  # fmt: skip
        if event == "failed":
            status = {"code": 550, "description": "no such user"}
            data.update({"severity": "permanent", "reason": "bounce", "delivery-status": status})
        payload = {"signature": {"timestamp": stamp, "token": token, "signature": made},
                   "event-data": data}  # fmt: skip
        return Post(self.path, {"Content-Type": "application/json"}, json.dumps(payload).encode())

    def forged(self, base: str, message_id: str, event: str) -> Post:
        return self.post(base, message_id, event, key="key-someone-else")

    def modified(self, post: Post) -> Post:
        payload = json.loads(post.body)
        payload["signature"]["token"] = secrets.token_hex(25)  # what the signature covers
        return replace(post, body=json.dumps(payload).encode())


KINDS = [Twilio, SendGrid, Ses, Postmark, Mailgun]


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def kind(request: pytest.FixtureRequest, sns: SnsServer) -> Kind:
    made: Kind = request.param()
    if isinstance(made, Ses):
        made.cert_host = sns.host
    return made


async def sent(store: Store, kind: Kind, message_id: str, tenant: str = "default") -> str:
    """A notification its provider accepted as ``message_id``, as the worker leaves it."""
    [n] = await store.create([NewNotification(kind.channel, kind.recipient, "hi", subject="s",
                                              tenant_id=tenant)])  # fmt: skip
    [claim] = [c for c in await store.claim(50, 30) if c.id == n.id]
    assert await store.complete([Sent(claim, kind.name, message_id, 1.0, time.time())]) == 1
    return n.id


async def state(store: Store, tenant: str, note: str) -> tuple[Status, int]:
    """A notification's status and the length of its history."""
    found = await store.get(tenant, note)
    assert found is not None
    return found.status, len(await store.audit(tenant, note))


async def deliver(url: str, post: Post) -> httpx.Response:
    """Post as a provider does: no API key."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as provider:
        return await provider.post(post.path, content=post.body, headers=post.headers)


async def suppressed(store: Store, tenant: str) -> list[str]:
    entries, _ = await store.suppressions(tenant)
    return [e.recipient for e in entries]


@pytest.mark.every_store
async def test_signed_receipts_apply_in_their_tenant_and_forgeries_change_nothing(
    herald: Any, sns: SnsServer, kind: Kind
) -> None:
    async with herald(deliver=False, **configured(sns)) as h:
        store = h.engine.store
        mine_id, theirs_id = kind.new_id(), kind.new_id()
        mine = await sent(store, kind, mine_id, tenant="acme")
        theirs = await sent(store, kind, theirs_id, tenant="default")
        before = await state(store, "acme", mine)
        genuine = kind.post(h.url, mine_id, kind.hard)
        attempts = {
            "bad signature": kind.forged(h.url, mine_id, kind.hard),
            "modified body": kind.modified(genuine),
            "stale": kind.post(h.url, mine_id, kind.hard, age=kind.stale_age)
            if kind.stale_age
            else None,
        }
        for what, attempt in attempts.items():
            if attempt is None:
                continue
            reply = await deliver(h.url, attempt)
            assert reply.status_code == 401, (what, reply.text)
            assert reply.json()["message"].startswith("Receipt refused: "), what
            assert await state(store, "acme", mine) == before, what

        reply = await deliver(h.url, genuine)
        assert reply.status_code == 200, reply.text
        assert reply.json()["data"]["changed"] == 1
        moved = await state(store, "acme", mine)
        assert moved == (kind.events[kind.hard], before[1] + 1)
        assert (await state(store, "default", theirs))[0] is Status.SENT
        expected = [kind.recipient.lower()] if kind.suppresses else []
        assert await suppressed(store, "acme") == expected
        assert await suppressed(store, "default") == []

        replayed = await deliver(h.url, genuine)
        assert replayed.status_code == 401
        assert "already" in replayed.json()["message"]
        assert await state(store, "acme", mine) == moved


@pytest.mark.every_store
async def test_each_event_moves_its_notification_to_the_status_the_provider_reports(
    herald: Any, sns: SnsServer, kind: Kind
) -> None:
    async with herald(deliver=False, **configured(sns)) as h:
        store = h.engine.store
        for event, status in kind.events.items():
            message_id = kind.new_id()
            note = await sent(store, kind, message_id)
            reply = await deliver(h.url, kind.post(h.url, message_id, event))
            assert reply.status_code == 200, (event, reply.text)
            assert (await state(store, "default", note))[0] is status, event


@pytest.mark.every_store
async def test_a_sendgrid_batch_is_applied_at_once(herald: Any, sns: SnsServer) -> None:
    grid = SendGrid()
    async with herald(deliver=False, **configured(sns)) as h:
        store = h.engine.store
        ids = [grid.new_id() for _ in range(3)]
        notes = [await sent(store, grid, message_id) for message_id in ids]
        events = [grid.event(ids[0], "processed"), grid.event(ids[0], "delivered"),
                  grid.event(ids[1], "bounce"), grid.event(ids[2], "spamreport"),
                  grid.event(grid.new_id(), "delivered")]  # fmt: skip
        reply = await deliver(h.url, grid.batch(events))
        assert reply.status_code == 200, reply.text
        data = reply.json()["data"]
        assert (data["events"], data["matched"], data["unknown"], data["changed"]) == (5, 4, 1, 3)
        got = [(await state(store, "default", n))[0] for n in notes]
        assert got == [Status.DELIVERED, Status.BOUNCED, Status.COMPLAINED]


@pytest.mark.every_store
async def test_receipts_count_each_status_move_the_store_applied(
    herald: Any, sns: SnsServer
) -> None:
    grid, twilio = SendGrid(), Twilio()
    async with herald(deliver=False, **configured(sns)) as h:
        store = h.engine.store
        ids = [grid.new_id() for _ in range(3)]
        for message_id in ids:
            await sent(store, grid, message_id)
        sms = twilio.new_id()
        await sent(store, twilio, sms)
        start = Scrape((await h.client.get("/api/metrics")).text)
        events = [grid.event(ids[0], "delivered"), grid.event(ids[1], "bounce"),
                  grid.event(ids[2], "delivered"), grid.event(ids[2], "spamreport")]  # fmt: skip
        assert (await deliver(h.url, grid.batch(events))).status_code == 200
        assert (await deliver(h.url, twilio.post(h.url, sms, "undelivered"))).status_code == 200
        middle = Scrape((await h.client.get("/api/metrics")).text)
        # A late duplicate moves nothing, so counts nothing.
        assert (await deliver(h.url, grid.post(h.url, ids[0], "delivered"))).status_code == 200
        end = Scrape((await h.client.get("/api/metrics")).text)

    def moved(found: Scrape) -> dict[str, float]:
        names = [("delivered", "EMAIL"), ("bounced", "EMAIL"), ("complained", "EMAIL"),
                 ("undelivered", "SMS")]  # fmt: skip
        return {
            kind: found.count(f"notifications_{kind}_total", type=channel)
            - start.count(f"notifications_{kind}_total", type=channel)
            for kind, channel in names
        }

    assert moved(middle) == {"delivered": 2, "bounced": 1, "complained": 1, "undelivered": 1}
    assert moved(end) == moved(middle)


async def test_a_moved_status_is_reported_to_the_default_callback(
    herald: Any, sns: SnsServer
) -> None:
    """HERALD_CALLBACK_URL: a receipt that moves a notification stores the status callback
    (notification.delivered) for it, as a SENT outcome does."""
    grid = SendGrid()
    hook = "https://hooks.example.com/herald"
    async with herald(deliver=False, callback_url=hook, **configured(sns)) as h:
        store = h.engine.store
        message_id = grid.new_id()
        note = await sent(store, grid, message_id)
        reply = await deliver(h.url, grid.batch([grid.event(message_id, "delivered")]))
        assert reply.status_code == 200, reply.text
        found = await store.find("default", ListFilter(channel=Channel.WEBHOOK), 1, 10)
        events = [n.metadata["event"] for n in found.items if n.recipient == hook]
        assert [(e["event"], e["notificationId"]) for e in events] == [
            ("notification.delivered", note)
        ]


def _counted(exposition: str, provider: str, outcome: str) -> float:
    """``herald_receipts_total`` for one provider and outcome, from GET /api/metrics."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == "herald_receipts_total" and sample.labels == {
                "provider": provider,
                "outcome": outcome,
            }:
                return float(sample.value)
    return 0.0


@pytest.mark.every_store
async def test_unknown_ids_are_acknowledged_counted_and_change_nothing(
    herald: Any, sns: SnsServer
) -> None:
    grid = SendGrid()
    async with herald(deliver=False, **configured(sns)) as h:
        store = h.engine.store
        message_id = grid.new_id()
        note = await sent(store, grid, message_id)
        before = await state(store, "default", note)
        counted = _counted((await h.client.get("/api/metrics")).text, "sendgrid", "unknown")
        reply = await deliver(h.url, grid.post(h.url, grid.new_id(), "bounce"))
        assert reply.status_code == 200, reply.text
        assert reply.json()["data"]["unknown"] == 1
        assert await state(store, "default", note) == before
        assert await suppressed(store, "default") == []
        after = _counted((await h.client.get("/api/metrics")).text, "sendgrid", "unknown")
        assert after == counted + 1


async def test_a_provider_not_configured_is_not_there(herald: Any, sns: SnsServer) -> None:
    settings = configured(sns)
    for name in ("sendgrid_webhook_public_key", "postmark_webhook_user",
                 "postmark_webhook_password", "mailgun_signing_key"):  # fmt: skip
        settings.pop(name)
    async with herald(deliver=False, **{**settings, "ses_receipts": False}) as h:
        missing = await h.client.post("/api/no-such-route", json={})
        assert missing.status_code == 404
        for kind in (SendGrid(), Ses(), Postmark(), Mailgun()):
            reply = await deliver(h.url, kind.post(h.url, kind.new_id(), kind.hard))
            assert (reply.status_code, reply.json()) == (404, missing.json()), kind.name
        reply = await deliver(h.url, Twilio().post(h.url, Twilio().new_id(), "delivered"))
        assert reply.status_code == 200  # the one configured


@pytest.mark.every_store
async def test_ses_subscription_confirmation_gets_the_admitted_subscribe_url(
    herald: Any, sns: SnsServer
) -> None:
    aws = Ses()
    aws.cert_host = sns.host
    async with herald(deliver=False, **configured(sns)) as h:
        subscribe = f"{sns.url}/confirm?Action=ConfirmSubscription&Token=tok123"
        post = aws.envelope("You have chosen to subscribe.", kind="SubscriptionConfirmation",
                            SubscribeURL=subscribe, Token="tok123")  # fmt: skip
        reply = await deliver(h.url, post)
        assert reply.status_code == 200, reply.text
        assert reply.json()["data"] == {"confirmed": TOPIC}
        confirms = [s for s in sns.fake.seen if s.path == "/confirm"]
        assert [(s.method, s.query) for s in confirms] == [
            ("GET", "Action=ConfirmSubscription&Token=tok123")
        ]

        # The same request again is a replay: no second GET.
        assert (await deliver(h.url, post)).status_code == 401
        assert len([s for s in sns.fake.seen if s.path == "/confirm"]) == 1


@pytest.mark.every_store
async def test_ses_certificate_on_a_host_not_admitted_is_refused(
    herald: Any, sns: SnsServer
) -> None:
    aws = Ses()
    aws.cert_host = "sns.eu-west-1.amazonaws.com.evil.example"
    async with herald(deliver=False, **configured(sns)) as h:
        message_id = aws.new_id()
        note = await sent(h.engine.store, aws, message_id)
        before = await state(h.engine.store, "default", note)
        reply = await deliver(h.url, aws.post(h.url, message_id, "Bounce"))
        assert reply.status_code == 401
        assert "allow-list" in reply.json()["message"]
        assert sns.fake.seen == []  # nothing fetched
        assert await state(h.engine.store, "default", note) == before

        # Nor is Amazon's own host admitted once HERALD_SNS_CERT_HOSTS names others.
        aws.cert_host = "sns.eu-west-1.amazonaws.com"
        reply = await deliver(h.url, aws.post(h.url, message_id, "Bounce"))
        assert reply.status_code == 401 and "allow-list" in reply.json()["message"]


@pytest.mark.every_store
async def test_twilio_sends_a_status_callback_to_the_public_url_and_it_verifies(
    herald: Any, sns: SnsServer
) -> None:
    """With HERALD_PUBLIC_URL set (Herald behind a proxy), Twilio is told to call back at
    <public url>/api/receipts/twilio, and a callback signed for that URL is taken."""
    twilio = Twilio()
    sid = twilio.new_id()
    public = "https://herald.example.com/hooks"

    def messages(seen: Seen) -> Reply:
        return Reply.json(201, {"sid": sid, "status": "queued"})

    async with fake_server(messages) as api, herald(
        **configured(sns), public_url=public, sms_providers=["twilio"],
        twilio_account_sid="AC" + "1f" * 16, twilio_from="+15005550006", twilio_base_url=api.url,
    ) as h:  # fmt: skip
        created = await h.client.post(
            "/api/notifications", json={"type": "SMS", "recipient": PHONE, "message": "hi"}
        )
        assert created.status_code == 201, created.text
        note = created.json()["data"]["id"]
        await h.wait_status(note, "SENT")
        [call] = api.seen
        assert call.form()["StatusCallback"] == public + "/api/receipts/twilio"

        # Signed for the URL as received here, not the public one: refused.
        local = twilio.post(h.url, sid, "delivered")
        assert (await deliver(h.url, local)).status_code == 401
        signed = twilio.post(public, sid, "delivered")
        reply = await deliver(h.url, signed)
        assert reply.status_code == 200, reply.text
        await h.wait_status(note, "DELIVERED")


async def test_twilio_callback_setting_wins_and_no_public_url_means_none(
    herald: Any, sns: SnsServer
) -> None:
    forms: list[dict[str, str]] = []
    twilio = Twilio()

    def messages(seen: Seen) -> Reply:
        forms.append(seen.form())
        return Reply.json(201, {"sid": twilio.new_id(), "status": "queued"})

    base = dict(sms_providers=["twilio"], twilio_account_sid="AC" + "1f" * 16,
                twilio_auth_token=TWILIO_TOKEN, twilio_from="+15005550006")  # fmt: skip
    async with fake_server(messages) as api:
        chosen = {"public_url": "https://h.example.com",
                  "twilio_status_callback": "https://elsewhere.example.com/cb"}  # fmt: skip
        for extra in ({}, chosen):
            async with herald(**base, **extra, twilio_base_url=api.url) as h:
                created = await h.client.post(
                    "/api/notifications", json={"type": "SMS", "recipient": PHONE, "message": "x"}
                )
                await h.wait_status(created.json()["data"]["id"], "SENT")
    assert "StatusCallback" not in forms[0]
    assert forms[1]["StatusCallback"] == "https://elsewhere.example.com/cb"


async def test_receipts_have_their_own_budget_per_address(herald: Any, sns: SnsServer) -> None:
    grid = SendGrid()
    limits = {"anonymous_rate_limit": "2/min", "receipts_rate_limit": "5/min"}
    async with herald(deliver=False, **configured(sns), **limits) as h:
        codes = [(await deliver(h.url, grid.post(h.url, grid.new_id(), "delivered"))).status_code
                 for _ in range(5)]  # fmt: skip
        assert codes == [200] * 5  # more than the anonymous budget allows
        over = await deliver(h.url, grid.post(h.url, grid.new_id(), "delivered"))
        assert over.status_code == 429
        assert int(over.headers["retry-after"]) >= 1


async def test_bodies_are_bounded(herald: Any, sns: SnsServer) -> None:
    async with herald(deliver=False, **configured(sns)) as h:
        twilio = Twilio()
        post = twilio.post(h.url, twilio.new_id(), "delivered")
        padded = replace(post, body=post.body + b"&Pad=" + b"x" * (64 * 1024))
        assert (await deliver(h.url, padded)).status_code == 413


def test_receipt_routes_are_public_and_listed() -> None:
    import tempfile

    app = create_app(make_settings(Path(tempfile.mkdtemp())))
    routes = {(m, p) for m, p, _ in authz.endpoints(app) if p.startswith("/api/receipts/")}
    expected = {("POST", f"/api/receipts/{k.name}") for k in KINDS}
    assert routes == expected
    assert all(authz.is_public(m, p) for m, p in routes)
    assert not authz.is_public("POST", "/api/receipts/other")


def test_receipt_settings_are_checked_at_start(tmp_path: Path) -> None:
    bad_pem = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----"
    with pytest.raises(pydantic.ValidationError, match="HERALD_SENDGRID_WEBHOOK_PUBLIC_KEY"):
        Settings(_env_file=None, sendgrid_webhook_public_key=bad_pem)
    with pytest.raises(pydantic.ValidationError, match="HERALD_SES_TOPIC_ARNS"):
        Settings(_env_file=None, ses_receipts=True)
    with pytest.raises(pydantic.ValidationError, match="go together"):
        Settings(_env_file=None, postmark_webhook_user="only-the-user")
    assert Settings(_env_file=None, sendgrid_webhook_public_key=_der(SENDGRID_KEY))


async def test_retention_forgets_replay_keys_past_their_time(herald: Any) -> None:
    async with herald(deliver=False) as h:
        now = time.time()
        await h.engine.store.apply_receipts([], seen=[("old", now - 1), ("new", now + 3600)])
        await retention.clean_once(h.engine.store, h.engine.settings)
        path = h.engine.settings.sqlite_path
        with sqlite3.connect(path) as db:
            kept = [key for (key,) in db.execute("SELECT key FROM receipt_seen")]
        assert kept == ["new"]


async def test_a_replay_reaching_another_instance_is_refused(
    herald: Any, sns: SnsServer, pg_url: str
) -> None:
    mail = Mailgun()
    settings = configured(sns, database_url=pg_url)
    async with herald(deliver=False, **settings) as one, herald(deliver=False, **settings) as two:
        message_id = mail.new_id()
        note = await sent(one.engine.store, mail, message_id)
        post = mail.post(one.url, message_id, "delivered")
        assert (await deliver(one.url, post)).status_code == 200
        after = await state(one.engine.store, "default", note)
        replayed = await deliver(two.url, post)
        assert replayed.status_code == 401
        assert "already" in replayed.json()["message"]
        assert await state(two.engine.store, "default", note) == after


async def test_a_store_outage_is_503_and_the_retry_is_taken(
    herald: Any, sns: SnsServer, pg_url: str
) -> None:
    grid = SendGrid()
    settings = configured(sns, database_url=pg_url, receipts_rate_limit="100000/h")
    async with herald(deliver=False, **settings) as h:
        store = h.engine.store
        message_id = grid.new_id()
        note = await sent(store, grid, message_id)
        # One receipt first, so this address's budget is in hand before the outage.
        assert (await deliver(h.url, grid.post(h.url, grid.new_id(), "open"))).status_code == 200
        post = grid.post(h.url, message_id, "delivered")
        await pg.allow_connections(pg_url, False)
        try:
            await pg.cut_connections(pg_url)
            reply = await deliver(h.url, post)
            assert reply.status_code == 503, reply.text
            assert reply.headers["retry-after"] == "1"
        finally:
            await pg.allow_connections(pg_url, True)
        deadline = time.monotonic() + 15
        while (reply := await deliver(h.url, post)).status_code == 503:
            assert time.monotonic() < deadline, "the store did not come back"
            await asyncio.sleep(0.1)
        assert reply.status_code == 200, reply.text  # neither this process nor the store kept it
        assert (await state(store, "default", note))[0] is Status.DELIVERED
