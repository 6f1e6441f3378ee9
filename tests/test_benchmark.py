"""tools/benchmark.py's real-time and video cases, run in-process on tiny inputs."""

import json

import pytest
from conftest import tool_module

pytest.importorskip("av")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def benchmark():
    with tool_module("benchmark") as module:
        yield module


def test_quick_realtime_and_video_sections(benchmark, monkeypatch, tmp_path):
    # In-process: a child process per case would import torch once per case.
    monkeypatch.setattr(benchmark, "isolated", lambda fn, **kwargs: fn(**kwargs))
    out = tmp_path / "bench.json"
    argv = ["--quick", "--device", "cpu", "--size", "32", "--batch", "2", "--json", str(out)]
    results = benchmark.main([*argv, "--only", "realtime", "--only", "video"])
    assert json.loads(out.read_text())["realtime"] == results["realtime"]
    assert "training" not in results

    backends = [*benchmark.precisions("cpu"), "onnx"]
    rows = {(r["model"], r["backend"]): r for r in results["realtime"]}
    assert set(rows) == {
        (m, b) for m in ("student", "mobile_student", "resnet_9blocks", "demo") for b in backends
    }
    for row in rows.values():
        assert 0 < row["p50 ms"] <= row["p95 ms"]
        assert row["frames/s"] > 0
    # The student is the 20x-fewer-MACs model the issue asks for.
    assert rows["resnet_9blocks", "fp32"]["GMAC"] / rows["student", "fp32"]["GMAC"] > 20

    (video,) = [r for r in results["video"] if r["precision"] == "fp32"]
    assert video["batch"] == 2 and video["video frames/s"] > 0 and video["forward frames/s"] > 0
    assert video["video/forward"] == pytest.approx(
        video["video frames/s"] / video["forward frames/s"]
    )


def test_unknown_section_is_refused(benchmark):
    with pytest.raises(SystemExit):
        benchmark.main(["--only", "realtime", "--only", "nonesuch"])


@pytest.mark.slow
def test_backends_section_names_the_cpu_flags(benchmark, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(benchmark, "isolated", lambda fn, **kwargs: fn(**kwargs))
    monkeypatch.setenv("TRANSLATE_HOME", str(tmp_path))  # the exported graphs' cache
    threads = benchmark.torch.get_num_threads()
    argv = ["--quick", "--device", "cpu", "--size", "32", "--only", "backends"]
    more = ["--models", "demo", "--models", "student", "--threads", "1", "--threads", "2"]
    more += ["--skip-compiled"]  # compiling takes minutes on 2 cores (tests/test_compile.py)
    results = benchmark.main([*argv, *more, "--convert-images", "3"])
    assert benchmark.torch.get_num_threads() == threads  # set inside the case only
    rows = {
        (r["model"], r["backend"], r["precision"], r["threads"]): r
        for r in results["backends"]
        if "backend" in r
    }
    converts = [r["convert"] for r in results["backends"] if "convert" in r]
    assert converts == list(benchmark.CONVERT_SETTINGS)
    runs = {("torch", p) for p in benchmark.precisions("cpu")}
    runs |= {("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    if benchmark.importlib.util.find_spec("openvino") is not None:  # an optional extra
        runs |= {("openvino", p) for p in [*benchmark.precisions("cpu"), "int8"]}
    assert set(rows) == {(m, *run, t) for m in ("demo", "student") for run in runs for t in (1, 2)}
    for (model, _, precision, threads), row in rows.items():
        assert 0 < row["p50 ms"] <= row["p95 ms"] and row["frames/s"] > 0 and row["load"] >= 0
        assert ("convert img/s" in row) == (model == "demo")  # the demo converts the folder
        assert ("int8 PSNR" in row) == (precision == "int8")
        base = rows[model, "torch", "fp32", threads]
        assert row["speed-up vs torch fp32"] == pytest.approx(base["p50 ms"] / row["p50 ms"])
    flags = results["machine"]["cpu flags"]
    out = capsys.readouterr().out
    assert f"cpu flags: {flags}," in out and "demo converting 3 PNGs" in out
    cpu = benchmark.cpu_info()
    assert ("avx512_bf16" in flags.split()) == ("avx512_bf16" in cpu.flags)


def test_converter_defaults_against_the_converter_before(benchmark, tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    folder = benchmark.png_folder(tmp_path, 2, 32)
    threads = benchmark.torch.get_num_threads()
    rows = [
        {"model": "demo", "convert": name, **benchmark.convert_settings_case(name, str(folder))}
        for name in benchmark.CONVERT_SETTINGS
    ]
    results = {"backends": rows}
    benchmark.add_ratios(results)
    defaults, before = rows
    assert (before["precision"], before["png level"]) == ("fp32", 6)
    auto = "bf16" if benchmark.cpu_info().native_bf16 else "fp32"
    assert (defaults["precision"], defaults["png level"]) == (auto, 1)
    assert defaults["threads"] == before["threads"] == threads  # the model on torch's threads
    assert before["convert vs before"] == 1.0
    assert defaults["convert vs before"] == pytest.approx(
        defaults["convert img/s"] / before["convert img/s"]
    )


@pytest.mark.slow  # seven networks, three backends: a minute on an idle 2-core CPU
def test_quick_sr_section(benchmark, monkeypatch, tmp_path):
    monkeypatch.setattr(benchmark, "isolated", lambda fn, **kwargs: fn(**kwargs))
    argv = ["--quick", "--device", "cpu", "--size", "32", "--batch", "2", "--only", "sr"]
    results = benchmark.main(argv)
    assert set(results) >= {"machine", "sr"} and "realtime" not in results

    steps = {(r["network"], r["step"], r["precision"]): r for r in results["sr"] if "step" in r}
    ours = [(n, "ours", p) for n in benchmark.SR_TRAINING for p in benchmark.precisions("cpu")]
    basicsr = [(n, "BasicSR-style", "fp32") for n in benchmark.SR_TRAINING]
    assert set(steps) == {*ours, *basicsr}
    for (network, _, _), row in steps.items():
        assert row["it/s"] > 0 and row["peak MB"] > 0
        assert row["vs BasicSR"] == pytest.approx(
            row["it/s"] / steps[network, "BasicSR-style", "fp32"]["it/s"]
        )

    sizes = {r["model"]: r for r in results["sr"] if "M params" in r}
    assert set(sizes) == set(benchmark.SR_SIZES)
    # Real-ESRGAN's compact x4 (num_feat 64, num_conv 16) and ESRGAN's RRDBNet (16.7 M).
    assert sizes["srvgg_compact"]["M params"] == pytest.approx(0.621, abs=1e-3)
    assert sizes["rrdbnet"]["M params"] == pytest.approx(16.70, abs=0.01)
    # MACs grow with the input's pixels: 32x32 here, so 1/64 of a 256x256 input's.
    assert sizes["rrdbnet"]["GMAC"] / sizes["srvgg_compact"]["GMAC"] > 20

    latency = {(r["model"], r["backend"]): r for r in results["sr"] if "backend" in r}
    backends = [*benchmark.precisions("cpu"), "onnx"]
    assert set(latency) == {(m, b) for m in benchmark.SR_REALTIME for b in backends}
    for row in latency.values():
        assert 0 < row["p50 ms"] <= row["p95 ms"] and row["frames/s"] > 0
