"""Model-driven fuzzer: hypothesis strategies built from botocore's KMS service model, plus
hostile transport, sent to a real `keyledger serve`.

    .venv/bin/python -m bench.fuzz [--requests 100000] [--seed N] [--workers 2]
                                   [--corpus DIR [--generate]] [--rss-every 10]

Hypothesis takes some 10 ms to draw one request from these strategies, so a long run is
split in two: ``--generate`` draws the requests (one hypothesis process per worker, no
server needed, keys named by placeholders) into ``--corpus DIR``; a run given ``--corpus``
then replays them against the server as fast as it answers, with the placeholders replaced
by the run's real keys and ciphertexts (asked for more requests than the corpus holds, it
sends each case again by another transport or identity). Without ``--corpus`` hypothesis
draws as it sends.

Every request is one of:
- a request of a built operation whose members are drawn from the model's shapes (enums,
  lengths, ranges, patterns at and past their bounds), each member at times replaced by a
  value of the wrong JSON type, unicode-hostile text (lone surrogates, NUL, RTL marks,
  9,000 characters), huge numbers, or a real key named by id, ARN, alias or alias ARN;
- malformed JSON, a body that is not an object, a wrong or missing content type, an
  unknown target, a broken signature, a replayed signed request, a body cut off before
  its Content-Length (the client goes away), or a body sent slowly in pieces.

Requests are signed as the account root, or as a narrow user whose only IAM permissions are
DescribeKey on one key and Encrypt on it with the encryption context tenant=t1. The oracle
is a second, independent evaluation of that narrow policy written here; the server must
never answer 200 to a narrow request the oracle denies.

Findings: any 5xx, any 200 the oracle denies, any traceback in the server's log, and the
server's memory (RSS), sampled every ``--rss-every`` seconds along the run.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.model
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from api.ops import OPERATIONS

REPO = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
ACCOUNT = "000000000000"
NARROW = f"arn:aws:iam::{ACCOUNT}:user/narrow"
MODEL = botocore.session.get_session().get_service_model("kms")
BUILT = sorted(set(OPERATIONS) & set(MODEL.operation_names))
KEY_MEMBERS = {"KeyId", "TargetKeyId", "DestinationKeyId", "SourceKeyId"}
HOSTILE = [
    "",
    "a",
    "\x00",
    "\ud800",  # a lone surrogate: not valid UTF-8 once encoded
    "\u202e" * 10,
    "ü" * 300,
    "x" * 9000,
    "\U0001d518\U0001d52b\U0001d526",  # mathematical Fraktur letters
    "alias/aws/s3",
    "arn:aws:kms:us-east-1:000000000000:key/x",
    "mrk-" + "0" * 32,
    "../../etc/passwd",
    "%s%n%x",
    "' OR 1=1 --",
    "AWS:tag",
]
WRONG = [None, 7, -1.5, True, "text", [], {}, 10**30, -(2**63), 1e308, [{"a": 1}], {"n": {"d": []}}]


@dataclass(frozen=True)
class Pools:
    narrow_keys: tuple[str, ...]  # key A in all four forms: the only key narrow may use
    other_keys: tuple[str, ...]  # root's keys and names that are not key A
    blobs: tuple[str, ...]  # base64 ciphertexts

    def real(self, value: Any) -> Any:
        """A case drawn with PLACEHOLDERS, with each placeholder replaced by this run's
        value in the same place (cases drawn with real pools are returned as they are)."""
        if isinstance(value, str) and value.startswith(_MARK):
            kind, _, index = value[len(_MARK) :].partition(":")
            pool = getattr(self, kind, None) if kind in _POOLS else None
            return pool[int(index)] if pool and index.isdigit() else value
        if isinstance(value, dict):
            return {self.real(k): self.real(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.real(v) for v in value]
        return value


# Stand-ins for the keys and ciphertexts a run makes, so requests can be drawn before the
# server runs; as many of each as prepare() makes.
_MARK = "\u2063pool:"
PLACEHOLDERS = Pools(
    narrow_keys=tuple(f"{_MARK}narrow_keys:{i}" for i in range(4)),
    other_keys=tuple(f"{_MARK}other_keys:{i}" for i in range(10)),
    blobs=tuple(f"{_MARK}blobs:{i}" for i in range(2)),
)
_POOLS = ("narrow_keys", "other_keys", "blobs")
Case = tuple[tuple[str, Any], str, bool, bytes]  # (operation, params), transport, narrow, junk


def hostile_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))


def member(shape: botocore.model.Shape, name: str, pools: Pools, depth: int) -> st.SearchStrategy:
    valid = shaped(shape, name, pools, depth)
    return st.one_of(valid, valid, valid, valid, st.sampled_from(WRONG), hostile_text())


def shaped(  # noqa: PLR0911 - one strategy per kind of shape
    shape: botocore.model.Shape, name: str, pools: Pools, depth: int
) -> st.SearchStrategy:
    if name in KEY_MEMBERS:
        return st.one_of(st.sampled_from(pools.narrow_keys + pools.other_keys), hostile_text())
    if name == "CiphertextBlob":
        return st.one_of(st.sampled_from(pools.blobs), _blob(shape))
    if name == "EncryptionContext":
        return st.one_of(
            st.just({"tenant": "t1"}),
            st.just({"tenant": "t2"}),
            st.just({"Tenant": "t1", "x": "y"}),
            st.dictionaries(hostile_text(), hostile_text(), max_size=3),
        )
    if isinstance(shape, botocore.model.StructureShape):
        return structure(shape, pools, depth + 1)
    if isinstance(shape, botocore.model.ListShape):
        if depth > 3:
            return st.just([])
        return st.lists(member(shape.member, "", pools, depth + 1), max_size=4)
    if isinstance(shape, botocore.model.MapShape):
        return st.dictionaries(hostile_text(), hostile_text(), max_size=4)
    meta = shape.metadata
    kind = shape.type_name
    if meta.get("enum"):
        return st.one_of(st.sampled_from(meta["enum"]), hostile_text())
    if kind in ("integer", "long"):
        low, high = meta.get("min", -5), meta.get("max", 100_000)
        return st.one_of(
            st.sampled_from([low - 1, low, high, high + 1, 0, -1, 2**31, 2**63]),
            st.integers(low, high),
        )
    if kind == "boolean":
        return st.booleans()
    if kind == "blob":
        return _blob(shape)
    if kind == "timestamp":
        return st.one_of(st.integers(-(10**12), 10**13), st.floats(allow_nan=False), st.just("x"))
    low, high = meta.get("min", 0), meta.get("max", 300)
    return st.one_of(hostile_text(), st.text(min_size=low, max_size=min(high, 300)))


def _blob(shape: botocore.model.Shape) -> st.SearchStrategy:
    high = shape.metadata.get("max", 4096)
    sizes = st.sampled_from([0, 1, 16, high, high + 1])
    raw = st.one_of(sizes.map(lambda n: b"\xab" * n), st.binary(max_size=64))
    encoded = raw.map(lambda b: base64.b64encode(b).decode())
    return st.one_of(encoded, encoded, st.just("not base64!"), st.just("===="))


def structure(shape: botocore.model.StructureShape, pools: Pools, depth: int) -> st.SearchStrategy:
    required = {n: member(shape.members[n], n, pools, depth) for n in shape.required_members}
    optional = {
        n: member(s, n, pools, depth)
        for n, s in shape.members.items()
        if n not in shape.required_members
    }
    return st.fixed_dictionaries(required, optional=optional)


def operation_request(pools: Pools) -> st.SearchStrategy:
    strategies = []
    for operation in BUILT:
        shape = MODEL.operation_model(operation).input_shape
        body = structure(shape, pools, 0) if shape is not None else st.just({})
        strategies.append(st.tuples(st.just(operation), body))
    # Well-formed requests the narrow user may or may not make, so the oracle's "allow"
    # side is exercised as much as its "deny" side.
    contexts = shaped(MODEL.shape_for("EncryptionContextType"), "EncryptionContext", pools, 0)
    keys = st.sampled_from(pools.narrow_keys + pools.other_keys[:3])
    operations = st.sampled_from(["Encrypt", "DescribeKey", "GenerateDataKey", "Decrypt"])
    narrow = st.tuples(
        operations,
        st.fixed_dictionaries(
            {"KeyId": keys, "Plaintext": st.just("eA=="), "EncryptionContext": contexts},
            optional={
                "KeySpec": st.just("AES_256"),
                "CiphertextBlob": st.sampled_from(pools.blobs),
            },
        ),
    )
    model = st.one_of(*strategies)
    return st.one_of(model, model, narrow)


# ---------------------------------------------------------------------------- the oracle


def oracle_allows(operation: str, params: Any, pools: Pools) -> bool:
    """The narrow user's IAM policy, evaluated independently of domain/policy.py:
    DescribeKey on key A; Encrypt on key A when the context has tenant=t1 (condition key
    names are case-insensitive, values case-sensitive). Nothing else."""
    if not isinstance(params, dict) or params.get("KeyId") not in pools.narrow_keys:
        return False
    if operation == "DescribeKey":
        return True
    if operation != "Encrypt":
        return False
    context = params.get("EncryptionContext")
    if not isinstance(context, dict):
        return False
    return any(str(k).lower() == "tenant" and v == "t1" for k, v in context.items())


# ---------------------------------------------------------------------------- transport


@dataclass
class Sender:
    port: int
    connection: http.client.HTTPConnection | None = None

    def signed(self, body: bytes, target: str, secret: tuple[str, str], ctype: str) -> dict:
        request = AWSRequest(
            method="POST",
            url=f"http://127.0.0.1:{self.port}/",
            data=body,
            headers={"Content-Type": ctype, "X-Amz-Target": target},
        )
        SigV4Auth(Credentials(*secret), "kms", REGION).add_auth(request)
        return dict(request.headers.items())

    def send(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.connection is None:
                self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.connection.request("POST", "/", body=body, headers=headers)
                response = self.connection.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def cut_off(self, body: bytes, headers: dict[str, str]) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k != "Content-Length")
            head += f"Content-Length: {len(body) + 100}\r\n\r\n"
            sock.sendall(head.encode() + body)

    def slowly(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest("POST", "/")
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.endheaders()
            for start in range(0, len(body), max(1, len(body) // 3)):
                connection.send(body[start : start + max(1, len(body) // 3)])
                time.sleep(0.005)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()


TRANSPORT = [
    "model",
    "model",
    "model",
    "model",
    "model",
    "model",
    "model",
    "malformed",
    "content_type",
    "bad_signature",
    "replay",
    "unknown_target",
    "cut_off",
    "slow",
]


@dataclass
class Tally:
    requests: int = 0
    statuses: dict[int, int] | None = None
    findings: list[str] | None = None
    narrow_allowed: int = 0

    def __post_init__(self) -> None:
        self.statuses, self.findings = {}, []


class OutOfTime(Exception):
    """Raised inside the hypothesis loop to end a time-bounded run early."""


def _sender_for(port: int, pools: Pools, tally: Tally) -> Callable[[Case], None]:
    """Sends one drawn case (with the run's real keys) and checks its answer."""
    sender = Sender(port)
    root, narrow = ("test", "test"), ("AKIDNARROW", "narrow-secret")
    json11 = "application/x-amz-json-1.1"

    def send_case(case: Case) -> None:
        (operation, params), transport, as_narrow, junk = case
        params = pools.real(params)
        target = f"TrentService.{operation}"
        secret = narrow if as_narrow else root
        if not as_narrow and isinstance(params, dict) and params.get("KeyId") in pools.narrow_keys:
            params = {**params, "KeyId": pools.other_keys[0]}  # root leaves key A alone
        try:
            body = json.dumps(params).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError):
            body = b"{}"
        ctype = json11
        if transport == "malformed":
            body = junk
        elif transport == "content_type":
            ctype = "text/plain"
        elif transport == "unknown_target":
            target = "TrentService.Nope"
        headers = sender.signed(body, target, secret, ctype)
        if transport == "bad_signature":
            headers["Authorization"] = headers["Authorization"][:-4] + "0000"
        tally.requests += 1
        if transport == "cut_off":
            sender.cut_off(body[: len(body) // 2], headers)
            return
        if transport == "slow":
            status, answer = sender.slowly(body, headers)
        else:
            status, answer = sender.send(body, headers)
        facts = {
            "answer": answer,
            "operation": operation,
            "params": params,
            "as_narrow": as_narrow,
            "transport": transport,
            "pools": pools,
        }
        if transport == "replay":
            tally.requests += 1
            status2, _ = sender.send(body, headers)
            facts["status"] = status2
            check(tally, **facts)
        facts["status"] = status
        check(tally, **facts)

    def send(case: Case) -> None:
        try:
            send_case(case)
        except OSError as error:  # the server closed the connection: not a 5xx, but say so
            assert tally.findings is not None
            tally.findings.append(f"connection failed ({case[1]} {case[0][0]}): {error}")

    return send


def draw(
    pools: Pools, count: int, worker_seed: int, each: Callable[[Case], None], deadline: float
) -> None:
    """Hypothesis draws ``count`` cases from the model's strategies, one call of ``each``
    per case, until ``deadline`` (time.time())."""

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(worker_seed)
    @given(
        case=operation_request(pools),
        transport=st.sampled_from(TRANSPORT),
        as_narrow=st.booleans(),
        junk=st.binary(max_size=200),
    )
    def one(case: tuple[str, dict], transport: str, as_narrow: bool, junk: bytes) -> None:
        if time.time() > deadline:
            raise OutOfTime
        each((case, transport, as_narrow, junk))

    with contextlib.suppress(OutOfTime):
        one()


def fuzz_worker(
    port: int,
    pools: Pools,
    requests: int,
    worker_seed: int,
    *,
    deadline: float = float("inf"),
    corpus: tuple[Path, int, int] | None = None,
) -> Tally:
    """Sends ``requests`` cases: drawn now, or read from ``corpus`` (``--generate``): its
    directory, this worker's index and the number of workers, which share its cases."""
    tally = Tally()
    send = _sender_for(port, pools, tally)
    if corpus is None:
        draw(pools, requests, worker_seed, send, deadline)
        return tally
    directory, index, workers = corpus
    cases = list(_read_corpus(directory))[index::workers]
    vary = random.Random(worker_seed)
    for sent in range(requests):
        if not cases or time.time() > deadline:
            break
        body, transport, as_narrow, junk = cases[sent % len(cases)]
        if sent >= len(cases):  # a case sent again goes by another transport or identity
            transport, as_narrow = vary.choice(TRANSPORT), vary.random() < 0.5
        send((body, transport, as_narrow, junk))
    return tally


def _read_corpus(directory: Path) -> Iterator[Case]:
    lines = (line for path in sorted(directory.glob("*.jsonl")) for line in path.open())
    for line in lines:
        try:
            (operation, params), transport, as_narrow, junk = json.loads(line)
        except ValueError:  # the last line of a generator stopped early
            continue
        yield (operation, params), transport, as_narrow, base64.b64decode(junk)


def generate(args: tuple[Path, int, int]) -> int:
    """One corpus file: ``count`` cases drawn with placeholder keys, as JSON lines."""
    path, count, worker_seed = args
    written = 0
    with path.open("w") as out:

        def write(case: Case) -> None:
            nonlocal written
            body, transport, as_narrow, junk = case
            line = [body, transport, as_narrow, base64.b64encode(junk).decode()]
            out.write(json.dumps(line, default=str) + "\n")  # lone surrogates: \ud800 escapes
            written += 1

        draw(PLACEHOLDERS, count, worker_seed, write, float("inf"))
    return written


def check(
    tally: Tally,
    *,
    status: int,
    answer: bytes,
    operation: str,
    params: Any,
    as_narrow: bool,
    transport: str,
    pools: Pools,
) -> None:
    assert tally.statuses is not None and tally.findings is not None
    tally.statuses[status] = tally.statuses.get(status, 0) + 1
    what = f"{transport} {operation} {json.dumps(params, default=str)[:200]}"
    if status >= 500:
        tally.findings.append(f"{status} for {what}: {answer[:200]!r}")
    if status == 200 and as_narrow:
        tally.narrow_allowed += 1
        if not oracle_allows(operation, params, pools):
            tally.findings.append(f"allowed what the narrow policy denies: {what}")


# ---------------------------------------------------------------------------- the server


def config_text(narrow_policy: dict | None) -> str:
    text = f"""
[[principals]]
arn = "arn:aws:iam::{ACCOUNT}:root"
access_key_id = "test"
secret_access_key = "test"

[[principals]]
arn = "{NARROW}"
access_key_id = "AKIDNARROW"
secret_access_key = "narrow-secret"
"""
    if narrow_policy is not None:
        text += f"policies = [{json.dumps(json.dumps(narrow_policy))}]\n"
    return text


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def prepare(endpoint: str, config: Path, process: subprocess.Popen[bytes]) -> Pools:
    """Key A (narrow's), root's keys of several types, aliases and ciphertexts; then the
    narrow policy names key A and the server rereads its principals (SIGHUP)."""
    kms = boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    a = kms.create_key(Description="narrow's key")["KeyMetadata"]
    kms.create_alias(AliasName="alias/narrow", TargetKeyId=a["KeyId"])
    others = [kms.create_key()["KeyMetadata"]]
    for spec, usage in (
        ("RSA_2048", "ENCRYPT_DECRYPT"),
        ("ECC_NIST_P256", "SIGN_VERIFY"),
        ("HMAC_256", "GENERATE_VERIFY_MAC"),
        ("ECC_NIST_P256", "KEY_AGREEMENT"),
    ):
        others.append(kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"])
    kms.create_alias(AliasName="alias/other", TargetKeyId=others[0]["KeyId"])
    blobs = [
        kms.encrypt(KeyId=key, Plaintext=b"fuzz", EncryptionContext=ctx)["CiphertextBlob"]
        for key, ctx in ((a["KeyId"], {"tenant": "t1"}), (others[0]["KeyId"], {}))
    ]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": a["Arn"]},
            {
                "Effect": "Allow",
                "Action": "kms:Encrypt",
                "Resource": a["Arn"],
                "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "t1"}},
            },
        ],
    }
    config.write_text(config_text(policy))
    process.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    alias_arn = f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/narrow"
    return Pools(
        narrow_keys=(a["KeyId"], a["Arn"], "alias/narrow", alias_arn),
        other_keys=(
            *(k["KeyId"] for k in others),
            others[0]["Arn"],
            "alias/other",
            "alias/aws/s3",
            "mrk-" + "1" * 32,
            "nope",
        ),
        blobs=tuple(base64.b64encode(b).decode() for b in blobs),
    )


def _work(args: tuple[int, Pools, int, int, float, tuple[Path, int, int] | None]) -> Tally:
    port, pools, requests, worker_seed, deadline, corpus = args
    return fuzz_worker(port, pools, requests, worker_seed, deadline=deadline, corpus=corpus)


class RssSampler:
    """The server's resident memory every ``every`` seconds, on a thread of its own."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int]] = []  # (seconds since start, KiB)
        self._began = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
        self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(OSError):
            self.samples.append((round(time.monotonic() - self._began, 1), rss_kib(self.pid)))

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stopped.wait(self.every):
                return

    def summary(self, warm_up: float) -> dict[str, Any]:
        """First sample, first after ``warm_up`` seconds, at half time, last, highest; and
        every sample. Flat means the second half adds (next to) nothing: what a leak would
        add grows with the requests served, while the allocator's high-water marks settle."""
        samples = self.samples or [(0.0, 0)]
        warm = next((kib for at, kib in samples if at >= warm_up), samples[-1][1])
        half = next(kib for at, kib in samples if at >= samples[-1][0] / 2)
        return {
            "rss_kib_start": samples[0][1],
            "rss_kib_after_warm_up": warm,
            "rss_kib_at_half_time": half,
            "rss_kib_end": samples[-1][1],
            "rss_kib_max": max(kib for _, kib in samples),
            "rss_samples": samples,
        }


def run(
    requests: int,
    data_dir: Path,
    *,
    workers: int = 2,
    seed_value: int = 0,
    max_seconds: float = float("inf"),
    corpus: Path | None = None,
    rss_every: float = 10.0,
    warm_up: float = 60.0,
) -> dict[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / "fuzz.toml"
    config.write_text(config_text(None))
    log_path = data_dir.parent / "fuzz-server.log"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [sys.executable, "-m", "api", "serve", "--port", str(port), "--no-quotas"]
    args += ["--data-dir", str(data_dir), "--config", str(config), "--log-format", "text"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)  # noqa: S603
    began = time.monotonic()
    try:
        _wait_listening(port, process)
        pools = prepare(f"http://127.0.0.1:{port}", config, process)
        rss = RssSampler(process.pid, rss_every).start()
        share = [requests // workers + (i < requests % workers) for i in range(workers)]
        deadline = time.time() + max_seconds
        jobs = [
            (port, pools, n, seed_value * 1000 + i, deadline, corpus and (corpus, i, workers))
            for i, n in enumerate(share)
        ]
        if workers == 1:
            tallies = [_work(jobs[0])]
        else:
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                tallies = pool.map(_work, jobs)
        rss.stop()
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    log_text = log_path.read_text(errors="replace")
    statuses: dict[int, int] = {}
    for tally in tallies:
        for status, count in (tally.statuses or {}).items():
            statuses[status] = statuses.get(status, 0) + count
    findings = [f for t in tallies for f in t.findings or []]
    tracebacks = log_text.count("Traceback")
    if tracebacks:
        findings.append(f"{tracebacks} tracebacks in the server log ({log_path})")
    return {
        "requests": sum(t.requests for t in tallies),
        "statuses": dict(sorted(statuses.items())),
        "narrow_allowed": sum(t.narrow_allowed for t in tallies),
        **rss.summary(warm_up),
        "seconds": round(time.monotonic() - began, 1),
        "findings": findings,
    }


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start listening")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(3)))
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--max-seconds", type=float, default=float("inf"))
    parser.add_argument("--corpus", type=Path, default=None, help="a directory of drawn cases")
    parser.add_argument(
        "--generate", action="store_true", help="draw --requests cases into --corpus and stop"
    )
    parser.add_argument("--rss-every", type=float, default=10.0, help="seconds between samples")
    args = parser.parse_args()
    if args.generate:
        if args.corpus is None:
            parser.error("--generate needs --corpus")
        args.corpus.mkdir(parents=True, exist_ok=True)
        share = [
            args.requests // args.workers + (i < args.requests % args.workers)
            for i in range(args.workers)
        ]
        jobs = [
            (args.corpus / f"worker-{i}.jsonl", n, args.seed * 1000 + i)
            for i, n in enumerate(share)
        ]
        began = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            written = pool.map(generate, jobs)
        print(json.dumps({"cases": sum(written), "seconds": round(time.monotonic() - began, 1)}))
        return
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="kl-fuzz-")) / "data"
    print(f"seed {args.seed}, data in {data_dir}", flush=True)
    result = run(
        args.requests,
        data_dir,
        workers=args.workers,
        seed_value=args.seed,
        max_seconds=args.max_seconds,
        corpus=args.corpus,
        rss_every=args.rss_every,
    )
    (data_dir.parent / "fuzz-result.json").write_text(json.dumps(result, indent=1))
    samples = result.pop("rss_samples")
    print(json.dumps(result, indent=2))
    print("RSS (seconds, KiB):", json.dumps(samples))
    sys.exit(1 if result["findings"] else 0)


if __name__ == "__main__":
    main()
