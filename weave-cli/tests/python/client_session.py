"""A session of the real Python weave client against `weave serve`.

Run by weave-cli/tests/python_client.rs with WF_TRACE_SERVER_URL, WANDB_BASE_URL and
WANDB_API_KEY pointing at the server. Logs nested ops, a Model, a Dataset and an Evaluation with
a scorer, then reads them back through the server and prints what it read as one JSON line
(the last line of stdout).
"""

import asyncio
import json
import sys

import weave
from weave import Dataset, Evaluation, Model

PROJECT = sys.argv[1]


@weave.op
def inner_add(a: int, b: int) -> int:
    return a + b


@weave.op
def outer_compute(x: int) -> int:
    return inner_add(x, 1) + inner_add(x, 2)


class QAModel(Model):
    prompt_prefix: str
    temperature: float = 0.0

    @weave.op
    def predict(self, question: str) -> str:
        return f"{self.prompt_prefix} {question.upper()}"


@weave.op
def exact_match(expected: str, output: str) -> dict:
    return {"correct": expected == output}


def main() -> None:
    client = weave.init(PROJECT)
    computed = outer_compute(3)

    model = QAModel(name="qa-model", prompt_prefix="Answer:")
    model_ref = weave.publish(model)
    dataset = Dataset(
        name="qa-rows",
        rows=[
            {"question": "hi", "expected": "Answer: HI"},
            {"question": "yo", "expected": "nope"},
            {"question": "abc", "expected": "Answer: ABC"},
        ],
    )
    dataset_ref = weave.publish(dataset)
    evaluation = Evaluation(name="qa-eval", dataset=dataset, scorers=[exact_match])
    eval_summary = asyncio.run(evaluation.evaluate(model))
    client.flush()

    calls = list(client.get_calls())
    roots = list(client.get_calls(filter={"trace_roots_only": True}))
    outer = [c for c in roots if c.op_name.split("/")[-1].startswith("outer_compute:")]
    children = list(outer[0].children()) if outer else []

    # Read the model back by ref (a fresh object from the server) and use it.
    loaded = weave.ref(model_ref.uri()).get()
    again = loaded.predict("again")
    rows = list(weave.ref(dataset_ref.uri()).get().rows)
    evals = client.get_evaluations()

    # Over 1000 rows: the client uploads rows in chunks and makes the table from their
    # digests (table/create_from_digests); add_rows makes a new version (table/update).
    big = Dataset(name="big-rows", rows=[{"i": i, "sq": i * i} for i in range(2500)])
    big_ref = weave.publish(big)
    big_loaded = weave.ref(big_ref.uri()).get()
    grown = big_loaded.add_rows([{"i": 2500, "sq": 2500 * 2500}])
    grown_loaded = weave.ref(f"weave:///{PROJECT}/object/big-rows:latest").get()
    grown_rows = list(grown_loaded.rows)
    client.flush()

    def op(c):
        return c.op_name.split("/")[-1].split(":")[0]

    print(
        json.dumps(
            {
                "computed": computed,
                "model_uri": model_ref.uri(),
                "eval_summary": eval_summary,
                "call_ops": sorted(op(c) for c in calls),
                "call_count": len(calls),
                "root_ops": sorted(op(c) for c in roots),
                "outer_children": [
                    {"op": op(c), "inputs": dict(c.inputs), "output": c.output}
                    for c in children
                ],
                "loaded_model": {
                    # A WeaveObject wrapping the stored record: its class is the record's.
                    "class": getattr(loaded, "_class_name", type(loaded).__name__),
                    "ref": loaded.ref.uri() if loaded.ref else None,
                    "name": loaded.name,
                    "prompt_prefix": loaded.prompt_prefix,
                },
                "loaded_predict": again,
                "dataset_rows": [dict(r) for r in rows],
                "big_rows": {
                    "count": len(list(big_loaded.rows)),
                    "row_1234": dict(big_loaded.rows[1234]),
                    "grown_count": len(grown_rows),
                    "grown_last": dict(grown_rows[-1]),
                    "grown_is_latest": grown.ref.digest == grown_loaded.ref.digest,
                },
                "evaluations": [
                    {"name": e.name, "scorers": len(e.scorers)} for e in evals
                ],
            },
            default=str,
        )
    )


if __name__ == "__main__":
    main()
