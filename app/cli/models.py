"""`glimpse models list|info|pull|import|remove|use|export|quantize`."""
from __future__ import annotations

import sys

from app.library.units import human_size

from .context import Context


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list, get, import and choose models")
    msub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = msub.add_parser("list", help="installed models (and --available ones to pull)")
    ls.add_argument("--available", action="store_true", help="also list models that can be pulled")
    ls.set_defaults(func=cmd_list)
    info = msub.add_parser("info", help="details of a model, with a checksum check")
    info.add_argument("name", nargs="?", help="model id (default: the active model)")
    info.set_defaults(func=cmd_info)
    pull = msub.add_parser("pull", help="download a pretrained model and export it to ONNX")
    pull.add_argument("name", nargs="?", help="a known name (see --available) or an open_clip ARCH/TAG")
    pull.set_defaults(func=cmd_pull)
    imp = msub.add_parser("import", help="import an open_clip folder, or a weights file with --arch")
    imp.add_argument("path")
    imp.add_argument("--arch", help="open_clip architecture of a weights file, e.g. ViT-B-32")
    imp.add_argument("--name", help="model id to store it under (default: from the path)")
    imp.set_defaults(func=cmd_import)
    rm = msub.add_parser("remove", help="delete a model from the store")
    rm.add_argument("name")
    rm.set_defaults(func=cmd_remove)
    use = msub.add_parser("use", help="make a model the active one")
    use.add_argument("name")
    use.set_defaults(func=cmd_use)
    exp = msub.add_parser("export", help="write a model as an open_clip folder (config + safetensors)")
    exp.add_argument("name")
    exp.add_argument("folder", help="where to write it (created; must be empty if it exists)")
    exp.set_defaults(func=cmd_export)
    q = msub.add_parser("quantize", help="add an int8 image tower to a model (faster indexing on a CPU; "
                                         "turn it on with --use, off with --off, or in Settings)")
    q.add_argument("name", nargs="?", help="model id (default: the active model)")
    on_off = q.add_mutually_exclusive_group()
    on_off.add_argument("--use", action="store_true", help="index with the int8 tower from now on")
    on_off.add_argument("--off", action="store_true",
                        help="index with the fp32 tower again (quantises nothing; the int8 file stays)")
    q.set_defaults(func=cmd_quantize)


def cmd_list(args) -> int:
    from model import registry
    from model.errors import CorruptModel

    ctx = Context()
    entries = ctx.models.store.list()
    active = ctx.models.active_id
    if not entries:
        print("No models installed. Get one with `glimpse models pull` "
              f"(default: {registry.default().name}) or `glimpse models import PATH`.")
    for e in entries:
        if isinstance(e, CorruptModel):
            print(f"  {e.model_id:<28} DAMAGED: {e}")
            continue
        mark = "*" if e.id == active else " "
        m = e.manifest
        lineage = m.get("lineage") or {}
        tuned = (f"  tuned from {lineage.get('base')} ({lineage.get('mode')})"
                 if lineage.get("kind") == "finetune" else "")
        print(f"{mark} {e.id:<28} {m.get('architecture', '?'):<26} dim {e.embed_dim:<5} {human_size(e.size_bytes)}"
              + tuned)
    if args.available:
        installed = {e.id for e in entries if not isinstance(e, CorruptModel)}
        print("\nAvailable to pull (`glimpse models pull NAME`):")
        for b in registry.KNOWN:
            flag = "installed" if b.name in installed else ("default" if b.default else "")
            print(f"  {b.name:<24} {b.architecture}/{b.pretrained}  [{b.licence}] {flag}\n      {b.summary}")
    return 0


def cmd_info(args) -> int:
    ctx = Context()
    model = ctx.models.store.get(args.name) if args.name else ctx.models.active()
    m = model.manifest
    pp, tok = m["preprocess"], m["tokenizer"]
    print(f"{model.id}{'  (active)' if model.id == ctx.models.active_id else ''}")
    print(f"  architecture  {m.get('architecture')}  pretrained: {m.get('pretrained') or '-'}")
    print(f"  lineage       {m.get('lineage')}")
    print(f"  licence       {m.get('licence') or 'see the source of the weights'}")
    print(f"  embedding     {m['embed_dim']} dims")
    print(f"  preprocess    {pp['size'][0]}x{pp['size'][1]} {pp['interpolation']} {pp['resize_mode']}, "
          f"mean {[round(v, 4) for v in pp['mean']]}, std {[round(v, 4) for v in pp['std']]}")
    print(f"  tokenizer     {tok['kind']}, context {tok['context_length']}")
    par = m.get("parity", {})
    for tower, r in par.items():
        print(f"  parity        {tower}: cosine {r['cosine_min']:.6f}, max abs diff {r['max_abs_diff']:.1e}")
    if m.get("int8"):
        problem = model.verify_int8()
        if problem is None:
            print(f"  int8 tower    {m['int8']['file']}: cosine to fp32 ≥ {m['int8']['cosine_min']:.4f} "
                  f"on {m['int8']['check_images']} check images")
        else:
            print(f"  int8 tower    unusable: {problem}; indexing uses the fp32 tower "
                  f"(make it again with `glimpse models quantize {model.id}`)")
    print(f"  folder        {model.path} ({human_size(model.size_bytes)})")
    model.verify()
    print("  checksums     ok")
    return 0


def _job():
    """A Job whose progress prints each stage once (the download has tqdm's own bar)."""
    from model.jobs import Job

    seen = set()

    def progress(p) -> None:
        # The steps of model.obtain.STEPS, once each; not "reading weights", where a bad folder or name
        # fails: its error is then the one line the user reads.
        if p.stage not in ("download", "reading weights", "installed") and p.stage not in seen:
            seen.add(p.stage)
            print(f"{p.stage[:1].upper()}{p.stage[1:]}…", file=sys.stderr, flush=True)

    return Job(progress)


def cmd_pull(args) -> int:
    from app import tasks
    from model import registry

    ctx = Context()
    name = args.name or registry.default().name
    base = registry.find(name)
    if base:
        print(f"Pulling {base.architecture}/{base.pretrained} (licence: {base.licence})", file=sys.stderr)
    return _installed(tasks.pull(ctx.library, name, _job(), quiet=False))


def cmd_import(args) -> int:
    from app import tasks

    ctx = Context()
    return _installed(tasks.import_model(ctx.library, args.path, _job(), architecture=args.arch, name=args.name))


def _installed(obtained) -> int:
    model, active = obtained.model, obtained.active
    par = model.manifest["parity"]
    worst = min(r["cosine_min"] for r in par.values())
    print(f"Installed '{model.id}' ({model.embed_dim} dims, ONNX parity cosine ≥ {worst:.6f})"
          + (", now the active model." if active else f". Use it with `glimpse models use {model.id}`."))
    if active:
        from .library import _warn_if_incomplete

        _warn_if_incomplete(Context().library)
    return 0


def cmd_remove(args) -> int:
    from app import tasks

    ctx = Context()
    was_active = ctx.models.active_id == args.name
    took_over, complete = tasks.remove_model(ctx.library, args.name)
    print(f"Removed '{args.name}'." + ("" if not was_active else
                                       " No model is active now: get one with `glimpse models pull`." if not took_over
                                       else f" Search now uses '{took_over}'." if complete else
                                       f" Search now uses '{took_over}': `glimpse index` makes its vectors."))
    return 0


def cmd_use(args) -> int:
    from app import tasks
    from model.jobs import Job

    from .library import Bar

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    ctx = Context()
    library = ctx.library
    bar = Bar()
    try:
        active = tasks.activate(library, args.name, Job(bar),
                                on_prepare=lambda message: say(f"{message} Ctrl+C stops; `glimpse index` goes on."),
                                on_wait=lambda message: say(f"glimpse: {message} (Ctrl+C stops)"))
    finally:
        bar.close()
        library.close()
    print(f"Active model: {args.name}" if active else
          f"'{args.name}' is not active yet: run `glimpse index` to finish its vectors.")
    return 0


def cmd_export(args) -> int:
    from app import tasks

    ctx = Context()
    folder = tasks.export_model(ctx.library, args.name, args.folder)
    print(f"Wrote {folder}: load it with open_clip.create_model_from_pretrained('local-dir:{folder}').")
    return 0


def cmd_quantize(args) -> int:
    from model.quantize import quantize

    ctx = Context()
    if args.off:
        ctx.settings["int8_image_tower"] = False
        print("Indexing uses the fp32 image tower (setting int8_image_tower is off; int8 files are kept).")
        return 0
    model_id = args.name or ctx.models.active().id
    model = quantize(ctx.models.store, model_id, say=lambda text: print(text, file=sys.stderr, flush=True))
    info = model.manifest["int8"]
    print(f"Added an int8 image tower to '{model_id}' ({human_size(model.int8_path.stat().st_size)}, "
          f"cosine to fp32 ≥ {info['cosine_min']:.4f} on {info['check_images']} check images).")
    if args.use:
        ctx.settings["int8_image_tower"] = True
    if not ctx.settings["int8_image_tower"]:
        print("Index with it: `glimpse models quantize --use`, or Settings → Models → Index with the int8 tower.")
    elif model_id == ctx.models.active_id:
        print("Indexing uses it on the CPU (setting int8_image_tower is on; "
              "`glimpse models quantize --off` turns it off).")
    else:
        print(f"Indexing uses it on the CPU once '{model_id}' is the active model (`glimpse models use {model_id}`); "
              f"the active model is {ctx.models.active_id or 'none'}.")
    return 0
