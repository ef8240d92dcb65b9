"""The command line's grammar: every subcommand and flag, refusing a bad one in one line."""

from __future__ import annotations

import argparse

from engine.core.models import MODEL_NAMES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (and exit code 2)."""

    def error(self, message: str) -> None:
        self.exit(EXIT_USAGE, f"error: {message}\n")


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def add_run_flags(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """The flags every run takes; with `grid`, batch size, concurrency and block size take comma lists."""
    p.add_argument("--model", default="resnet18", help=f"one of {', '.join(MODEL_NAMES)}")
    p.add_argument("--images", type=int, default=None, help="default: sized for the pipeline and the machine")
    p.add_argument("--image-size", type=int, default=224)
    if grid:
        p.add_argument("--batch-sizes", default="16,64,256", help="comma list, e.g. 16,64,256")
        p.add_argument("--concurrency", dest="concurrency_grid", default="1,2", help="comma list, e.g. 1,2")
        p.add_argument("--block-size-mb", dest="block_grid", default="16", help="comma list, e.g. 32,128")
    else:
        p.add_argument("--batch-size", type=int, default=None)
        p.add_argument("--concurrency", type=int, default=None)
        p.add_argument("--block-size-mb", type=int, default=None)
    p.add_argument("--num-gpus", type=number, default=None, help="GPUs per worker (0 = CPU)")
    p.add_argument("--precision", default=None, help="fp32, bf16 or fp16")
    p.add_argument("--device", choices=("auto", "cpu"), default="auto", help="cpu: the CPU layout on a GPU machine")
    p.add_argument("--data", default="synthetic", help="synthetic, jpeg, or a folder/URI of images")
    p.add_argument("--decode", default="auto", help="where files are decoded: cpu, gpu, or auto (GPU actors: gpu)")
    p.add_argument("--stages", default="single", help="single, cpu_preprocess or ensemble")
    p.add_argument("--preprocess-cpus", type=number, default=1.0, help="CPUs per pre-processing task")
    p.add_argument("--preprocess-concurrency", type=int, default=2, help="pre-processing tasks at once")
    p.add_argument("--second-model", default=None, help="the ensemble's second classifier")
    p.add_argument("--on-bad-file", default="skip", help="skip (counted and named) or fail")
    p.add_argument("--object-store-limit-mb", type=int, default=None)
    p.add_argument("--address", default=None, help="join an existing Ray cluster (HOST:PORT)")
    p.add_argument("--weights-file", default=None, help="a torchvision state-dict file")
    p.add_argument("--json", dest="json_path", default=None, help="write the full summary here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m engine", description="Run, compare and inspect batch-inference runs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    run = sub.add_parser("run", help="one run of the naive or actor pipeline")
    run.add_argument("--pipeline", default="actor", help="naive or actor")
    run.add_argument("--output", default=None, help="write predictions as Parquet into this folder")
    add_run_flags(run)
    compare = sub.add_parser("compare", help="naive, then actor, on the same data; prints the speedup")
    add_run_flags(compare)
    compare.add_argument("--naive-batch-size", type=int, default=None)
    compare.add_argument("--naive-concurrency", type=int, default=None)
    history = sub.add_parser("history", help="every recorded run, newest first")
    history.add_argument("--json", dest="json_path", default=None, help="write the list here")
    history.add_argument("--export", default=None, help="write every run in full (JSON) to this file")
    history.add_argument("--import", dest="import_path", default=None, help="add the runs of an export file")
    history.add_argument("--db", default=None, help="the SQLite file (default: PLAYGROUND_DB or the cache folder)")
    sweep = sub.add_parser("sweep", help="a grid of runs, one at a time, ending in a recommendation")
    sweep.add_argument("--pipeline", default="actor", help="naive or actor")
    add_run_flags(sweep, grid=True)
    advise = sub.add_parser("advise", help="concurrency, batch size and block size for a GPU node and a model")
    advise.add_argument("--gpus", type=int, required=True, help="GPUs on the node")
    advise.add_argument("--gpu-mem-gb", type=number, required=True, help="memory of one GPU")
    advise.add_argument("--node-mem-gb", type=number, required=True, help="the node's memory (RAM)")
    advise.add_argument("--model-size-gb", type=number, required=True, help="the model's weights")
    advise.add_argument("--sample-mb", type=number, default=3.0, help="GPU memory one sample needs")
    advise.add_argument("--batch-mem-gb", type=number, default=2.0, help="host memory per batch in an actor")
    advise.add_argument("--image-size", type=int, default=224)
    advise.add_argument("--calls-per-actor", type=int, default=1, help="batches an actor works on at once")
    advise.add_argument("--json", dest="json_path", default=None, help="write the advice here")
    from engine.cli.realtime import add_realtime_parser  # (here: it imports this module)

    add_realtime_parser(sub)
    return parser
