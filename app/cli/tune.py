"""`glimpse tune`: fine-tune the active model on the user's captions (in a child process)."""
from __future__ import annotations

import argparse
import json
import sys

from .context import Context
from .library import _positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("tune", help="fine-tune the model on your own captions",
                       description="Teach the model your own words (people, places, events) from the captions "
                                   "in your library, then make it active when it finds held-out photos better.")
    p.add_argument("--mode", choices=("text", "quick", "lora", "full"), default="text",
                   help="text: the text tower only, any CPU, no re-indexing (default); quick: only the text "
                        "projection, seconds; lora/full: both towers, for a GPU, then re-indexes")
    p.add_argument("--epochs", type=_positive_int, help="passes over the captions (default: text 15, quick 60, lora 10, full 5)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--name", help="model id for the result (default: BASE-tuned)")
    p.add_argument("--processes", type=_processes, default=1, metavar="N",
                   help="train in N data-parallel processes (torchrun), e.g. one per GPU")
    p.add_argument("--batch-size", type=_positive_int, help=argparse.SUPPRESS)
    p.add_argument("--dry-run", action="store_true", help="show the plan and the base's recall; train nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.set_defaults(func=cmd_tune)


def _processes(text: str) -> int:
    n = _positive_int(text)
    if n > 64:
        raise argparse.ArgumentTypeError(f"{n} processes is more than the 64 Glimpse starts (one per GPU)")
    return n


class _Bar:
    """A tqdm bar per stage, with the loss and the ETA (on stderr, only on a terminal)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None
        self.stage = None

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "note":  # an error comes back as the exception, printed once by the CLI
            self.close()
            print(f"glimpse: {event.get('message')}", file=sys.stderr, flush=True)
        elif kind == "start" and not self.quiet:
            self.close()
            print(f"Fine-tuning ({event.get('mode')}, {event.get('device')}) on {event.get('pairs')} captioned photos "
                  f"({event.get('distinct')} distinct captions), {event.get('held_out')} of them held out to measure it. "
                  f"About {_duration(event.get('estimate_s'))}.", file=sys.stderr, flush=True)
        elif kind == "progress":
            self._progress(event)

    def _progress(self, event: dict) -> None:
        from tqdm import tqdm

        from app.tasks.tune import STAGES

        stage = event.get("stage")
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=event.get("total") or None, desc=STAGES.get(stage, stage.capitalize()), disable=None,
                            file=sys.stderr, leave=False, unit="step")
        self.bar.total = event.get("total") or None
        self.bar.n = event.get("done") or 0
        if event.get("loss") is not None:
            self.bar.set_postfix_str(f"loss {event['loss']:.3f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            self.stage = None


def _duration(seconds) -> str:
    if not seconds:
        return "a moment"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _metrics(m: dict) -> str:
    return (f"R@1 {m['r1']:.2f}  R@5 {m['r5']:.2f}  R@10 {m['r10']:.2f}  mean rank {m['mean_rank']:.1f}"
            if m else "-")


def cmd_tune(args) -> int:
    from app import tasks
    from app.tasks import tune
    from model.jobs import Job

    ctx = Context()
    library = ctx.library
    bar = _Bar(args.json)
    options = tune.TuneOptions(mode=args.mode, epochs=args.epochs, device=args.device, name=args.name,
                               dry_run=args.dry_run, batch_size=args.batch_size, processes=args.processes)
    try:
        outcome = tasks.tune.tune(library, options, Job(), on_event=bar)
    finally:
        bar.close()
        library.close()
    r = outcome.result
    if args.dry_run:
        if args.json:
            print(json.dumps(r))
        else:
            print(f"Would fine-tune {r.get('base')} ({r.get('mode')}, {r.get('device')}) on {r.get('pairs')} captioned "
                  f"photos ({r.get('held_out')} held out), {r.get('epochs')} epochs: about {_duration(r.get('estimate_s'))}.")
            print(f"Base model, held-out captions: {_metrics(r.get('before') or {})}")
        return 0
    if args.json:
        keys = ("model", "mode", "before", "after", "agreement", "alpha", "pairs_per_s")
        print(json.dumps({**{k: r.get(k) for k in keys}, "activated": outcome.activated, "reason": outcome.reason,
                          "base": r.get("base"), "seconds": r.get("seconds")}))
        return 0
    print(f"Before ({r.get('base')}): {_metrics(r.get('before') or {})}")
    print(f"After  ({r.get('model')}): {_metrics(r.get('after') or {})}")
    print(f"Agreement with the base on generic searches: {r.get('agreement', 0):.2f} (1 = unchanged); "
          f"weight mix α = {r.get('alpha')}")
    if outcome.activated:
        print(f"'{r['model']}' is now the active model: {outcome.reason}.")
    else:
        print(f"Installed '{r['model']}' but kept {library.models.active_id} active: {outcome.reason}. "
              f"Use it anyway with `glimpse models use {r['model']}`.")
    return 0
