"""`llem run` in serving mode against a fake OpenAI server: the result, the dry run, and
every way it can fail with one clear line and exit 2."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from llenergymeasure.cli import serving as cli_serving
from llenergymeasure.cli.app import main
from llenergymeasure.config.loading import UserConfig
from llenergymeasure.config.models import ExperimentConfig
from llenergymeasure.experiment.serving_plan import plan_serving
from llenergymeasure.records.files import load_result
from llenergymeasure.serving.server import free_port
from llenergymeasure.testing.fake_openai_server import FakeOpenAIServer


def _config(tmp_path: Path, serving: dict[str, object], **top: object) -> Path:
    data = {
        "mode": "serving",
        "task": {"dataset": {"n_prompts": 4}, "max_output_tokens": 8},
        "serving": serving,
        "measurement": {"warmup": {"n_warmup": 1}, "baseline": {"enabled": False}},
        **top,
    }
    path = tmp_path / "serving.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_serving_run_prints_its_result_and_writes_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer(ttft_ms=20, itl_ms=10, n_tokens=8) as server:
        serving = {"endpoint": server.url, "arrival": {"rate": 5}, "duration_s": 3}
        config = _config(tmp_path, serving)
        code, out, err = _run(["run", str(config), "--json", "-o", str(tmp_path / "r")], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["mode"] == "serving"
    s = result["serving"]
    assert s["arrival"]["requested_rate_per_s"] == 5
    assert s["arrival"]["achieved_rate_per_s"] > 0
    assert s["window"]["duration_s"] > 0
    assert s["latency"]["ttft"]["p50_ms"] > 0 and s["latency"]["itl"]["n"] > 0
    assert s["latency"]["e2e"]["p99_ms"] > 0
    assert "goodput" in s and "j_per_request" in s
    [folder] = list((tmp_path / "r").glob("*/001_c1_*"))
    assert load_result(folder).serving is not None  # what was written reads back
    code, out, err = _run(["results", "show", str(folder)], capsys)
    assert code == 0, err
    assert "steady-state window" in out
    code, _, err = _run(["results", "report", str(folder)], capsys)
    assert code == 0, err
    [report] = list((tmp_path / "r").rglob("report.html"))
    html = report.read_text(encoding="utf-8")
    assert 'id="serving"' in html and "One offered rate" in html


def test_the_table_shows_the_serving_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer(ttft_ms=20, itl_ms=10, n_tokens=8) as server:
        serving = {"endpoint": server.url, "arrival": {"rate": 5}, "duration_s": 2}
        code, out, err = _run(["run", str(_config(tmp_path, serving))], capsys)
    assert code == 0, err
    for row in ("steady-state window", "goodput", "inter-token (every gap)", "energy per request"):
        assert row in out


def test_the_dry_run_shows_the_schedule_and_window_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer() as server:
        serving = {"endpoint": server.url, "arrival": {"process": "constant", "rate": 2}}
        code, out, err = _run(["run", str(_config(tmp_path, serving)), "--dry-run"], capsys)
        assert server.n_requests == 0
    assert code == 0, err
    assert "120 arrivals over 60.0 s" in out  # the default 60 s at 2 req/s
    assert "first arrivals at (s): 0.500, 1.000" in out
    assert "starts at the latest at 30.0 s; ends at 60.0 s" in out


def test_the_dry_run_checks_as_strictly_as_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []

    def recording(config: ExperimentConfig, *, user: UserConfig, strict: bool = False) -> object:
        seen.append(strict)
        return plan_serving(config, user=user, strict=strict)

    monkeypatch.setattr(cli_serving, "plan_serving", recording)
    with FakeOpenAIServer() as server:
        config = _config(tmp_path, {"endpoint": server.url, "arrival": {"rate": 2}})
        for flags in ([], ["--strict"]):
            code, _, err = _run(["run", str(config), "--dry-run", *flags], capsys)
            assert code == 0, err
    assert seen == [False, True]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_an_unreachable_endpoint_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    code, _, err = _run(["run", str(_config(tmp_path, {"endpoint": url}))], capsys)
    assert code == 2
    assert "cannot reach the server" in _one_error_line(err)


def test_a_server_that_is_not_openai_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer(openai=False) as server:
        serving = {"endpoint": server.url, "duration_s": 2, "arrival": {"rate": 2}}
        code, _, err = _run(["run", str(_config(tmp_path, serving))], capsys)
    assert code == 2
    assert "OpenAI" in _one_error_line(err)


def test_a_launch_port_in_use_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, {"launch": {"port": port}}, engine="vllm")
        code, _, err = _run(["run", str(config)], capsys)
    assert code == 2
    assert f"port {port} on 127.0.0.1 is in use" in _one_error_line(err)


def test_a_server_dying_mid_run_fails_the_run_and_keeps_the_partial_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer(ttft_ms=20, itl_ms=10, n_tokens=8, stop_after_requests=6) as server:
        serving = {"endpoint": server.url, "arrival": {"rate": 10}, "duration_s": 5}
        out_dir = tmp_path / "r"
        code, _, err = _run(["run", str(_config(tmp_path, serving)), "-o", str(out_dir)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "stopped answering" in line and "partial.json" in line
    [partial] = list(out_dir.glob("*/partial.json"))
    data = json.loads(partial.read_text())
    assert data["complete"] is False and data["reason"]
    assert any(r["done_s"] is not None for r in data["requests"])  # what finished is kept


def test_every_request_failing_fails_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAIServer(status=500) as server:
        serving = {"endpoint": server.url, "arrival": {"rate": 5}, "duration_s": 1}
        config = _config(tmp_path, serving)
        data = yaml.safe_load(config.read_text())
        data["measurement"]["warmup"] = {"enabled": False}
        config.write_text(yaml.safe_dump(data), encoding="utf-8")
        code, _, err = _run(["run", str(config), "-o", str(tmp_path / "r")], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "every request failed" in line and "HTTP 500" in line
    assert list((tmp_path / "r").glob("*/partial.json"))
