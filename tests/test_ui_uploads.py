"""The chat UI's uploads, logins and start-up: uploads get content-digest names under the
write lock (same-name files in one request, and two UIs on one index, never replace each
other), messages are worded for a UI user, failed logins are rate-limited, logins come from
a file, and a busy port is one clear line."""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image

from rag_assistant import Assistant
from rag_assistant.errors import ConfigurationError, IndexBusyError, PortInUseError
from rag_assistant.settings import Settings
from rag_assistant.store.lock import writing
from rag_assistant.ui import ChatUI, LoginThrottle, binary_kind, read_auth_file, serve


class Recorder:
    """Stands in for gr.Progress: records what the handler reports."""

    def __init__(self, on_call=None) -> None:
        self.calls: list[tuple] = []
        self.on_call = on_call

    def __call__(self, progress, desc=None, **_):
        self.calls.append((progress, desc))
        if self.on_call is not None:
            self.on_call()


def jsonl(path: Path, titles: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"title": t, "abstract": f"{t} is studied here in depth."} for t in titles]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def titles_in(assistant: Assistant) -> set[str]:
    return {p.title for p in assistant.index.catalog.iter_papers()}


def uploads(assistant: Assistant) -> list[str]:
    folder = assistant.settings.home / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def add(ui: ChatUI, files, chat=None, *, skip_invalid=False, progress=None):
    names = [str(f) for f in files] if files is not None else None
    return ui.add_papers(names, chat or [], skip_invalid, "offline", progress or Recorder())


# --- uploads -----------------------------------------------------------------------------------


def test_upload_is_ingested_with_progress_and_updates_status(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    assert "530 papers" in ui.status_markdown()
    upload = jsonl(tmp_path / "gradio-tmp" / "new.jsonl", ["Wombat Caching", "Platypus Pruning"])
    progress = Recorder()
    chat, status, cleared = add(ui, [upload], progress=progress)
    assert cleared is None
    assert chat[-1]["content"].startswith("**Added papers from new.jsonl.**")
    assert "added: 2" in chat[-1]["content"]
    assert "532 papers" in status
    assert {desc for _, desc in progress.calls} >= {"reading papers", "BM25 index"}
    [kept] = uploads(assistant)
    assert kept.endswith("-new.jsonl") and len(kept) == len("0123456789abcdef-new.jsonl")
    assert (assistant.settings.home / "uploads" / kept).read_bytes() == upload.read_bytes()
    upload_bytes = upload.read_bytes()
    upload.unlink()  # gradio's temp cleanup
    # the same file again: nothing new, and it says so first
    again = jsonl(tmp_path / "other-tmp" / "new.jsonl", ["Wombat Caching", "Platypus Pruning"])
    assert again.read_bytes() == upload_bytes
    chat, status, _ = add(ui, [again], chat)
    assert chat[-1]["content"].startswith("**Nothing new in new.jsonl:**")
    assert "nothing changed" in chat[-1]["content"] and "Added papers" not in chat[-1]["content"]
    assert uploads(assistant) == [kept]


def test_two_files_with_one_name_in_one_request_are_both_kept(assistant: Assistant, tmp_path):
    first = jsonl(tmp_path / "a" / "dup.jsonl", ["Echidna Embeddings"])
    second = jsonl(tmp_path / "b" / "dup.jsonl", ["Bilby Batching"])
    chat, status, _ = add(ChatUI(assistant), [first, second])
    assert "added: 2" in chat[-1]["content"], chat[-1]["content"]
    assert {"Echidna Embeddings", "Bilby Batching"} <= titles_in(assistant)
    assert "532 papers" in status
    assert len(uploads(assistant)) == 2 and all(
        n.endswith("-dup.jsonl") for n in uploads(assistant)
    )


def test_two_uis_on_one_index_cannot_mix_their_uploads(home: Path, tmp_path):
    """UI A is ingesting its x.jsonl when UI B (another assistant on the same index, in
    another thread: another lock holder, as another process is) uploads a different x.jsonl.
    B is told the index is busy and touches nothing of A's; B's retry adds exactly B's."""
    a, b = Assistant(Settings(home=home)), Assistant(Settings(home=home))
    a_titles = [f"Alpha Paper {i}" for i in range(30)]
    b_titles = [f"Beta Paper {i}" for i in range(20)]
    a_file = jsonl(tmp_path / "a" / "x.jsonl", a_titles)
    b_file = jsonl(tmp_path / "b" / "x.jsonl", b_titles)
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:  # A pauses while it is reading its upload, holding the lock
        if not inside.is_set():
            inside.set()
            assert release.wait(60)

    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(a=add(ChatUI(a), [a_file], progress=Recorder(hold)))
    )
    worker.start()
    try:
        assert inside.wait(60)
        a_upload = uploads(a)
        chat, _, _ = add(ChatUI(b), [b_file])
        assert chat[-1]["content"].startswith("⚠️ **The papers were not added.**")
        assert "the index is busy" in chat[-1]["content"]
        assert str(home) not in chat[-1]["content"]
        assert uploads(a) == a_upload  # B placed nothing and replaced nothing
    finally:
        release.set()
        worker.join(120)
    assert "added: 30" in result["a"][0][-1]["content"]
    chat, _, _ = add(ChatUI(b), [b_file])
    assert "added: 20" in chat[-1]["content"]
    held = titles_in(Assistant(Settings(home=home)))
    assert set(a_titles) | set(b_titles) <= held and len(held) == 530 + 50
    assert len(uploads(a)) == 2


def test_bad_uploads_are_worded_for_the_ui_and_not_kept(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    home = str(assistant.settings.home)
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"title": "Fine Paper", "abstract": "Fine."}\n{"title": \n')
    chat, status, _ = add(ui, [bad])
    message = chat[-1]["content"]
    assert message.startswith("⚠️ **The papers were not added.** broken.jsonl:2: not valid JSON")
    assert "tick “Skip broken records”" in message
    assert "--skip-invalid" not in message and home not in message and "uploads" not in message
    assert "530 papers" in status and uploads(assistant) == []
    # the checkbox adds the good record and lists the broken one
    chat, status, _ = add(ui, [bad], chat, skip_invalid=True)
    message = chat[-1]["content"]
    assert "added: 1" in message and "skipped: 1" in message
    assert "skipped broken.jsonl:2: not valid JSON" in message and home not in message
    assert "531 papers" in status

    latin = tmp_path / "latin.csv"
    latin.write_bytes("title,abstract\nCaf\xe9 Paper,An abstract.\n".encode("latin-1"))
    chat, _, _ = add(ui, [latin], chat)
    message = chat[-1]["content"]
    assert "latin.csv: not UTF-8 text" in message and "save it as UTF-8 text" in message
    assert "iconv" not in message and home not in message

    chat, _, _ = add(ui, None, chat)
    assert chat[-1]["content"].startswith("⚠️ Choose a JSON-lines, CSV or listing text file")


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format="PNG")
    return out.getvalue()


def test_a_binary_file_is_named_as_what_it_is(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    image = tmp_path / "papers.jsonl"
    image.write_bytes(png_bytes())
    chat, status, _ = add(ui, [image])
    assert chat[-1]["content"] == (
        "⚠️ **The papers were not added.** papers.jsonl is a PNG image (image/png), not "
        "text; upload papers as JSON lines, CSV or a listing page saved as text"
    )
    assert "530 papers" in status and uploads(assistant) == []
    archive = tmp_path / "papers.jsonl.gz"
    archive.write_bytes(gzip.compress(png_bytes()))
    assert binary_kind(archive, archive.name) == "a PNG image (image/png)"
    blob = tmp_path / "blob.csv"
    blob.write_bytes(b"title,abstract\n\x00\x01\x02")
    assert binary_kind(blob, blob.name) == "binary data"
    text = jsonl(tmp_path / "fine.jsonl", ["Fine"])
    assert binary_kind(text, text.name) is None


def test_busy_index_is_a_chat_message(assistant: Assistant, tmp_path):
    ui = ChatUI(assistant)
    good = jsonl(tmp_path / "good.jsonl", ["Kiwi Kernels"])
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with writing(assistant.settings.home):
            holding.set()
            done.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(30)
        chat, status, _ = add(ui, [good])
    finally:
        done.set()
        holder.join()
    message = chat[-1]["content"]
    assert message.startswith("⚠️ **The papers were not added.** the index is busy: pid")
    assert str(assistant.settings.home) not in message
    assert "530 papers" in status and uploads(assistant) == []


def test_the_lock_is_reentrant_only_for_the_thread_holding_it(tmp_path):
    home = tmp_path / "idx"
    errors: list[Exception] = []
    with writing(home):
        with writing(home):  # the holder may take it again
            pass

        def other() -> None:
            try:
                with writing(home):
                    pass
            except IndexBusyError as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        with writing(home):  # still held after the inner block ended
            pass
    assert len(errors) == 1 and f"pid {os.getpid()}" in str(errors[0])
    with writing(home):  # released at the end of the outer block
        pass


# --- logins ---------------------------------------------------------------------------------


def test_auth_file(tmp_path):
    path = tmp_path / "auth"
    path.write_text("# readers\nreader:s3cret:x\n\nadmin:pw\n")
    assert read_auth_file(path) == [("reader", "s3cret:x"), ("admin", "pw")]
    path.write_text("reader\n")
    with pytest.raises(ConfigurationError, match=r"auth:1: expected 'user:password'"):
        read_auth_file(path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        read_auth_file(tmp_path / "missing")
    path.write_text("# nothing\n")
    with pytest.raises(ConfigurationError, match="holds no 'user:password' line"):
        read_auth_file(path)


async def _login_app(scope, receive, send):
    """A stand-in for gradio's /login: 200 for the right password, 400 otherwise."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    ok = b"password=right" in body
    await send({"type": "http.response.start", "status": 200 if ok else 400, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_login_throttle_counts_failures_per_address_within_the_window():
    now = [1000.0]
    throttle = LoginThrottle(_login_app, attempts=3, window=60.0, clock=lambda: now[0])

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=throttle, client=("10.0.0.1", 1234))
        other = httpx.ASGITransport(app=throttle, client=("10.0.0.2", 1234))
        codes = []
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(4):
                codes.append((await client.post("/login", data={"password": "wrong"})).status_code)
            refused = await client.post("/login/", data={"password": "right"})
            codes.append(refused.status_code)
            assert int(refused.headers["retry-after"]) == 60
            async with httpx.AsyncClient(transport=other, base_url="http://t") as second:
                codes.append((await second.post("/login", data={"password": "right"})).status_code)
            codes.append((await client.get("/login")).status_code)  # only POST is counted
            now[0] += 61
            codes.append((await client.post("/login", data={"password": "right"})).status_code)
        return codes

    import asyncio

    assert asyncio.run(run()) == [400, 400, 400, 429, 429, 200, 400, 200]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_launched_app_limits_failed_logins_and_reads_an_auth_file(home: Path, tmp_path):
    auth = tmp_path / "auth"
    auth.write_text("reader:s3cret\n")
    app, url = serve(Assistant(Settings(home=home)), port=free_port(), auth_file=auth, block=False)
    try:
        codes = [
            httpx.post(f"{url}login", data={"username": "reader", "password": f"no{i}"}).status_code
            for i in range(8)
        ]
        assert codes == [400] * 5 + [429] * 3
        locked = httpx.post(f"{url}login", data={"username": "reader", "password": "s3cret"})
        assert locked.status_code == 429 and "Too many failed logins" in locked.text
        assert "logins from your address are refused for a minute" in httpx.get(url).text
    finally:
        app.close()
    app, url = serve(Assistant(Settings(home=home)), port=free_port(), auth_file=auth, block=False)
    try:
        ok = httpx.post(f"{url}login", data={"username": "reader", "password": "s3cret"})
        assert ok.status_code == 200
    finally:
        app.close()


# --- start-up -----------------------------------------------------------------------------


def test_a_busy_port_is_a_typed_error(home: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"^port {port} is in use$"):
            serve(Assistant(Settings(home=home)), port=port, block=False)


@pytest.mark.slow
def test_ui_on_a_busy_port_says_so_and_exits_1(home: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "rag_assistant.cli", "ui", "--no-browser", "--port", str(port)],
            env={**os.environ, "RAG_ASSISTANT_HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: port {port} is in use; pass --port"
    assert "Traceback" not in result.stderr and "GRADIO_SERVER_PORT" not in result.stderr
