"""The `glimpse` command as a new user tries it: import, list, use, info, remove, pull offline, doctor."""
from __future__ import annotations

import json

from conftest import run_glimpse


def _no_traceback(result):
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_import_list_use_info_remove(tiny_folder, glimpse_home):
    r = run_glimpse("models", "import", str(tiny_folder), "--name", "my-model")
    assert r.returncode == 0, r.stderr
    assert "Installed 'my-model'" in r.stdout and "now the active model" in r.stdout

    r = run_glimpse("models", "list")
    assert r.returncode == 0 and "* my-model" in r.stdout and "dim 32" in r.stdout

    settings = json.loads((glimpse_home / "config" / "settings.json").read_text())
    assert settings["active_model"] == "my-model"

    r = run_glimpse("models", "info", "my-model")
    assert r.returncode == 0 and "checksums     ok" in r.stdout and "clip-bpe" in r.stdout

    r = run_glimpse("models", "use", "my-model")
    assert r.returncode == 0 and "Active model: my-model" in r.stdout

    r = run_glimpse("models", "remove", "my-model")
    assert r.returncode == 0 and "No model is active now" in r.stdout
    assert not (glimpse_home / "data" / "models" / "my-model").exists()
    r = run_glimpse("models", "list")
    assert "No models installed" in r.stdout


def test_damaged_model_is_reported_in_one_line(tiny_folder, glimpse_home):
    assert run_glimpse("models", "import", str(tiny_folder)).returncode == 0
    onnx_file = glimpse_home / "data" / "models" / tiny_folder.name / "visual.onnx"
    onnx_file.write_bytes(b"\x08garbage" * 10)
    r = run_glimpse("models", "list")
    assert r.returncode == 0 and "DAMAGED" in r.stdout and "pull or import it again" in r.stdout
    r = run_glimpse("models", "info")
    assert r.returncode == 1 and "damaged" in r.stderr and "glimpse models remove" in r.stderr
    _no_traceback(r)


def test_pull_offline_fails_at_once_with_a_way_forward():
    # A closed port on this machine: refused at once, as an offline machine's lookup fails.
    r = run_glimpse("models", "pull", env={"HF_ENDPOINT": "http://127.0.0.1:9"}, timeout=20)
    assert r.returncode == 1
    assert "cannot reach the Hugging Face Hub" in r.stderr and "glimpse models import PATH" in r.stderr
    _no_traceback(r)
    r = run_glimpse("models", "pull", "mobileclip2-s0", env={"HF_HUB_OFFLINE": "1"}, timeout=20)
    assert r.returncode == 1 and "HF_HUB_OFFLINE is set" in r.stderr
    _no_traceback(r)


def test_bad_input_gets_one_clear_line(tmp_path):
    cases = [
        (("models", "frobnicate"), 2, "invalid choice"),
        (("models", "import", str(tmp_path / "missing")), 1, "does not exist"),
        (("models", "import", str(tmp_path)), 1, "no open_clip_config.json"),
        (("models", "use", "nothing"), 1, "No model named 'nothing'"),
        (("models", "remove", "nothing"), 1, "No model named 'nothing'"),
        (("models", "pull", "no-such-model"), 1, "Unknown model 'no-such-model'"),
        (("models", "info"), 1, "No model yet"),
        (("models", "import", str(tmp_path), "--name", "../bad name"), 1, "cannot name a model"),
    ]
    for args, code, message in cases:
        r = run_glimpse(*args)
        assert r.returncode == code, (args, r.stderr)
        assert message in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        _no_traceback(r)


def test_help_shows_the_commands():
    """(`glimpse` alone opens the window: tests/test_gui_model.py.)"""
    r = run_glimpse("--help")
    assert r.returncode == 0 and "models" in r.stdout and "doctor" in r.stdout


def test_doctor_reports_providers_folders_and_model(tiny_folder, glimpse_home):
    r = run_glimpse("doctor")
    assert r.returncode == 1 and "No model yet" in r.stdout  # says what is missing
    assert run_glimpse("models", "import", str(tiny_folder)).returncode == 0
    r = run_glimpse("doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    for line in ("onnxruntime", "providers built", "provider in use    CPUExecutionProvider", "CUDA usable        no",
                 f"data               {glimpse_home / 'data'}", f"active             {tiny_folder.name}",
                 "checksums ok", "text encoder runs  on CPUExecutionProvider"):
        assert line in r.stdout, line
    assert "torch " in r.stdout  # versions listed without importing it


def test_damaged_settings_are_set_aside_with_a_warning(glimpse_home):
    settings = glimpse_home / "config" / "settings.json"
    settings.parent.mkdir(parents=True)
    settings.write_text("{ half written")
    r = run_glimpse("models", "list")
    assert r.returncode == 0 and "was unreadable" in r.stderr and "using defaults" in r.stderr
    kept = list(settings.parent.glob("settings.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{ half written"


def test_a_full_disk_message_names_the_folder(glimpse_home):
    """Without a real full disk (see test_cli_library for one): the errors a full disk really raises."""
    import errno
    import os

    from app.cli import no_space_message

    (glimpse_home / "config").mkdir(parents=True)
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if os.path.exists("/dev/full"):  # the kernel's own ENOSPC
        try:
            with open("/dev/full", "w") as f:
                f.write("x")
        except OSError as e:
            enospc = e
    assert enospc.errno == errno.ENOSPC

    text = no_space_message(enospc, "index")
    assert text.startswith("glimpse: no space left on ") and "\n" not in text
    assert "(the catalog)" in text and "run `glimpse index` again" in text and "nothing was lost" in text

    settings = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(glimpse_home / "config" / "settings.json"))
    text = no_space_message(settings, "folders")
    assert f"no space left on {glimpse_home / 'config'} (the settings)" in text and "try again" in text

    # LanceDB's own error, raised while handling an OSError or on its own: found by its message.
    try:
        try:
            raise enospc
        except OSError:
            raise RuntimeError("lance error: LanceError(IO): No space left on device (os error 28), writer.rs:258")
    except RuntimeError as e:
        assert "(the catalog)" in no_space_message(e, "index")
    lance = RuntimeError("lance error: LanceError(IO): No space left on device (os error 28)")
    assert "(the catalog)" in no_space_message(lance, "index")
    assert no_space_message(RuntimeError("lance error: something else"), "index") is None
    assert no_space_message(OSError(errno.EACCES, "Permission denied"), "index") is None


def test_every_command_the_messages_mention_exists():
    """Messages and docs point users at commands; each must parse (`glimpse models archs` did not)."""
    import argparse
    import re
    from pathlib import Path

    from app.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    sources = [p for d in ("app", "model", "training") for p in (root / d).rglob("*.py")]
    sources += [root / "README.md", *(root / "docs").glob("*.md")]
    mentioned = {m for p in sources for m in re.findall(r"`glimpse ([^`]*)`", p.read_text(encoding="utf-8"))}
    assert "models list --available" in mentioned

    def check(words: list[str]) -> None:
        parser = build_parser()
        for w in words:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if w.startswith("-"):
                assert w.split("=")[0] in parser._option_string_actions, (words, w)
            elif subs and not (w.isupper() or w.startswith(("{", "…", "["))):
                assert w in subs[0].choices, (words, w)
                parser = subs[0].choices[w]
            else:
                return

    for command in mentioned:
        words = command.split("|", 1)[0].split() if " | " in command else command.split()
        if words and "|" in words[-1]:  # `glimpse models list|info|pull`: each of them
            for alternative in words[-1].split("|"):
                check(words[:-1] + [alternative])
        else:
            check(words)


def test_unknown_architecture_points_at_a_real_command(tmp_path):
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"")
    r = run_glimpse("models", "import", str(weights), "--arch", "ViT-B-23")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Unknown architecture 'ViT-B-23' (did you mean ViT-B-32" in r.stderr
    assert "`glimpse models list --available`" in r.stderr
    _no_traceback(r)


def test_the_window_closes_on_ctrl_c_and_says_why_it_cannot_open(glimpse_home):
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no display" in r.stderr, r.stderr

    window = subprocess.Popen([sys.executable, "-m", "app"], cwd=ROOT, env={**env, "QT_QPA_PLATFORM": "offscreen"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # on screen, the library opening in the background
    assert window.poll() is None
    window.send_signal(signal.SIGINT)
    out, err = window.communicate(timeout=30)
    assert window.returncode == 0 and "Traceback" not in err, err


def test_full_output_and_a_full_model_store_are_named_as_such(glimpse_home):
    from app.cli import no_space_message

    full = OSError(28, "No space left on device")  # no file name: the caller knows what it wrote
    assert "the device the output goes to" in no_space_message(full, "search")
    assert "(the models)" in no_space_message(RuntimeError("lance error: No space left on device"), "models")
