"""Issue 4: a batch of 10,000 one-page letters end to end through `postroom batch run` (render -> PDF/A -> split ->
archived encrypted -> ledger rows) on the embedded default with two LibreOffice workers, against the baseline
of one unoserver conversion per letter on the same two workers, in the same run.

Targets: >= 250 letters/s, peak RSS of the Postroom process < 1.5 GiB. POSTROOM_BENCH_BATCH_LETTERS changes
the batch size (default 10,000); POSTROOM_BENCH_LETTER=notice uses a short notice instead of the one-page
statement (four paragraphs of text), to show how much of the time is LibreOffice laying out text.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

from tests.bench.conftest import ROOT, run_cli

N = int(os.environ.get("POSTROOM_BENCH_BATCH_LETTERS", "10000"))
N_BASELINE = 100
WORKERS = 2
SCHEMA = {"type": "object", "required": ["balance", "due_date"],
          "properties": {"balance": {"type": "number"}, "due_date": {"type": "string"},
                         "account": {"type": "string"}, "advisor": {"type": "string"}}}
# A one-page letter: letterhead, address block, reference line, four paragraphs, a signature.
STATEMENT = [
    "ACME Bank plc - 1 Finance Street - London EC2A 1AA",
    "{{ customer.name }}", "{{ customer.address.lines[0] }}",
    "{{ customer.address.city }} {{ customer.address.postcode }}",
    "Our reference: {{ letter.reference }}    Account: {{ account }}",
    "{{ customer.salutation }},",
    "Your annual statement",
    "Thank you for banking with us. Your balance on 31 October was {{ balance|money('GBP') }}. Your next payment "
    "is due on {{ due_date }}; if you pay by direct debit there is nothing you need to do.",
    "We have enclosed a summary of the charges you paid this year and of the interest you earned. Please keep it "
    "with your records: you may need it for your tax return.",
    "If anything in this letter looks wrong, call {{ advisor }} on 0113 496 0000, Monday to Friday, 8am to 8pm, or "
    "write to us at the address above. We aim to answer every letter within five working days.",
    "Yours sincerely,", "{{ advisor }}", "Customer Services",
]
# A short notice: the same fields, two sentences. LibreOffice lays it out about twice as fast.
NOTICE = [
    "ACME Bank plc", "{{ customer.name }}", "{{ customer.address.lines[0] }}",
    "{{ customer.address.city }} {{ customer.address.postcode }}", "Reference {{ letter.reference }}",
    "{{ customer.salutation }},", "Your balance is {{ balance|money('GBP') }}, due on {{ due_date }}.",
    "Account {{ account }}. Questions: {{ advisor }}.", "Yours sincerely,", "Customer Services",
]
LETTER = os.environ.get("POSTROOM_BENCH_LETTER", "statement")
BODY = {"statement": STATEMENT, "notice": NOTICE}[LETTER]


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _sampler(pid: int, stop: threading.Event, peaks: dict[str, float], cpu: list[tuple[float, float, float]]) -> None:
    """Every 50 ms: peak RSS of the process alone and of its whole tree (with its LibreOffice workers), and
    (time, CPU seconds so far of the process, of its LibreOffice processes) appended to `cpu`."""
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    office: dict[int, float] = {}
    while not stop.is_set():
        try:
            own, children = root.memory_info().rss, root.children(recursive=True)
            peaks["cpu_own"] = _cpu(root)
        except psutil.Error:
            break
        tree = own
        for child in children:
            try:  # a LibreOffice being replaced may be gone by now
                tree += child.memory_info().rss
                if child.name() == "soffice.bin":
                    office[child.pid] = _cpu(child)
            except psutil.Error:
                continue
        peaks["own"], peaks["tree"] = max(peaks.get("own", 0), own), max(peaks.get("tree", 0), tree)
        cpu.append((time.time(), peaks["cpu_own"], sum(office.values())))
        stop.wait(0.05)


def _cpu_in(samples: list[tuple[float, float, float]], window: tuple[float, float], column: int) -> float:
    """CPU seconds used in [start, end] by one column of the samples (the nearest samples at each end)."""
    start, end = window
    inside = [s for s in samples if start <= s[0] <= end]
    return inside[-1][column] - inside[0][column] if len(inside) > 1 else 0.0


def _setup(bench_env: dict[str, str], tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """Users, N customers (through the CSV import) and an approved template, on the bench's data dir."""
    run_cli(bench_env, "db", "upgrade")
    for name, role in (("bench-author", "author"), ("bench-approver", "approver"), ("bench-admin", "admin")):
        run_cli(bench_env, "users", "create", name, "--role", role, "--password-stdin", stdin="bench-password\n")
    customers = tmp_path / "customers.csv"
    with customers.open("w") as f:
        f.write("external_ref,name,address_line1,city,postcode,country\n")
        for i in range(N):
            f.write(f"C-{i:06d},Customer {i},{i} High Street,Leeds,LS{i % 30} {i % 9}AB,GB\n")
    run_cli(bench_env, "customers", "import", str(customers), "--as", "bench-admin")
    for key, value in bench_env.items():
        monkeypatch.setenv(key, value)
    from correspondence import service as corr
    from repository import runtime
    from repository.db import get_engine, transaction
    from repository.models import User
    from tests.correspondence.docx_factory import make_docx
    from tests.repository.helpers import staged

    runtime.reset()
    with transaction() as s:
        author = s.query(User).filter_by(username="bench-author").one()
        approver = s.query(User).filter_by(username="bench-approver").one()
        template = corr.create_template(s, actor=author, kind="template", name="annual-statement", locale="en-GB",
                                        content=staged(make_docx(BODY), "statement.docx"), category="statement",
                                        schema=SCHEMA, sample_data={"balance": 1, "due_date": "1 Dec"})
        template_id = template.id
    with transaction() as s:
        corr.submit(s, actor=s.get(User, author.id), template_id=template_id)
    with transaction() as s:
        corr.approve(s, actor=s.get(User, approver.id), template_id=template_id)
    get_engine().dispose()
    runtime.reset()


def _baseline_rate(bench_env: dict[str, str]) -> float:
    """Letters/s of one conversion per letter (render_one + convert), two threads on two warm workers."""
    from correspondence.rendering import compile_template, make_context, render_one
    from output.compose import ConverterPool
    from tests.bench.conftest import free_port
    from tests.correspondence.docx_factory import make_docx

    compiled = compile_template(io.BytesIO(make_docx(BODY)), blocks={})
    pool = ConverterPool(workers=WORKERS, max_queue=4, max_conversions=10_000, timeout_s=120,
                         port_base=free_port() + 3000)

    def one(i: int) -> None:
        context = make_context({"balance": 10 + i, "due_date": "1 December 2026", "account": f"40-{i:06d}",
                                "advisor": "Jo Bloggs"},
                               customer={"name": f"Customer {i}", "salutation": f"Dear Customer {i}",
                                         "address": {"lines": ["1 High Street"], "city": "Leeds",
                                                     "postcode": "LS1 1AB"}, "locale": "en-GB"},
                               letter={"id": str(i), "reference": f"L-{i:06d}"})
        pool.convert(render_one(compiled, context), pdfa=True)

    try:
        pool.start()
        list(ThreadPoolExecutor(WORKERS).map(one, range(4)))  # warm both
        start = time.perf_counter()
        with ThreadPoolExecutor(WORKERS) as ex:
            list(ex.map(one, range(N_BASELINE)))
        return N_BASELINE / (time.perf_counter() - start)
    finally:
        pool.stop()


def test_ten_thousand_letters_end_to_end(bench_env, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    from tests.bench.conftest import free_port

    bench_env.update(POSTROOM_UNO_WORKERS=str(WORKERS), POSTROOM_UNO_PORT_BASE=str(free_port() + 2000),
                     POSTROOM_UNO_MAX_CONVERSIONS="1000")
    _setup(bench_env, tmp_path, monkeypatch)
    rows = tmp_path / "rows.csv"
    with rows.open("w") as f:
        f.write("customer_ref,balance,due_date,account,advisor\n")
        for i in range(N):
            f.write(f"C-{i:06d},{100 + i}.25,1 December 2026,40-{i:06d},Jo Bloggs\n")

    peaks: dict[str, float] = {}
    cpu: list[tuple[float, float, float]] = []
    stop = threading.Event()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "api.cli", "batch", "run", str(rows), "--template",
                             "annual-statement", "--as", "bench-author"], env=bench_env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = threading.Thread(target=_sampler, args=(proc.pid, stop, peaks, cpu), daemon=True)
    sampler.start()
    out, err = proc.communicate(timeout=3600)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    assert proc.returncode == 0, err[-3000:]
    batch_id = out.strip().splitlines()[-1]

    from output.models import Dispatch, Letter, LetterBatch
    from repository import audit, runtime
    from repository.db import get_engine, transaction

    runtime.reset()
    with transaction(readonly=True) as s:
        batch = s.get(LetterBatch, batch_id)
        letters = s.query(Letter).filter_by(batch_id=batch_id).count()
        ledger = s.query(Dispatch).join(Letter, Letter.id == Dispatch.letter_id).filter(
            Letter.batch_id == batch_id).count()
        assert audit.verify(s).ok
        batch_seconds = (batch.finished_at - batch.started_at).total_seconds()
        window = (batch.started_at.timestamp(), batch.finished_at.timestamp())
    get_engine().dispose()
    runtime.reset()
    assert (batch.status, batch.rows_done, batch.rows_failed, letters, ledger, batch.pages) == \
        ("completed", N, 0, N, N, N)

    baseline = _baseline_rate(bench_env)
    rate = N / batch_seconds
    gib = 1024**3
    print(f"\nbatch of {N} one-page letters ({LETTER}): {rate:.0f} letters/s ({batch_seconds:.1f} s from the batch's "
          f"start to its end; the whole command, with start-up and LibreOffice's launch, {wall:.1f} s = "
          f"{N / wall:.0f}/s); "
          f"one conversion per letter on the same {WORKERS} workers: {baseline:.1f}/s; ratio {rate / baseline:.1f}; "
          f"peak RSS: postroom {peaks.get('own', 0) / gib:.2f} GiB, with its LibreOffice workers "
          f"{peaks.get('tree', 0) / gib:.2f} GiB; CPU per letter from the batch's start to its end: postroom "
          f"{_cpu_in(cpu, window, 1) / N * 1000:.1f} ms, LibreOffice {_cpu_in(cpu, window, 2) / N * 1000:.1f} ms; "
          f"target >= 250/s, < 1.5 GiB")
    assert peaks.get("own", 0) < 1.5 * gib
    assert rate >= 250, f"{rate:.0f} letters/s is under the 250/s target"
