"""`python -m training`: one fine-tuning run in its own process, progress as JSON lines on stdout.

The window and `glimpse tune` start this as a child process (`app.tasks.tune`), so torch never loads
into the window, and cancel is a real signal: SIGTERM stops the run without installing anything, and a
SIGKILL leaves at most a `.staging-*` folder that the store sweeps. Under `torchrun` every rank runs
this; only rank 0 writes events and installs.

Events, one JSON object a line, flushed:
  {"event": "start", "mode", "device", "pairs", "train", "held_out", "distinct", "epochs", "batch_size", "estimate_s"}
  {"event": "progress", "stage": "prepare|cache|train|evaluate|export", "done", "total", "eta_s", "loss"?}
  {"event": "epoch", "epoch", "loss", "r5"}
  {"event": "note", "message"}
  {"event": "plan", ...start..., "model", "base", "lr", "bank", "before", "fingerprint"}   (--dry-run, last)
  {"event": "result", "model", "base", "mode", "device", "before", "after", "agreement", "alpha",
   "seconds", "pairs_per_s", "image_space", "fingerprint", "examples": [{"caption", "paths"}]}
  {"event": "error", "message"}: then exit 1, or 2 when the run refused to start.
"""
from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training", description="Fine-tune a stored model on captions.")
    p.add_argument("--data", required=True, type=Path, help="the training set folder (training.data)")
    p.add_argument("--store", required=True, type=Path, help="the model store folder")
    p.add_argument("--base", required=True, help="the id of the stored model to start from")
    p.add_argument("--mode", default="text", choices=("text", "quick", "lora", "full"))
    p.add_argument("--epochs", type=int)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--name", help="id of the new model (default: BASE-tuned, numbered when taken)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--bank", action=argparse.BooleanOptionalAction, default=None,
                   help="all captioned training photos as extra negatives (text and quick modes)")
    p.add_argument("--dry-run", action="store_true", help="load, split, evaluate the base and print the plan")
    return p


def _clean(value):
    """JSON has no NaN or infinity: such numbers become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(_clean(event), ensure_ascii=True) + "\n")
    sys.stdout.flush()


class _Terminated(BaseException):
    pass


def _on_sigterm(signum, frame):
    raise _Terminated()


def _stop_with_parent() -> None:
    """A parent that dies (the window killed, a crash) takes the run with it: no orphan keeps training."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _stop_with_parent()
    from model.jobs import Cancelled

    from . import distributed
    from .run import Failed, Options, Refused, run

    opts = Options(args.data, args.store, args.base, args.mode, args.epochs, args.device, args.name, args.seed,
                   args.batch_size, args.lr, args.bank, args.dry_run)
    try:
        result = run(opts, emit)
        if result:
            emit(result)
        return 0
    except Refused as e:
        emit({"event": "error", "message": str(e)})
        return 2
    except Failed as e:
        emit({"event": "error", "message": str(e)})
        return 1
    except (_Terminated, KeyboardInterrupt, Cancelled):
        emit({"event": "error", "message": "Fine-tuning was cancelled; nothing was installed."})
        return 1
    except Exception as e:  # noqa: BLE001  the parent shows one line; the traceback goes to stderr
        import traceback

        traceback.print_exc()
        emit({"event": "error", "message": f"Fine-tuning failed ({type(e).__name__}: {e}); nothing was installed."})
        return 1
    finally:
        distributed.close()


if __name__ == "__main__":
    sys.exit(main())
