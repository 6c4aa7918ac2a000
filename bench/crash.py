"""Crash campaign: load, SIGKILL at a random moment, restart, verify — N times.

    .venv/bin/python -m bench.crash [--cycles 100] [--clients 4]
                                    [--store sqlite|postgresql|postgresql://…]
                                    [--data-dir DIR] [--seed N] [--scan]

Each cycle: several clients (threads, boto3, each owning its own keys so its history is
sequential) send a mix of CreateKey, CreateAlias, Encrypt, GenerateDataKey, PutKeyPolicy,
CreateGrant and ScheduleKeyDeletion to a `keyledger serve` process; after a random 0.3-2 s
the server gets SIGKILL; it is started again on the same store and the campaign checks:

- every acknowledged key exists (DescribeKey), every acknowledged alias names its key,
  every acknowledged ciphertext and data key still decrypts (unless its key is pending
  deletion, which must then say so), every acknowledged policy is the key's policy, every
  acknowledged grant is listed, every acknowledged ScheduleKeyDeletion left the key
  PendingDeletion;
- nothing unacknowledged is half-applied: a request cut off by the kill is either wholly
  there or wholly absent (alias, policy, deletion state; the number of keys lies between
  the acknowledged and the acknowledged plus the ones in flight);
- every acknowledged request has its record in the ledgers, read straight from the store
  (the SQLite files, or the PostgreSQL event tables), and `keyledger audit verify` passes
  (run with the server killed);
- with --scan, at the end: no test plaintext and no data key, raw, base64 or hex, in any
  file of the data directory (and, on PostgreSQL, of the database's own directory, after a
  CHECKPOINT). The CMKs' backing keys never leave the server, so a client cannot know
  them; what it can know of key material is what it was given: data keys and plaintexts.

`--store postgresql` starts a throwaway PostgreSQL as tests/postgres.py does (initdb as an
unprivileged user, loopback only) and serves from a fresh database on it; a full
`postgresql://` URL is handed to `keyledger serve --store` as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from api.app import open_stores
from bench.at_rest import Scanner, forms
from domain.values import default_key_policy
from eventstore.database import is_postgres, redact
from eventstore.key_operations import KeyOperations

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "000000000000"
OPERATIONS = (
    ("CreateKey", 2),
    ("CreateAlias", 2),
    ("Encrypt", 6),
    ("GenerateDataKey", 4),
    ("PutKeyPolicy", 2),
    ("CreateGrant", 2),
    ("ScheduleKeyDeletion", 1),
)
_REQUEST_ID = re.compile(rb'"request_id":\s*"([0-9a-f-]{36})"')
# The eventsourcing library names a PostgreSQL application's table "<name>_events".
POSTGRES_LEDGERS = ("keyledger_events", "usageledger_events")
_VERIFIED = re.compile(r"OK\S*: (\d+) records")


@dataclass
class Journal:
    """What one client was told (acknowledged) and what it sent unanswered (maybe)."""

    name: str
    keys: list[str] = field(default_factory=list)
    policies: dict[str, str] = field(default_factory=dict)
    pending_deletion: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)
    sealed: list[tuple[str, bytes, bytes, dict[str, str]]] = field(default_factory=list)
    grants: list[tuple[str, str]] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    maybe: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    counter: int = 0
    checked: int = 0  # ciphertexts verified in earlier cycles (later ones: a sample of them)

    def usable(self) -> list[str]:
        return [k for k in self.keys if k not in self.pending_deletion]


@dataclass
class Step:
    """One request about to be sent: the client, its journal, the key and a unique tag;
    ``params`` are what a cut-off request would have changed."""

    kms: Any
    journal: Journal
    rng: random.Random
    key: str
    tag: str
    params: dict[str, Any]


@dataclass
class Server:
    data_dir: Path
    store: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        args = [sys.executable, "-m", "api", "serve", "--port", str(self.port), "--no-quotas"]
        args += ["--data-dir", str(self.data_dir)]
        if self.store != "sqlite":
            args += ["--store", self.store]
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = (self.data_dir.parent / "crash-server.log").open("ab")
        self.process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)  # noqa: S603
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start listening")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)

    def client(self) -> Any:
        return boto3.client(
            "kms",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30),
        )


def _rid(answer: dict[str, Any]) -> str:
    return str(answer["ResponseMetadata"]["RequestId"])


def step(kms: Any, journal: Journal, rng: random.Random) -> None:
    """One request; the journal learns of it only if it is acknowledged."""
    names, weights = zip(*OPERATIONS, strict=True)
    usable = journal.usable()
    operation = rng.choices(names, weights)[0] if usable else "CreateKey"
    journal.counter += 1
    tag = f"{journal.name}-{journal.counter}-{rng.getrandbits(32):08x}"
    key = rng.choice(usable) if usable else ""
    pending: tuple[str, dict[str, Any]] = (operation, {})
    journal.maybe.append(pending)  # until answered, it may or may not have happened
    answer = _SENDERS[operation](Step(kms, journal, rng, key, tag, pending[1]))
    journal.maybe.remove(pending)
    journal.request_ids.append(_rid(answer))


def _create_key(s: Step) -> Any:
    kms, journal, tag = s.kms, s.journal, s.tag
    answer = kms.create_key(Description=tag)
    journal.keys.append(answer["KeyMetadata"]["KeyId"])
    return answer


def _create_alias(s: Step) -> Any:
    kms, journal, key, tag, p = s.kms, s.journal, s.key, s.tag, s.params
    p.update(AliasName=f"alias/crash/{tag}", TargetKeyId=key)
    answer = kms.create_alias(**p)
    journal.aliases[p["AliasName"]] = key
    return answer


def _encrypt(s: Step) -> Any:
    kms, journal, key, tag = s.kms, s.journal, s.key, s.tag
    context, plaintext = {"campaign": tag}, s.rng.randbytes(24)
    answer = kms.encrypt(KeyId=key, Plaintext=plaintext, EncryptionContext=context)
    journal.sealed.append((key, answer["CiphertextBlob"], plaintext, context))
    return answer


def _generate_data_key(s: Step) -> Any:
    kms, journal, key, tag = s.kms, s.journal, s.key, s.tag
    context = {"campaign": tag}
    answer = kms.generate_data_key(KeyId=key, KeySpec="AES_256", EncryptionContext=context)
    journal.sealed.append((key, answer["CiphertextBlob"], answer["Plaintext"], context))
    return answer


def _put_key_policy(s: Step) -> Any:
    kms, journal, key, tag, p = s.kms, s.journal, s.key, s.tag, s.params
    policy = json.loads(default_key_policy(ACCOUNT))
    policy["Statement"][0]["Sid"] = tag.replace("-", "")
    p.update(KeyId=key, Policy=json.dumps(policy))
    answer = kms.put_key_policy(KeyId=key, PolicyName="default", Policy=p["Policy"])
    journal.policies[key] = p["Policy"]
    return answer


def _create_grant(s: Step) -> Any:
    kms, journal, key, tag = s.kms, s.journal, s.key, s.tag
    grantee = f"arn:aws:iam::{ACCOUNT}:role/{tag}"
    answer = kms.create_grant(KeyId=key, GranteePrincipal=grantee, Operations=["Encrypt"])
    journal.grants.append((key, answer["GrantId"]))
    return answer


def _schedule_deletion(s: Step) -> Any:
    kms, journal, key, p = s.kms, s.journal, s.key, s.params
    p.update(KeyId=key)
    answer = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    journal.pending_deletion.add(key)
    return answer


_SENDERS = {
    "CreateKey": _create_key,
    "CreateAlias": _create_alias,
    "Encrypt": _encrypt,
    "GenerateDataKey": _generate_data_key,
    "PutKeyPolicy": _put_key_policy,
    "CreateGrant": _create_grant,
    "ScheduleKeyDeletion": _schedule_deletion,
}


def load(server: Server, journals: list[Journal], rng: random.Random) -> int:
    """Every client sends requests until the server dies; returns requests acknowledged."""
    done = [0] * len(journals)

    def client(index: int) -> None:
        kms, journal = server.client(), journals[index]
        local = random.Random(rng.getrandbits(64))
        while True:
            try:
                step(kms, journal, local)
                done[index] += 1
            except ClientError as error:
                # A KMS refusal is an answer: the request changed nothing.
                journal.maybe.pop()
                code = error.response["Error"]["Code"]
                if code in ("DependencyTimeoutException", "KMSInternalException"):
                    raise
            except Exception:  # noqa: BLE001 - the server was killed mid-request
                return

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(journals))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done)


def verify(
    server: Server, journals: list[Journal], store: str, final: bool, unanswered: list[int]
) -> list[str]:
    """Everything acknowledged is there; nothing cut off is half there. ``unanswered``
    holds the number of keys made by CreateKey requests cut off in earlier cycles."""
    kms, problems = server.client(), []
    listed = {k["KeyId"] for k in _pages(kms.list_keys, "Keys")}
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in _pages(kms.list_aliases, "Aliases")}
    acked_keys = sum(len(j.keys) for j in journals)
    in_flight = sum(1 for j in journals for op, _ in j.maybe if op == "CreateKey")
    known = acked_keys + unanswered[0]
    if not known <= len(listed) <= known + in_flight:
        problems.append(f"{len(listed)} keys listed, {known} known (+{in_flight} in flight)")
    unanswered[0] = len(listed) - acked_keys
    for journal in journals:
        problems += _verify_journal(kms, journal, listed, aliases, final)
    found = recorded_request_ids(server.data_dir, store)
    missing = [r for j in journals for r in j.request_ids if r not in found]
    if missing:
        problems.append(f"{len(missing)} acknowledged requests without a record: {missing[:3]}")
    return problems


def _verify_journal(
    kms: Any, journal: Journal, listed: set[str], aliases: dict[str, str | None], final: bool
) -> list[str]:
    states = {k: kms.describe_key(KeyId=k)["KeyMetadata"]["KeyState"] for k in journal.keys}
    return [
        *_verify_keys(journal, states, listed),
        *_verify_aliases(journal, aliases),
        *_verify_sealed(kms, journal, states, final),
        *_verify_policies(kms, journal, states),
        *_verify_grants(kms, journal),
    ]


def _maybe(journal: Journal, operation: str) -> list[dict[str, Any]]:
    return [params for op, params in journal.maybe if op == operation]


def _verify_keys(journal: Journal, states: dict[str, str], listed: set[str]) -> list[str]:
    problems = [f"key {key} not listed" for key in journal.keys if key not in listed]
    deleting = {p["KeyId"] for p in _maybe(journal, "ScheduleKeyDeletion")}
    for key, state in states.items():
        expected = {"PendingDeletion"} if key in journal.pending_deletion else {"Enabled"}
        if key in deleting:
            expected = {"Enabled", "PendingDeletion"}
        if state not in expected:
            problems.append(f"key {key} is {state}, expected {expected}")
        elif key in deleting and state == "PendingDeletion":
            journal.pending_deletion.add(key)  # the cut-off request did happen, whole
    return problems


def _verify_aliases(journal: Journal, aliases: dict[str, str | None]) -> list[str]:
    problems = [
        f"alias {name} -> {aliases.get(name)}, acknowledged -> {key}"
        for name, key in journal.aliases.items()
        if aliases.get(name) != key
    ]
    for params in _maybe(journal, "CreateAlias"):
        if not params:
            continue
        target = aliases.get(params["AliasName"])
        if target not in (None, params["TargetKeyId"]):
            problems.append(f"in-flight alias {params['AliasName']} half applied")
        elif target is not None:
            journal.aliases[params["AliasName"]] = target  # it happened, whole
    return problems


def _verify_sealed(kms: Any, journal: Journal, states: dict[str, str], final: bool) -> list[str]:
    older = journal.sealed[: journal.checked]
    sample = older if final else random.sample(older, min(len(older), 25))
    problems = []
    for key, blob, plaintext, context in sample + journal.sealed[journal.checked :]:
        if states.get(key) == "PendingDeletion":
            continue  # refused as KMSInvalidStateException; its state was checked
        answer = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)
        if answer["Plaintext"] != plaintext:
            problems.append(f"a ciphertext of {key} decrypts to something else")
    journal.checked = len(journal.sealed)
    return problems


def _verify_policies(kms: Any, journal: Journal, states: dict[str, str]) -> list[str]:
    problems = []
    for key, policy in journal.policies.items():
        maybe = [p["Policy"] for p in _maybe(journal, "PutKeyPolicy") if p and p["KeyId"] == key]
        actual = kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
        if actual not in (policy, *maybe):
            problems.append(f"policy of {key} is not the acknowledged one")
        journal.policies[key] = actual
    return problems


def _verify_grants(kms: Any, journal: Journal) -> list[str]:
    problems, by_key = [], {}
    for key, grant_id in journal.grants:
        if key not in by_key:
            by_key[key] = {g["GrantId"] for g in _pages(kms.list_grants, "Grants", KeyId=key)}
        if grant_id not in by_key[key]:
            problems.append(f"grant {grant_id} of {key} not listed")
    return problems


def _pages(call: Any, member: str, **params: Any) -> list[dict[str, Any]]:
    items, marker = [], None
    while True:
        answer = call(**params, **({"Marker": marker} if marker else {}))
        items += answer[member]
        if not answer.get("Truncated"):
            return items
        marker = answer["NextMarker"]


def recorded_request_ids(data_dir: Path, store: str = "sqlite") -> set[str]:
    """Request ids of every event and usage record in the ledgers, read from the store."""
    found: set[str] = set()
    if is_postgres(store):
        import psycopg

        with psycopg.connect(store, connect_timeout=10) as db:
            for table in POSTGRES_LEDGERS:
                for (state,) in db.execute(f"SELECT state FROM {table}"):  # noqa: S608
                    found.update(m.decode() for m in _REQUEST_ID.findall(bytes(state)))
        return found
    for name in ("keyledger.db", "usage.db"):
        db = sqlite3.connect(f"file:{data_dir / name}?mode=ro", uri=True)
        try:
            for (state,) in db.execute("SELECT state FROM stored_events"):
                found.update(m.decode() for m in _REQUEST_ID.findall(bytes(state)))
        finally:
            db.close()
    return found


def audit_verify(data_dir: Path, store: str) -> tuple[str | None, int]:
    """`keyledger audit verify`: what it found wrong (None: nothing), and records verified."""
    args = [sys.executable, "-m", "api", "audit", "verify", "--data-dir", str(data_dir)]
    if store != "sqlite":
        args += ["--store", store]
    done = subprocess.run(  # noqa: S603 - our own CLI
        args,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        return (done.stdout + done.stderr).strip()[-500:], 0
    verified = _VERIFIED.search(done.stdout)
    return None, int(verified.group(1)) if verified else 0


def checkpoint(store: str) -> None:
    """PostgreSQL flushes what it holds in memory to its files (the scan reads the files)."""
    import psycopg

    with psycopg.connect(store, autocommit=True, connect_timeout=10) as db:
        db.execute("CHECKPOINT")


def key_material(data_dir: Path, store: str, key_ids: list[str]) -> list[bytes]:
    """Each key's plaintext material and its wrapping key, recovered as only the server can
    (root key, keystore): what no client ever sees, and what must never be on disk."""
    opened = open_stores(data_dir, {}, root=True, store=None if store == "sqlite" else store)
    operations, found = KeyOperations(opened.ledger), []
    try:
        for key_id in key_ids:
            cmk = opened.ledger.load(UUID(key_id))
            for material_id in cmk.materials if cmk is not None else ():
                found.append(operations._material(cmk, material_id))
                found.append(opened.ledger.keystore.wrapping_key(cmk.id, material_id))
    finally:
        opened.close()
    return found


def scan(
    directories: list[Path], journals: list[Journal], secrets: tuple[bytes, ...] = ()
) -> tuple[list[str], dict[str, int]]:
    """Byte scan of every file under ``directories`` for test plaintexts, data keys and
    ``secrets`` (key material), each raw, base64 and hex: the hits, and what was scanned.
    Acknowledged request ids are looked for too, as a control: they are in the ledgers, so
    a scan that finds none of them did not read where the store keeps its data."""
    plain = {plaintext for j in journals for _, _, plaintext, _ in j.sealed} | set(secrets)
    needles = {form for each in plain for form in forms(each)}
    controls = {r.encode() for j in journals for r in j.request_ids}
    scanner = Scanner(needles | controls)
    found, seen, files, scanned = [], set(), 0, 0
    for directory in directories:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            content = path.read_bytes()
            files, scanned = files + 1, scanned + len(content)
            hits = scanner.find(content)
            if hits & needles:
                found.append(f"{path}: {len(hits & needles)} plaintexts, data keys or material")
            seen |= hits & controls
    if controls and not seen:
        found.append("no acknowledged request id found either: the scan missed the store")
    return found, {
        "files": files,
        "bytes": scanned,
        "plaintexts_and_data_keys": len(plain) - len(secrets),
        "key_materials_and_wrapping_keys": len(secrets),
        "needles": len(needles),
        "controls_found": len(seen),
        "controls": len(controls),
    }


def tracebacks(data_dir: Path) -> int:
    log = data_dir.parent / "crash-server.log"
    return log.read_bytes().count(b"Traceback") if log.exists() else 0


def run(
    cycles: int,
    data_dir: Path,
    *,
    clients: int = 4,
    store: str = "sqlite",
    seed: int = 0,
    min_load: float = 0.3,
    max_load: float = 2.0,
    at_rest: bool = False,
    scan_also: tuple[Path, ...] = (),
    before_scan: Any = None,
    max_seconds: float = float("inf"),
    say: Any = print,
) -> dict[str, Any]:
    rng = random.Random(seed)
    journals = [Journal(f"c{i}") for i in range(clients)]
    server = Server(data_dir, store)
    failures: list[str] = []
    requests, unanswered, records = 0, [0], 0
    began = time.monotonic()
    done = 0
    for cycle in range(1, cycles + 2):
        server.start()
        # Out of cycles or of time: this restart checks the last kill, every ciphertext.
        final = cycle > cycles or (cycle > 1 and time.monotonic() - began > max_seconds)
        try:
            if cycle > 1:  # the previous cycle's kill, checked on the restarted server
                problems = verify(server, journals, store, final, unanswered)
                failures += [f"cycle {cycle - 1}: {p}" for p in problems]
                for problem in problems:
                    say(f"cycle {cycle - 1}: FAILURE {problem}")
                for journal in journals:
                    journal.maybe.clear()  # decided now: there or not, and checked
                say(
                    f"cycle {cycle - 1}/{cycles}: {requests} requests acknowledged, "
                    f"{sum(len(j.keys) for j in journals)} keys, {len(failures)} failures"
                )
            done = cycle - 1
            if final:
                break
            server.client().list_keys()  # up and answering before the clock starts
        except Exception:
            server.stop()
            raise
        timer = threading.Timer(rng.uniform(min_load, max_load), server.kill)
        timer.start()
        requests += load(server, journals, rng)
        timer.join()
        problem, records = audit_verify(data_dir, store)
        if problem:
            failures.append(f"cycle {cycle}: audit verify: {problem}")
            say(f"cycle {cycle}: FAILURE audit verify: {problem}")
    server.stop()
    scanned: dict[str, int] = {}
    if at_rest:
        if before_scan is not None:
            before_scan(store)
        keys = [k for j in journals for k in j.keys]
        secrets = tuple(key_material(data_dir, store, keys))
        hits, scanned = scan([data_dir, *scan_also], journals, secrets)
        failures += [f"at rest: {hit}" for hit in hits]
    return {
        "cycles": done,
        "store": redact(store),
        "requests_acknowledged": requests,
        "keys": sum(len(j.keys) for j in journals),
        "aliases": sum(len(j.aliases) for j in journals),
        "ciphertexts": sum(len(j.sealed) for j in journals),
        "grants": sum(len(j.grants) for j in journals),
        "audit_records": records,
        "tracebacks": tracebacks(data_dir),
        "scanned": scanned,
        "seconds": round(time.monotonic() - began, 1),
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--store", default="sqlite", help="sqlite, or a postgresql:// URL")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=int.from_bytes(os.urandom(4)))
    parser.add_argument("--scan", action="store_true", help="byte-scan the data dir at the end")
    parser.add_argument(
        "--max-seconds", type=float, default=float("inf"), help="start no cycle after this"
    )
    args = parser.parse_args()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="kl-crash-")) / "data"
    print(f"seed {args.seed}, data in {data_dir}")
    postgres = None
    store, scan_also = args.store, ()
    if store == "postgresql":
        from tests.postgres import start

        postgres = start()
        store, scan_also = postgres.create_database(), (postgres.directory,)
        print(f"PostgreSQL on 127.0.0.1:{postgres.port} in {postgres.directory}")
    try:
        result = run(
            args.cycles,
            data_dir,
            clients=args.clients,
            store=store,
            seed=args.seed,
            at_rest=args.scan,
            scan_also=scan_also,
            before_scan=checkpoint if postgres else None,
            max_seconds=args.max_seconds,
        )
    finally:
        if postgres is not None:
            postgres.stop()
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["failures"] else 0)


if __name__ == "__main__":
    main()
