"""`ferry web` as an operator runs it: its log, token revocation, limits, an absent database.

Real processes: `ferry web` (gunicorn) on this test's database, and the `ferry` CLI.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import uuid

import requests
from sqlalchemy import Engine, text

from shared.settings import Settings
from shared.store.accounts import Account, create_account, issue_token
from tests.e2e.harness import ROOT, Stack, free_port
from tests.polling import wait_for


def ferry(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `ferry ARGS` with the stack's environment."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_given_ferry_web_when_requests_are_answered_then_its_log_names_each_with_its_id(
    stack: Stack, account: tuple[Account, str]
) -> None:
    """Given `ferry web`, When an export is posted with X-Request-ID and then read, Then the
    answers carry the request ids, and the process's log has one INFO line per request
    naming id, method, path, status, duration, account and job — grep finds it by id."""
    person, token = account
    web = stack.start_web()
    api = stack.api(token)

    posted = api.post("/exports", json={"type": "archive"}, headers={"X-Request-ID": "ops-7"})
    job_id = posted.json()["job"]["id"]
    read = api.get(f"/jobs/{job_id}")

    assert posted.headers["X-Request-ID"] == "ops-7"
    generated = read.headers["X-Request-ID"]
    line = re.compile(
        r"INFO web\.requests: request id=ops-7 method=POST path=/api/v1/exports status=202"
        rf" ms=[0-9.]+ account={re.escape(person.name)} job={job_id}"
    )
    wait_for(lambda: line.search(web.text()), timeout=10, what="the request line in the log")
    assert re.search(rf"request id={generated} method=GET path=/api/v1/jobs/{job_id}", web.text())


def test_given_a_token_in_use_when_revoked_with_the_cli_then_the_server_refuses_it_at_once(
    stack: Stack, engine: Engine
) -> None:
    """Given a running `ferry web` and a token it just accepted, When `ferry tokens revoke`
    runs, Then the server's very next answer to that token is 401 (every worker thread
    reads the token's row), and `ferry tokens list` shows it revoked."""
    person = create_account(engine, f"revoker-{uuid.uuid4().hex[:6]}")
    token = issue_token(engine, person.id, name="laptop")
    stack.start_web()
    api = stack.api(token)
    assert api.get("/jobs").status_code == 200
    with engine.connect() as conn:
        token_id = conn.execute(
            text("SELECT id FROM api_tokens WHERE account_id = :a"), {"a": person.id}
        ).scalar_one()

    revoked = ferry(stack, "tokens", "revoke", token_id)

    assert revoked.returncode == 0, revoked.stderr
    for _ in range(5):
        assert api.get("/jobs").status_code == 401
    listed = ferry(stack, "tokens", "list", person.name)
    row = next(line for line in listed.stdout.splitlines() if line.startswith(token_id))
    assert re.split(r"\s{2,}", row.strip())[-1] != "-", row


def test_given_a_chunked_body_over_1_mib_when_sent_to_ferry_web_then_413(
    stack: Stack, account: tuple[Account, str]
) -> None:
    """Given `ferry web`, When 3 MiB of JSON is sent chunked (no Content-Length), Then 413
    payload_too_large — the server does not read it all into memory and go on."""
    _, token = account
    stack.start_web()
    assert stack.port is not None
    chunk = b" " * 65536
    with socket.create_connection(("127.0.0.1", stack.port), timeout=30) as sock:
        sock.sendall(
            b"POST /api/v1/exports HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: Bearer {token}\r\n\r\n".encode()
        )
        body = b'{"type": "archive", "pad": "' + b" " * 100
        sock.sendall(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        try:
            for _ in range(48):  # 3 MiB
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before the client is done sending
        answer = b""
        while b"payload_too_large" not in answer and (data := sock.recv(65536)):
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"payload_too_large" in answer


def test_given_ferry_web_on_a_database_that_does_not_answer_when_called_then_503(
    settings: Settings, tmp_path: object, account: tuple[Account, str]
) -> None:
    """Given `ferry web` whose DATABASE_URL names a port nobody listens on, When the API is
    called, Then 503 with Retry-After (never 500), /readyz says 503 and /healthz 200."""
    _, token = account
    dead = settings.with_overrides(
        database_url=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/ferry"
    )
    stack = Stack(dead, tmp_path / "logs")  # type: ignore[operator]
    try:
        stack.start_web()
        for method, path in [("GET", "/jobs"), ("POST", "/exports"), ("GET", "/ops/jobs")]:
            response = requests.request(
                method,
                f"{stack.base_url}/api/v1{path}",
                json={"type": "archive"} if method == "POST" else None,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert response.status_code == 503, (path, response.text)
            assert int(response.headers["Retry-After"]) > 0
            assert response.json()["error"]["code"] == "database_error"
        assert requests.get(stack.base_url + "/readyz", timeout=30).status_code == 503
        assert requests.get(stack.base_url + "/healthz", timeout=30).status_code == 200
    finally:
        stack.stop()
