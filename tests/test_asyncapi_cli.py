"""``cloudqueue asyncapi``, run through its installed entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLOUDQUEUE = Path(sys.executable).parent / "cloudqueue"


def _cloudqueue(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLOUDQUEUE), *argv], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_a_module_without_an_app_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "notanapp.py").write_text("app = 42\n")
    done = _cloudqueue("asyncapi", "notanapp:app", cwd=tmp_path)
    assert done.returncode == 1
    assert "notanapp:app is not a cloudqueue.worker.App" in done.stderr
    assert done.stdout == ""


def test_a_missing_module_is_refused_by_name(tmp_path: Path) -> None:
    done = _cloudqueue("asyncapi", "nosuchmodule:app", "-o", str(tmp_path / "out.json"), cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot import 'nosuchmodule': no such module" in done.stderr
    assert not (tmp_path / "out.json").exists()


def test_the_command_is_listed_in_the_help(tmp_path: Path) -> None:
    done = _cloudqueue("--help", cwd=tmp_path)
    assert done.returncode == 0 and "asyncapi" in done.stdout


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "orders"


def test_the_orders_example_document_is_valid_asyncapi_with_its_typed_handlers(tmp_path: Path) -> None:
    import json
    import os

    from cloudqueue.asyncapi import validate

    out = tmp_path / "asyncapi.json"
    env = {**os.environ, "ORDERS_URL": "sqs://orders?region=eu-west-1",
           "EVENTS_URL": "sns://order-events?region=eu-west-1"}
    done = subprocess.run([str(CLOUDQUEUE), "asyncapi", "orders:app", "-o", str(out)], cwd=EXAMPLE, env=env,
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    document = json.loads(out.read_text())
    validate(document)
    assert {name: op["action"] for name, op in document["operations"].items()} == {
        "process_order": "receive", "bill_order": "receive", "ship_order": "receive",
        "send-order-events": "send"}
    assert document["components"]["messages"]["Order"]["payload"] == {"$ref": "#/components/schemas/Order"}
    assert document["components"]["schemas"]["Order"]["required"] == ["id", "sku", "quantity"]
    assert document["channels"]["order-events"]["messages"] == {
        "OrderReserved": {"$ref": "#/components/messages/OrderReserved"}}
    assert document["info"]["title"] == "orders"
