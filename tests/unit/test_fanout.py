"""Fan-out: secrets scrubbed before storage, sensitive messages marked, problems named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from herald.config import Settings
from herald.events import (
    BUILTIN,
    EventType,
    EventTypeInvalid,
    RecipientInvalid,
    Target,
    load_file,
    merged,
    parse,
)
from herald.fanout import REDACTED, fan_out, scrub, secret_matches
from herald.models import Channel, Priority
from herald.templates import RenderFailed, Template, TemplateNotFound, builtin_templates

BUILTINS = {t.name: t for t in BUILTIN}


def templates() -> dict[str, list[Template]]:
    found: dict[str, list[Template]] = {}
    for t in builtin_templates():
        found.setdefault(t.name, []).append(t)
    return found


def run(kind: EventType, data: dict[str, Any], **kw: Any) -> Any:
    options: dict[str, Any] = {
        "tenant_id": "default",
        "recipient": None,
        "locale": "en",
        "templates": templates(),
        "links_base": "https://herald.test/",
    }
    return fan_out(kind, data=data, **{**options, **kw})


def test_signup_hashes_the_password_and_keeps_only_the_tokens_hash() -> None:
    data = {"username": "bob", "email": "Bob@Example.com", "userId": 7, "password": "hunter22"}
    prepared = run(BUILTINS["signup"], data)
    event = prepared.event
    assert "password" not in event.data and event.data["username"] == "bob"
    assert secret_matches("hunter22", event.hashed["password"])
    assert not secret_matches("hunter23", event.hashed["password"])
    [note] = prepared.items
    assert note.recipient == "Bob@example.com"  # normalised by the email check
    assert note.priority is Priority.HIGH
    token = note.body.split("/api/signups/verify/")[1].split()[0]
    assert note.body.count(token) == 1 and note.html is not None and token in note.html
    assert event.verify_hash == hashlib.sha256(token.encode()).hexdigest()
    assert note.metadata["sensitive"] is True
    assert note.metadata["template"] == {"name": "welcome-email", "version": 0, "locale": "en"}
    assert note.metadata["event"] == {"id": event.id, "type": "signup"}
    stored = json.dumps([event.data, event.hashed, note.metadata])
    assert "hunter22" not in stored and token not in stored


def test_reset_token_is_rendered_but_stored_redacted() -> None:
    data = {"username": "bob", "email": "b@example.com", "userId": 7, "resetToken": "tok-123456"}
    prepared = run(BUILTINS["reset-password"], data)
    assert prepared.event.data["resetToken"] == REDACTED
    [note] = prepared.items
    assert "tok-123456" in note.body and note.metadata["sensitive"] is True
    assert "tok-123456" not in (note.subject or "")


def test_a_message_without_secrets_is_not_marked() -> None:
    data = {"username": "bob", "email": "b@example.com", "userId": 1, "ipAddress": "10.0.0.1",
            "userAgent": "curl"}  # fmt: skip
    [note] = run(BUILTINS["login"], data).items
    assert "sensitive" not in note.metadata and "10.0.0.1" in note.body


def test_scrub_matches_names_at_any_depth() -> None:
    out = scrub(
        {"user": {"password": "p", "resetToken": "r"}, "list": [{"password": "q"}]},
        hash_fields={"password"},
        redact_fields={"resetToken"},
    )
    assert out.stored == {"user": {"resetToken": REDACTED}, "list": [{}]}
    assert out.context == {"user": {"resetToken": "r"}, "list": [{}]}
    assert set(out.hashed) == {"user.password", "list.0.password"}
    assert sorted(out.secrets) == ["p", "q", "r"]


def test_recipient_problems_are_named() -> None:
    with pytest.raises(RecipientInvalid) as missing:
        run(BUILTINS["login"], {"username": "x"})
    assert missing.value.fields == (("recipient", "is required"),)
    friend = {"fromUsername": "al", "toEmail": "not-an-address"}
    with pytest.raises(RecipientInvalid) as bad:
        run(BUILTINS["friend-request"], friend)
    assert bad.value.fields[0][0] == "data.toEmail"


def test_a_missing_template_and_a_secret_in_a_subject_are_refused() -> None:
    kind = EventType("x", (Target(Channel.SMS, "login-alert"),))
    with pytest.raises(TemplateNotFound):
        run(kind, {}, recipient="+14155550123")
    leaky = Template("leak", Channel.EMAIL, "en", 1, "b", "code {{ resetToken }}", None, 0.0)
    kind = EventType("y", (Target(Channel.EMAIL, "leak"),))
    with pytest.raises(RenderFailed, match="secret in the subject"):
        run(kind, {"resetToken": "abcdef"}, recipient="a@example.com",
            templates={"leak": [leaky]})  # fmt: skip


def test_parse_names_the_bad_field() -> None:
    good = {"name": "shipped", "targets": [{"template": "t", "recipientField": "phone",
                                            "channel": "sms", "priority": "high"}]}  # fmt: skip
    kind = parse(good)
    assert kind.targets == (Target(Channel.SMS, "t", Priority.HIGH, "phone"),)
    assert parse(kind.to_dict()) == kind
    for bad, field in [
        ({**good, "name": "Bad Name"}, "name"),
        ({**good, "targets": []}, "targets"),
        ({**good, "targets": [{"template": "t", "channel": "FAX"}]}, "targets.0.channel"),
        ({**good, "redact": "token"}, "redact"),
        ({**good, "verify": "yes"}, "verify"),
    ]:
        with pytest.raises(EventTypeInvalid) as caught:
            parse(bad)
        assert caught.value.fields[0][0] == field


def test_the_file_layers_over_builtins(tmp_path: Path) -> None:
    path = tmp_path / "types.json"
    signup = {"name": "signup", "targets": [{"template": "welcome-email"}], "verify": True}
    path.write_text(json.dumps({"eventTypes": [signup]}))
    [from_file] = load_file(str(path))
    assert from_file.source == "file" and from_file.hash == ()
    assert merged([from_file], [])["signup"].source == "file"
    assert merged([], [])["signup"].source == "builtin"


def test_a_bad_file_stops_settings_naming_the_variable(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"name": "x", "targets": "none"}]))
    with pytest.raises(ValidationError, match="event type 0: targets"):
        Settings(_env_file=None, event_types_file=str(path))
    with pytest.raises(ValidationError, match="cannot read"):
        Settings(_env_file=None, event_types_file=str(tmp_path / "missing.json"))
