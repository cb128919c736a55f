"""The `blindspot` command. `blindspot COMMAND --help` documents each command.

Exit status: 0 done; 1 the service refused or the outcome is negative (a refused package, a
failed run, a report that does not verify, the server unreachable); 2 the input is wrong (bad
arguments, a package or model with problems; every problem is listed)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from blindspot_client import __version__
from blindspot_client.api import Api, ApiError
from blindspot_client.config import credentials_path, load_credentials, save_credentials
from blindspot_client.progress import Bar, human_bytes

OK, FAILED, USAGE = 0, 1, 2
PACKAGE_WAITING = {"testing"}
RUN_ENDED = {"awaiting-signature", "issued", "failed", "cancelled"}
RUN_STAGES = ["queued", "running", "scoring", "explaining", "reporting", "awaiting-signature"]
DEFAULT_URL = "http://127.0.0.1:8000"


class Failure(Exception):
    """Stop with `status`, printing `lines` to stderr."""

    def __init__(self, status: int, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.status = status
        self.lines = list(lines)


def err(*lines: str) -> None:
    for line in lines:
        print(line, file=sys.stderr)


# --- connection ----------------------------------------------------------------------------


def _url(args: argparse.Namespace) -> str:
    return (
        args.url or os.environ.get("BLINDSPOT_URL") or load_credentials().get("url") or DEFAULT_URL
    )


def api_for(args: argparse.Namespace, *, token: bool = True) -> Api:
    url = _url(args)
    secret = None
    if token:
        stored = load_credentials()
        secret = args.token or os.environ.get("BLINDSPOT_TOKEN")
        if not secret and stored.get("url", "").rstrip("/") == url.rstrip("/"):
            secret = stored.get("token")
        if not secret:
            raise Failure(
                USAGE,
                f"no token for {url}: run `blindspot login` first, or give --token or "
                "BLINDSPOT_TOKEN",
            )
    return Api(url, secret)


# --- login ---------------------------------------------------------------------------------


def cmd_login(args: argparse.Namespace) -> int:
    api = api_for(args, token=False)
    username = args.username or input("Username: ").strip()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
    body = {"username": username, "password": password, "name": args.name}
    if args.otp:
        body["otp"] = args.otp
    answer = api.post("auth/token/", body)
    path = save_credentials(
        url=api.url, token=answer["token"], name=answer["name"], expires_at=answer["expires_at"]
    )
    expiry = f", expires {answer['expires_at']}" if answer.get("expires_at") else ""
    print(
        f"signed in to {api.url} as {username}: "
        f"token {answer['prefix']}… ({answer['name']}{expiry})"
    )
    print(f"token stored in {path} (mode 0600)")
    return OK


# --- build and check -----------------------------------------------------------------------


def cmd_build(args: argparse.Namespace) -> int:
    from blindspot_client.build import BuildRequest, build

    request = BuildRequest(
        model=args.model,
        manifest=args.manifest,
        out=args.out,
        weights=args.weights,
        example_batch=args.example_batch,
        model_format=args.format,
        paths=args.path,
        supersedes=args.supersedes,
    )
    out, problems = build(request)
    if problems:
        raise Failure(
            USAGE,
            f"cannot build the package ({len(problems)} problem(s)):",
            *(f"  {p}" for p in problems),
        )
    assert out is not None
    print(f"wrote {out} ({human_bytes(out.stat().st_size)})")
    return OK


def cmd_check(args: argparse.Namespace) -> int:
    from blindspot_client.check import check_package

    result = check_package(args.package, smoke=not args.no_smoke)
    for note in result.notes:
        print(note)
    if result.problems:
        raise Failure(
            USAGE,
            f"{args.package}: {len(result.problems)} problem(s):",
            *(f"  {p}" for p in result.problems),
        )
    print(
        f"{args.package}: passes the intake checks"
        + ("" if args.no_smoke else " and the local smoke test")
    )
    return OK


# --- packages ------------------------------------------------------------------------------


def _package_line(p: dict) -> str:
    return f"{p['id']:>5}  {p['status']:<10} {p['name']} {p['version']}  ({p.get('vendor', '')})"


def _wait_for_package(api: Api, package: dict, timeout_s: float, interval_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    shown = ""
    while package["status"] in PACKAGE_WAITING:
        if shown != package["status"]:
            err(
                f"package {package['id']}: {package['status']} "
                "(the service's smoke test runs it in its sandbox)"
            )
            shown = package["status"]
        if time.monotonic() > deadline:
            raise Failure(
                FAILED,
                f"package {package['id']} is still {package['status']} after {timeout_s:.0f} s",
            )
        time.sleep(interval_s)
        package = api.get(f"packages/{package['id']}/")
    return package


def _package_outcome(package: dict, quiet: bool) -> int:
    if package["status"] == "refused":
        err(
            f"package {package['id']}: refused "
            f"({package.get('refusal_category') or 'no category'})",
            *(f"  {r}" for r in package.get("refusal_reasons") or []),
        )
        if quiet:
            print(package["id"])
        return FAILED
    if quiet:
        print(package["id"])
    else:
        timing = ""
        if package.get("smoke_load_seconds") is not None:
            timing = (
                f" (loaded in {package['smoke_load_seconds']} s, "
                f"a batch in {package.get('smoke_batch_seconds')} s)"
            )
        print(f"package {package['id']}: {package['status']}{timing}")
        if package["status"] == "submitted":
            print("the validation team reviews it next; `blindspot packages show ID` follows it")
    return OK


def cmd_submit(args: argparse.Namespace) -> int:
    api = api_for(args)
    path: Path = args.package
    if not path.is_file():
        raise Failure(USAGE, f"{path} does not exist or is not a file")
    bar = Bar()
    size = path.stat().st_size
    try:
        package = api.upload(
            "packages/",
            path,
            progress=lambda sent, total: bar.update(
                sent, total, f"{human_bytes(sent)} of {human_bytes(size)}"
            ),
        )
    finally:
        bar.close()
    err(f"uploaded {path.name}: package {package['id']} ({package['sha256'][:12]}…)")
    if args.no_wait:
        return _package_outcome(package, args.quiet)
    package = _wait_for_package(api, package, args.timeout, args.interval)
    return _package_outcome(package, args.quiet)


def cmd_packages_list(args: argparse.Namespace) -> int:
    api = api_for(args)
    rows = list(api.list("packages/"))
    if args.quiet:
        for p in rows:
            print(p["id"])
    else:
        for p in rows:
            print(_package_line(p))
    return OK


def cmd_packages_show(args: argparse.Namespace) -> int:
    package = api_for(args).get(f"packages/{args.package}/")
    if args.json:
        print(json.dumps(package, indent=2))
        return OK
    print(_package_line(package))
    for key in ("sha256", "model_format", "submitted_at", "refusal_category", "review_note"):
        if package.get(key):
            print(f"  {key}: {package[key]}")
    for reason in package.get("refusal_reasons") or []:
        print(f"  refused: {reason}")
    return OK


def cmd_packages_review(args: argparse.Namespace) -> int:
    package = api_for(args).post(
        f"packages/{args.package}/review/",
        {"approve": args.decision == "approve", "note": args.note},
    )
    print(f"package {package['id']}: {package['status']}")
    return OK


# --- datasets and protocols ---------------------------------------------------------------


def cmd_datasets_list(args: argparse.Namespace) -> int:
    for dataset in api_for(args).list("datasets/"):
        for version in dataset.get("versions") or []:
            if args.quiet:
                print(version["id"])
            else:
                print(
                    f"{version['id']:>5}  {dataset['name']} v{version['version']}  "
                    f"{version['status']}, {version['cases']} cases  ({dataset['partner']})"
                )
    return OK


def cmd_protocols_list(args: argparse.Namespace) -> int:
    for protocol in api_for(args).list("protocols/"):
        if args.quiet:
            print(protocol["id"])
        else:
            name = f"{protocol.get('name', '')} v{protocol.get('version', '')}"
            locked = "locked" if protocol.get("locked_at") else "draft"
            print(f"{protocol['id']:>5}  {name}  {locked}")
    return OK


# --- runs ----------------------------------------------------------------------------------


def _run_line(run: dict) -> str:
    progress = run.get("progress") or {}
    package = run.get("package") or {}
    return (
        f"{run['id']:>5}  {run['status']:<18} "
        f"{progress.get('cases_done', 0)}/{progress.get('cases_total', 0)} cases  "
        f"{package.get('name', '')} {package.get('version', '')}"
    )


def cmd_runs_list(args: argparse.Namespace) -> int:
    path = "runs/" + (f"?status={args.status}" if args.status else "")
    for run in api_for(args).list(path):
        print(run["id"] if args.quiet else _run_line(run))
    return OK


def cmd_runs_start(args: argparse.Namespace) -> int:
    run = api_for(args).post(
        "runs/",
        {
            "package": args.package,
            "dataset_version": args.dataset_version,
            "protocol": args.protocol,
        },
    )
    print(run["id"] if args.quiet else f"run {run['id']}: {run['status']}")
    return OK


def _stage_line(run: dict) -> str:
    status = run["status"]
    marks = []
    for stage in RUN_STAGES:
        if stage == status:
            marks.append(f"[{stage}]")
        elif status in RUN_STAGES and RUN_STAGES.index(stage) < RUN_STAGES.index(status):
            marks.append(f"{stage} ✓")
    return " → ".join(marks) if marks else status


def cmd_watch(args: argparse.Namespace) -> int:
    api = api_for(args)
    bar = Bar()
    deadline = time.monotonic() + args.timeout
    last_status = ""
    try:
        while True:
            run = api.get(f"runs/{args.run}/")
            progress = run.get("progress") or {}
            done, total = progress.get("cases_done", 0), progress.get("cases_total", 0)
            shards = ((run.get("execution") or {}).get("per_shard")) or []
            shard_text = ""
            if shards:
                finished = sum(1 for s in shards if s.get("status") == "done")
                shard_text = f", shards {finished}/{len(shards)}"
            if run["status"] != last_status:
                bar.close()
                err(f"run {run['id']}: {_stage_line(run)}")
                last_status = run["status"]
            bar.update(done, total or 1, f"{done}/{total} cases{shard_text} ({run['status']})")
            if run["status"] in RUN_ENDED:
                break
            if time.monotonic() > deadline:
                raise Failure(
                    FAILED, f"run {run['id']} is still {run['status']} after {args.timeout:.0f} s"
                )
            time.sleep(args.interval)
    finally:
        bar.close()
    seconds = run.get("stage_seconds") or {}
    if seconds:
        err("stages: " + ", ".join(f"{k} {v} s" for k, v in seconds.items()))
    if run["status"] in ("failed", "cancelled"):
        raise Failure(
            FAILED,
            f"run {run['id']}: {run['status']}" + (f": {run['error']}" if run.get("error") else ""),
        )
    print(f"run {run['id']}: {run['status']}")
    return OK


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def _metric_rows(primary: dict) -> list[tuple[str, str, str, str]]:
    rows = []
    for name, value in primary.items():
        if isinstance(value, dict) and "estimate" in value:
            rows.append(
                (
                    name,
                    _number(value["estimate"]),
                    _number(value.get("lower")),
                    _number(value.get("upper")),
                )
            )
    return rows


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    return [line(header), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]


def cmd_results(args: argparse.Namespace) -> int:
    results = api_for(args).get(f"runs/{args.run}/results/")
    if args.json:
        print(json.dumps(results, indent=2))
        return OK
    primary = results.get("primary") or {}
    counts = primary.get("counts") or {}
    if counts:
        print("cases: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    rows = _metric_rows(primary)
    if rows:
        print("\n".join(_table(rows, ("metric", "estimate", "95% lower", "95% upper"))))
    acceptance = results.get("acceptance") or {}
    criteria = acceptance.get("criteria") if isinstance(acceptance, dict) else None
    if criteria:
        print("\nacceptance criteria:")
        for c in criteria:
            verdict = (
                "NOT JUDGEABLE"
                if c.get("judgeable") is False
                else ("PASS" if c.get("passed") else "FAIL")
            )
            observed = (
                f" (observed {_number(c['observed'])})" if c.get("observed") is not None else ""
            )
            print(f"  {verdict}  {c.get('name') or c.get('metric')}{observed}")
    if isinstance(acceptance, dict) and "verdict" in acceptance:
        print(f"\nverdict: {str(acceptance['verdict']).upper()}")
    subgroups = results.get("subgroups") or []
    if subgroups:
        print(f"\nsubgroups: {len(subgroups)} cells (`--json` for every number)")
    return OK


# --- reports -------------------------------------------------------------------------------


def cmd_report_list(args: argparse.Namespace) -> int:
    for report in api_for(args).list("reports/"):
        if args.run is not None and report.get("run") != args.run:
            continue
        if args.quiet:
            print(report["id"])
        else:
            print(
                f"{report['id']:>5}  {report['reference']} v{report['version']}  "
                f"{report['status']}  run {report['run']}"
            )
    return OK


def cmd_report_sign(args: argparse.Namespace) -> int:
    api = api_for(args)
    password = (
        sys.stdin.readline().rstrip("\r\n")
        if args.password_stdin
        else getpass.getpass("Password (re-entered to sign): ")
    )
    report = api.post(
        f"reports/{args.report}/sign/", {"password": password, "meaning": args.meaning}
    )
    deadline = time.monotonic() + args.timeout
    while report["status"] == "issuing" and time.monotonic() < deadline:
        time.sleep(1)
        report = api.get(f"reports/{args.report}/")
    print(f"report {report['id']} ({report['reference']} v{report['version']}): {report['status']}")
    return OK


def cmd_report_download(args: argparse.Namespace) -> int:
    api = api_for(args)
    report = api.get(f"reports/{args.report}/")
    kind = "dicom" if args.dicom else "pdf"
    suffix = "dcm" if args.dicom else "pdf"
    out: Path = args.output or Path(f"{report['reference']}-v{report['version']}.{suffix}")
    tmp = out.with_name(out.name + ".part")
    bar = Bar()
    try:
        with tmp.open("wb") as handle:
            written = api.download(
                f"reports/{args.report}/{kind}/",
                handle,
                progress=lambda d, t: bar.update(d, t or d, human_bytes(d)),
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    tmp.replace(out)
    print(f"wrote {out} ({human_bytes(written)}); `blindspot report verify {out}` checks it")
    return OK


def cmd_report_verify(args: argparse.Namespace) -> int:
    from blindspot_client.verify import signature_check

    path: Path = args.file
    if not path.is_file():
        raise Failure(USAGE, f"{path} does not exist or is not a file")
    api = api_for(args)
    answer = api.upload("reports/verify/", path)
    status = answer.get("status", "unknown")
    report = answer.get("report") or {}
    name = f"{report['reference']} v{report['version']}" if report else "a report"
    lines = {
        "issued-current": f"{path}: the issued, current version of {name}",
        "superseded": f"{path}: an issued report ({name}), superseded by a newer version",
        "altered": f"{path}: ALTERED: not the issued "
        f"{'DICOM object' if answer.get('format') == 'dicom' else 'PDF'} of {name}",
        "unknown": f"{path}: UNKNOWN: not a report this service issued",
    }
    print(lines.get(status, f"{path}: {status}"))
    if answer.get("detail"):
        print(f"  {answer['detail']}")
    if not args.no_offline:
        key = Api(api.url).get("signing-key/")
        check = signature_check(path.read_bytes(), key["public_key_pem"])
        print(f"  offline: {check.detail} (key {key['fingerprint'][:23]}…)")
        if status == "issued-current" and not check.ok:
            return FAILED
    return OK if status == "issued-current" else FAILED


# --- the parser ----------------------------------------------------------------------------


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        help="the server (default: $BLINDSPOT_URL, then the one you logged in to, then "
        f"{DEFAULT_URL})",
    )
    group.add_argument(
        "--token", help="an API token (default: $BLINDSPOT_TOKEN, then the one `login` stored)"
    )


def _positive_id(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("an id is a positive number")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="blindspot",
        description="Blindspot's client: build and check model packages, submit them, follow "
        "validation runs, read aggregate results, download and verify reports.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"blindspot {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        *,
        under=commands,
        connect: bool = True,
    ) -> argparse.ArgumentParser:
        sub = under.add_parser(name, help=help_text, description=help_text)
        if connect:
            _connection_options(sub)
        sub.set_defaults(handler=handler)
        return sub

    def group(name: str, help_text: str):
        """A command with subcommands (`blindspot packages list`)."""
        parser = commands.add_parser(name, help=help_text, description=help_text)
        return parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")

    p = add(
        "login",
        cmd_login,
        "Get an API token with your username and password and store it "
        f"(in {credentials_path()}, mode 0600).",
    )
    p.add_argument("--username", help="default: asked")
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (default: asked, not echoed)",
    )
    p.add_argument(
        "--otp",
        help="the current code of your authenticator app, where your organisation requires "
        "a second factor",
    )
    p.add_argument(
        "--name",
        default="blindspot CLI",
        help="the token's name, as the web app's API tokens page lists it",
    )

    p = add(
        "build",
        cmd_build,
        "Build a package from a PyTorch model (needs torch: the [build] extra). "
        "Lists every problem at once.",
        connect=False,
    )
    p.add_argument(
        "--model",
        required=True,
        help="module:callable returning your nn.Module, e.g. lesionfinder.model:build",
    )
    p.add_argument(
        "--weights",
        type=Path,
        help="a state dict file to load into the model (read with torch.load(weights_only=True))",
    )
    p.add_argument(
        "--manifest",
        type=Path,
        required=True,
        help="the manifest.json to embed (docs/PACKAGE_FORMAT.md)",
    )
    p.add_argument(
        "--example-batch",
        type=int,
        default=2,
        help="the example batch size used to export (at least 2; default 2)",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="the package to write, e.g. lesionfinder-1.0.tar.gz"
    )
    p.add_argument(
        "--format",
        choices=["pt2", "onnx"],
        default="pt2",
        help="torch.export program (default) or ONNX (no Grad-CAM)",
    )
    p.add_argument(
        "--path",
        type=Path,
        action="append",
        default=[],
        help="a folder to put on sys.path for --model (repeatable)",
    )
    p.add_argument(
        "--supersedes",
        metavar="VERSION",
        help="the version of this model (same name) that this package succeeds; written into "
        "the manifest's `supersedes` (intake refuses a version you never submitted)",
    )

    p = add(
        "check",
        cmd_check,
        "Run intake's checks on a package locally (safe reader, manifest) and a local smoke test.",
        connect=False,
    )
    p.add_argument("package", type=Path)
    p.add_argument(
        "--no-smoke",
        action="store_true",
        help="skip the smoke test (which loads the model: needs torch)",
    )

    p = add(
        "submit",
        cmd_submit,
        "Upload a package (with a progress bar) and follow the service's smoke test to "
        "submitted or refused.",
    )
    p.add_argument("package", type=Path)
    p.add_argument("--no-wait", action="store_true", help="return after the upload")
    p.add_argument(
        "--timeout",
        type=float,
        default=600,
        help="seconds to wait for the smoke test (default 600)",
    )
    p.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the package id on stdout")

    pk = group("packages", "List, show and (validation team) review packages.")
    p = add("list", cmd_packages_list, "The packages you may see.", under=pk)
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p = add("show", cmd_packages_show, "One package: status, refusal reasons.", under=pk)
    p.add_argument("package", type=_positive_id)
    p.add_argument("--json", action="store_true")
    p = add(
        "review",
        cmd_packages_review,
        "Approve or reject a submitted package (validation team).",
        under=pk,
    )
    p.add_argument("package", type=_positive_id)
    p.add_argument("decision", choices=["approve", "reject"])
    p.add_argument("--note", default="", help="the review note the vendor reads")

    ds = group("datasets", "List the dataset versions you may see (their ids start runs).")
    p = add("list", cmd_datasets_list, "Each dataset version: id, name, state, cases.", under=ds)
    p.add_argument("-q", "--quiet", action="store_true", help="version ids only")

    pr = group("protocols", "List the protocols you may see (their ids start runs).")
    p = add("list", cmd_protocols_list, "Each protocol: id, name and version, locked.", under=pr)
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")

    rn = group("runs", "List and (validation team) start validation runs.")
    p = add("list", cmd_runs_list, "The runs you may see.", under=rn)
    p.add_argument("--status", help="only runs in this state")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p = add(
        "start",
        cmd_runs_start,
        "Start a blind run: a package on a dataset version under a locked protocol "
        "(validation team).",
        under=rn,
    )
    p.add_argument("--package", type=_positive_id, required=True)
    p.add_argument("--dataset-version", type=_positive_id, required=True)
    p.add_argument("--protocol", type=_positive_id, required=True)
    p.add_argument("-q", "--quiet", action="store_true", help="print only the run id")

    p = add(
        "watch",
        cmd_watch,
        "Follow a run's progress (state, stages, cases and shards, a bar) until it ends.",
    )
    p.add_argument("run", type=_positive_id)
    p.add_argument(
        "--timeout", type=float, default=3600, help="give up after this many seconds (default 3600)"
    )
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")

    p = add(
        "results", cmd_results, "A run's aggregate results as a table (--json: the whole document)."
    )
    p.add_argument("run", type=_positive_id)
    p.add_argument("--json", action="store_true")

    rp = group("report", "List, sign, download and verify reports.")
    p = add("list", cmd_report_list, "The reports you may see.", under=rp)
    p.add_argument("--run", type=_positive_id, help="only this run's reports")
    p.add_argument("-q", "--quiet", action="store_true", help="ids only")
    p = add(
        "sign",
        cmd_report_sign,
        "Sign a report (validation team; Part 11: re-enter your password).",
        under=rp,
    )
    p.add_argument("report", type=_positive_id)
    p.add_argument("--meaning", choices=["reviewed", "approved"], required=True)
    p.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    p.add_argument("--timeout", type=float, default=300, help=argparse.SUPPRESS)
    p = add("download", cmd_report_download, "Download a report's PDF (or DICOM).", under=rp)
    p.add_argument("report", type=_positive_id)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the file to write (default: REFERENCE-vN.pdf, or .dcm, here)",
    )
    p.add_argument(
        "--dicom",
        action="store_true",
        help="the report as a DICOM Encapsulated PDF object, for a PACS (same PDF inside)",
    )
    p = add(
        "verify",
        cmd_report_verify,
        "Ask the service whether a PDF (or the report's DICOM object) is an issued, current "
        "report, and check its Ed25519 signature offline.",
        under=rp,
    )
    p.add_argument("file", type=Path)
    p.add_argument("--no-offline", action="store_true", help="skip the offline signature check")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except Failure as exc:
        err(*exc.lines)
        return exc.status
    except ApiError as exc:
        err(*exc.lines())
        return FAILED if exc.status != 400 else USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
