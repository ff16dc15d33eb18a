"""The `lsrec` command.

    lsrec serve --model PATH_OR_HUB_ID                          # the recommendation pipeline over HTTP
    lsrec export onnx --model PATH_OR_HUB_ID --output model.onnx # the scorer as an ONNX graph (onnxruntime)
    lsrec evaluate --model PATH_OR_HUB_ID --dataset DATA         # full-ranking HR/NDCG/MRR of a saved model
"""

import argparse
import os

from ..model.retrieval import RETRIEVAL_CHOICES


def _serve(args):
    try:
        import uvicorn
    except ImportError:
        raise SystemExit('lsrec serve needs the serve extra: pip install "lsrec_hf[serve]"') from None
    from transformers import pipeline

    import lsrec_hf  # noqa: F401 - registers the "recommendation" task

    from .serving import create_app

    pipe = pipeline("recommendation", model=args.model, device=args.device)
    app = create_app(pipe, args.state_dir, max_history=args.max_history, max_candidates=args.max_candidates,
                     max_top_k=args.max_top_k, max_body_bytes=args.max_body_bytes, max_wait=args.max_wait_ms / 1000,
                     max_batch=args.max_batch, retrieval=args.retrieval)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


def _export(args):
    from transformers import AutoModel

    import lsrec_hf  # noqa: F401 - registers the LSRec model type

    from .export import export_onnx

    model = AutoModel.from_pretrained(args.model)
    length = export_onnx(model, args.output, max_length=args.max_length, opset=args.opset)
    print(f"wrote {args.output}: input_ids [batch, {length}] (left-padded item tokens) -> scores "
          f"[batch, {model.config.num_items}], gate [batch]")


def _evaluate(args):
    from types import SimpleNamespace

    from accelerate import Accelerator
    from transformers import AutoModel

    import lsrec_hf  # noqa: F401 - registers the LSRec model type

    from ..data import load_data
    from ..evaluation.rank import evaluate_ranking, ranking_name
    from ..training.checkpointing import write_json
    from ..training.loop import format_metrics_table
    from ..training.recipe_utils import make_splits

    model = AutoModel.from_pretrained(args.model)
    model.eval()
    data = load_data(args.dataset)
    accelerator = Accelerator()
    split = SimpleNamespace(split=args.split, hold_out_validation=args.hold_out_validation)
    # the model's own catalog: its scores are over its items, and an item it does not know is named
    _, splits = make_splits(data, split, accelerator, catalog=model.catalog, config=model.config)
    reading = f"the last {args.max_length} events of each history" if args.max_length else "each whole history"
    results = {"model": args.model, "dataset": data.name, "protocol": splits.protocol,
               "ranking": ranking_name(args.exclude_history), "exclude_history": args.exclude_history,
               "max_length": args.max_length, "priors": args.priors, "num_items": model.config.num_items}
    for name, examples in (("valid", splits.valid), ("test", splits.test)):
        if len(examples):
            results[name] = evaluate_ranking(model, examples, accelerator, args.batch_size,
                                             max_length=args.max_length, description=name,
                                             exclude_history=args.exclude_history, trend_prior=args.priors,
                                             cooccurrence_prior=args.priors)
            results[f"num_{name}_users"] = len(examples)
    print(f"\n{data.name}, {splits.protocol} split, {ranking_name(args.exclude_history)}, the model reading {reading}"
          f"{'' if args.priors else ', without its priors'} ({model.config.num_items} items, "
          f"{len(splits.test)} test users)\n")
    for name in ("valid", "test"):
        if name in results:
            print(format_metrics_table(results[name], title=name) + "\n")
    if args.output:
        write_json(args.output, results)
        print(f"written to {args.output}")


def _bool(value):
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lsrec", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a model over HTTP (POST /recommend, /users/{id}/events, ...)")
    serve.add_argument("--model", required=True, help="a saved LSRec model folder, an adapter folder or a Hub id")
    serve.add_argument("--state-dir", default=os.path.join("outputs", "serve-state"),
                       help="where user states live (index.sqlite and states/); they survive restarts")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: the pipeline's choice)")
    serve.add_argument("--max-history", type=int, default=10_000,
                       help="most items in a history, or in the events of one POST (422 beyond)")
    serve.add_argument("--max-candidates", type=int, default=10_000)
    serve.add_argument("--max-top-k", type=int, default=1000)
    serve.add_argument("--max-body-bytes", type=int, default=4_000_000, help="largest request body (413 beyond)")
    serve.add_argument("--max-wait-ms", type=float, default=5.0,
                       help="how long a request waits for others to share its pipeline call")
    serve.add_argument("--max-batch", type=int, default=32, help="most requests scored in one pipeline call")
    serve.add_argument("--retrieval", choices=RETRIEVAL_CHOICES, default="exact",
                       help="exact: score every item; faiss: search the model's faiss index, built at startup "
                            "(approximate above 100,000 items; needs faiss-cpu)")
    serve.add_argument("--log-level", default="warning")
    export = commands.add_parser("export", help="export a model's scorer (lsrec export onnx ...)")
    formats = export.add_subparsers(dest="format", required=True)
    onnx = formats.add_parser("onnx", help="ONNX: input_ids [batch, max_length] -> scores [batch, num_items], gate")
    onnx.add_argument("--model", required=True, help="a saved LSRec model folder, an adapter folder or a Hub id")
    onnx.add_argument("--output", required=True, help="the .onnx file to write")
    onnx.add_argument("--max_length", type=int, default=200,
                      help="history length of the graph, in whole segments (longer histories keep their last events)")
    onnx.add_argument("--opset", type=int, default=18)
    evaluate = commands.add_parser("evaluate", help="full-ranking HR/NDCG/MRR@10/20 of a saved model on a data set's "
                                                    "split (the recipes' protocol unless told)")
    evaluate.add_argument("--model", required=True, help="a saved LSRec model folder, an adapter folder or a Hub id")
    evaluate.add_argument("--dataset", required=True,
                          help="'ml-100k', or a data folder / file the data layer reads (items must be in the model's "
                               "catalog)")
    evaluate.add_argument("--split", choices=["leave-one-out", "temporal"], default="leave-one-out")
    evaluate.add_argument("--hold_out_validation", type=_bool, default=True,
                          help="false: no validation event held out (HSTU's ML-1M protocol); the test is the same")
    evaluate.add_argument("--exclude_history", type=_bool, default=True,
                          help="remove the items the model reads from the ranking (false: RecBole 1.2.1's protocol)")
    evaluate.add_argument("--max_length", type=int, default=None,
                          help="read only each user's last N events (and, with --exclude_history, remove only "
                               "those); default: the whole history")
    evaluate.add_argument("--priors", type=_bool, default=True, help="add the model's saved priors, if any")
    evaluate.add_argument("--batch_size", type=int, default=256)
    evaluate.add_argument("--output", default=None, help="a JSON file for the figures")
    args = parser.parse_args(argv)
    if args.command == "evaluate" and args.max_length is not None and args.max_length < 1:
        parser.error(f"--max_length must be >= 1, got {args.max_length}")
    model = args.model
    if not os.path.exists(model) and (os.path.isabs(model) or model.startswith(".") or model.count("/") > 1):
        parser.error(f"--model {model}: no such folder (a Hub id is owner/name)")
    if args.command == "serve":
        _serve(args)
    elif args.command == "export":
        _export(args)
    elif args.command == "evaluate":
        from ..data import DataError

        try:
            _evaluate(args)
        except (DataError, ValueError) as error:  # bad data: the message names the file, row or item
            raise SystemExit(f"lsrec evaluate: {error}") from None


if __name__ == "__main__":
    main()
