//! Tests of the Ruff-based formatter and of the program assembly, on messy
//! LLM-style code and on the real HumanEval prompts.

use std::io::Read;
use std::path::PathBuf;

use codegen_pipeline::formatter::{
    assemble, check_syntax, CodeFormatter, FormatError, FormatStep, Stage, StepOutput,
};
use codegen_pipeline::generator::GeneratedCode;

// ---------------------------------------------------------------- helpers

#[derive(Debug, serde::Deserialize)]
struct Problem {
    task_id: String,
    prompt: String,
    canonical_solution: String,
    entry_point: String,
}

/// The shared directory: `$WEAVE_SHARED_DIR`, else `<workspace>/../shared`.
fn shared_dir() -> PathBuf {
    std::env::var_os("WEAVE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"))
}

fn humaneval() -> Vec<Problem> {
    let dir = shared_dir();
    let path = [
        dir.join("datasets/HumanEval.jsonl.gz"),
        dir.join("HumanEval.jsonl.gz"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("HumanEval.jsonl.gz not found under {}", dir.display()));
    let file = std::fs::File::open(&path).expect("open HumanEval");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .expect("gunzip HumanEval");
    let problems: Vec<Problem> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("HumanEval row"))
        .collect();
    assert_eq!(problems.len(), 164);
    problems
}

fn problem(task_id: &str) -> Problem {
    humaneval()
        .into_iter()
        .find(|p| p.task_id == task_id)
        .unwrap_or_else(|| panic!("{task_id} not in dataset"))
}

/// Whether a top-level `def name(` exists in `code`.
fn defines(code: &str, name: &str) -> bool {
    code.lines().any(|l| {
        l.starts_with(&format!("def {name}(")) || l.starts_with(&format!("async def {name}("))
    })
}

fn parses(code: &str) -> bool {
    check_syntax(code).is_ok()
}

fn parts(sig: &str, doc: &str, logic: &str) -> GeneratedCode {
    GeneratedCode {
        function_signature: sig.into(),
        function_args_with_docstring_within_triple_quotes: doc.into(),
        code_logic: logic.into(),
    }
}

// ---------------------------------------------------------------- steps

#[test]
fn remove_unused_drops_unused_imports_and_variables() {
    let src = "import os\nimport sys, json\nfrom typing import List, Dict\n\n\
               def f(xs: List[int]) -> int:\n    tmp = 42\n    unused = len(xs)\n    return sum(xs) + sys.maxsize\n";
    let out = CodeFormatter::default().remove_unused(src).unwrap();
    assert!(!out.contains("import os"), "{out}");
    assert!(!out.contains("json"), "{out}");
    assert!(!out.contains("Dict"), "{out}");
    assert!(out.contains("import sys"), "{out}");
    assert!(out.contains("from typing import List"), "{out}");
    assert!(!out.contains("tmp"), "{out}");
    // The unsafe F841 fix keeps the right-hand side call, drops the binding.
    assert!(!out.contains("unused ="), "{out}");
    assert!(out.contains("return sum(xs) + sys.maxsize"), "{out}");
    assert!(parses(&out));
}

#[test]
fn remove_unused_keeps_used_code_untouched() {
    let src = "import math\n\n\ndef f(x):\n    y = math.sqrt(x)\n    return y\n";
    assert_eq!(CodeFormatter::default().remove_unused(src).unwrap(), src);
}

#[test]
fn sort_imports_sorts_and_groups() {
    let src = "import sys\nimport os\nfrom collections import deque\nimport numpy as np\nfrom typing import List\nfrom typing import Dict\n\nprint(sys, os, deque, np, List, Dict)\n";
    let out = CodeFormatter::default().sort_imports(src).unwrap();
    let imports: Vec<&str> = out
        .lines()
        .take_while(|l| !l.starts_with("print"))
        .collect();
    assert_eq!(
        imports,
        [
            "import os",
            "import sys",
            "from collections import deque",
            "from typing import Dict, List",
            "",
            "import numpy as np",
            "",
        ],
        "{out}"
    );
}

#[test]
fn typing_imports_are_added_for_undefined_typing_names() {
    let src = "def f(x: List[int]) -> Optional[int]:\n    return x[0] if x else None\n";
    assert_eq!(
        CodeFormatter::default().undefined_names(src).unwrap(),
        ["List", "Optional"]
    );
    let out = CodeFormatter::default()
        .add_missing_typing_imports(src)
        .unwrap();
    assert!(
        out.starts_with("from typing import List, Optional\n"),
        "{out}"
    );
    assert!(
        CodeFormatter::default()
            .undefined_names(&out)
            .unwrap()
            .is_empty(),
        "{out}"
    );
}

#[test]
fn typing_imports_merge_with_existing_imports_and_skip_unknown_names() {
    let src = "\"\"\"Module doc.\"\"\"\nimport math\nfrom typing import Dict\n\n\n\
               def f(d: Dict[str, Tuple[int, int]]) -> float:\n    return math.pi + foo(d)\n";
    let out = CodeFormatter::default()
        .add_missing_typing_imports(src)
        .unwrap();
    assert!(out.starts_with("\"\"\"Module doc.\"\"\"\n"), "{out}");
    assert!(
        out.contains("import math\nfrom typing import Dict, Tuple\n"),
        "{out}"
    );
    // `foo` is not a typing name: still undefined, nothing invented for it.
    assert_eq!(
        CodeFormatter::default().undefined_names(&out).unwrap(),
        ["foo"]
    );
}

#[test]
fn typing_names_in_string_annotations_are_found() {
    let src = "def f(x: \"Dict[str, int]\") -> 'Any':\n    return x\n";
    assert_eq!(
        CodeFormatter::default().undefined_names(src).unwrap(),
        ["Dict", "Any"]
    );
    let out = CodeFormatter::default()
        .add_missing_typing_imports(src)
        .unwrap();
    assert!(out.starts_with("from typing import Any, Dict\n"), "{out}");
}

#[test]
fn collections_names_come_from_collections() {
    let src = "def f(xs):\n    return Counter(xs).most_common(1)\n";
    let out = CodeFormatter::default()
        .add_missing_typing_imports(src)
        .unwrap();
    assert!(
        out.starts_with("from collections import Counter\n"),
        "{out}"
    );
}

#[test]
fn format_pep8_formats() {
    let src = "def f( a,b ):\n  return {'a':a,'b' :b}\nx=f(1,2)\n";
    let out = CodeFormatter::default().format_pep8(src).unwrap();
    assert_eq!(
        out,
        "def f(a, b):\n    return {\"a\": a, \"b\": b}\n\n\nx = f(1, 2)\n"
    );
}

#[test]
fn steps_reject_invalid_syntax() {
    let src = "def f(:\n    return 1\n";
    for result in [
        CodeFormatter::default().remove_unused(src),
        CodeFormatter::default().sort_imports(src),
        CodeFormatter::default().add_missing_typing_imports(src),
        CodeFormatter::default().format_pep8(src),
    ] {
        match result {
            Err(FormatError::Syntax { line, .. }) => assert_eq!(line, 1),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- pipeline

const MESSY: &str = "import os\nimport sys\nfrom typing import Dict\nimport re\n\
def  find_max(numbers: List[int])->Optional[int] :\n    debug=True\n    if not numbers: return None\n    best=numbers[0]\n    for n in numbers :\n        if n>best: best=n\n    return best\n";

#[test]
fn format_all_cleans_messy_llm_code() {
    let outcome = CodeFormatter::default().format_all(MESSY);
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert!(outcome.changed);
    let code = &outcome.code;
    assert_eq!(
        code,
        "from typing import List, Optional\n\n\n\
         def find_max(numbers: List[int]) -> Optional[int]:\n    if not numbers:\n        return None\n    best = numbers[0]\n    for n in numbers:\n        if n > best:\n            best = n\n    return best\n"
    );
    assert!(
        outcome.notes.iter().any(|n| n.starts_with("remove_unused")),
        "{:?}",
        outcome.notes
    );
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n.contains("from typing import List, Optional")),
        "{:?}",
        outcome.notes
    );
}

#[test]
fn format_all_is_idempotent() {
    let samples = [
        MESSY,
        "import sys\nimport os\n\ndef g(x:Dict[str,int]):\n  return [k for k in x if k not in os.environ and sys.argv]\n",
        "def h():\n\tif True:\n\t\treturn 'tabs'\n",
        "class A:\n  def m(self,x):\n     y=x*2\n     return x\n",
    ];
    for sample in samples {
        let once = CodeFormatter::default().format_all(sample);
        assert!(once.error.is_none(), "{once:?}");
        let twice = CodeFormatter::default().format_all(&once.code);
        assert_eq!(twice.code, once.code, "not idempotent for {sample:?}");
        assert!(!twice.changed, "{twice:?}");
    }
}

#[test]
fn format_all_repairs_tab_indentation() {
    // Mixed tabs and spaces: Python rejects this (TabError).
    let src = "def f(x):\n\tif x:\n\t\treturn 1\n    return 2\n";
    assert!(!parses(src));
    let outcome = CodeFormatter::default().format_all(src);
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(
        outcome.code,
        "def f(x):\n    if x:\n        return 1\n    return 2\n"
    );
    assert!(
        outcome.notes[0].starts_with("repaired indentation"),
        "{:?}",
        outcome.notes
    );
}

#[test]
fn format_all_repairs_code_indented_as_a_whole() {
    let src = "    import math\n    def area(r):\n        return math.pi * r ** 2\n";
    let outcome = CodeFormatter::default().format_all(src);
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert_eq!(
        outcome.code,
        "import math\n\n\ndef area(r):\n    return math.pi * r**2\n"
    );
}

#[test]
fn format_all_returns_unparsable_code_unchanged_with_reason() {
    let src = "def broken(x)\n    return x +\n";
    let outcome = CodeFormatter::default().format_all(src);
    assert_eq!(outcome.code, src);
    assert!(!outcome.changed);
    let reason = outcome.error.expect("a reason");
    assert!(reason.contains("invalid syntax at line 1"), "{reason}");
}

#[test]
fn rule_list_controls_the_steps() {
    let formatter = CodeFormatter {
        rules: vec!["I001".into()],
        ..CodeFormatter::default()
    };
    let src = "import sys\nimport os\n";
    // F401 disabled: imports kept, but sorted.
    assert_eq!(formatter.remove_unused(src).unwrap(), src);
    assert_eq!(
        formatter.sort_imports(src).unwrap(),
        "import os\nimport sys\n"
    );
    // F821 disabled: no names looked up.
    assert!(formatter
        .undefined_names("x: List[int] = []\n")
        .unwrap()
        .is_empty());

    let bad = CodeFormatter {
        rules: vec!["F401".into(), "NOPE1".into()],
        ..CodeFormatter::default()
    };
    assert_eq!(
        bad.remove_unused(src),
        Err(FormatError::UnknownRule("NOPE1".into()))
    );
    assert!(bad
        .format_all(src)
        .notes
        .iter()
        .any(|n| n.contains("NOPE1")));
}

#[test]
fn line_length_is_configurable() {
    let src =
        "def f():\n    return some_function_name(argument_one, argument_two, argument_three)\n";
    let wide = CodeFormatter::default().format_pep8(src).unwrap();
    assert_eq!(wide, src);
    let narrow = CodeFormatter {
        line_length: 40,
        ..CodeFormatter::default()
    };
    let out = narrow.format_pep8(src).unwrap();
    assert!(out.lines().all(|l| l.len() <= 40), "{out}");
}

#[test]
fn steps_are_callable_one_by_one() {
    let formatter = CodeFormatter::default();
    let mut code = MESSY.to_string();
    for step in FormatStep::ALL {
        code = formatter.apply(step, &code).unwrap();
    }
    assert_eq!(code, CodeFormatter::default().format_all(MESSY).code);
    let json = serde_json::to_value(&formatter).unwrap();
    assert_eq!(json["line_length"], 88);
    assert_eq!(
        json["rules"],
        serde_json::json!(["F401", "F841", "I001", "F821"])
    );
}

#[test]
fn one_orchestration_runs_every_stage_in_order_and_keeps_the_last_good_code() {
    let formatter = CodeFormatter::default();
    // A runner that records the stages and makes one step fail.
    let mut seen = Vec::new();
    let outcome = formatter.orchestrate(MESSY, &mut |stage, code| {
        seen.push(stage);
        if stage == Stage::Step(FormatStep::SortImports) {
            return StepOutput {
                code: "garbage that must not be kept".into(),
                changed: true,
                note: None,
                error: Some("sorting broke".into()),
            };
        }
        formatter.run_stage(stage, code)
    });
    assert_eq!(
        seen,
        [
            Stage::Prepare,
            Stage::Step(FormatStep::RemoveUnused),
            Stage::Step(FormatStep::SortImports),
            Stage::Step(FormatStep::AddMissingTypingImports),
            Stage::Step(FormatStep::FormatPep8),
        ]
    );
    assert!(!outcome.code.contains("garbage"), "{}", outcome.code);
    assert!(
        outcome
            .notes
            .contains(&"sort_imports: skipped: sorting broke".to_string()),
        "{:?}",
        outcome.notes
    );
    // Without the failure it is exactly format_all.
    let all = formatter.format_all(MESSY);
    let direct = formatter.orchestrate(MESSY, &mut |stage, code| formatter.run_stage(stage, code));
    assert_eq!(all, direct);
}

#[test]
fn a_stage_that_fails_says_why_and_keeps_the_code() {
    let formatter = CodeFormatter::default();
    let bad = "def f(:\n    pass\n";
    let out = formatter.run_stage(Stage::Step(FormatStep::FormatPep8), bad);
    assert_eq!(out.code, bad);
    assert!(!out.changed);
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("invalid syntax"),
        "{out:?}"
    );
    let prep = formatter.run_stage(Stage::Prepare, bad);
    assert!(prep.error.is_some(), "{prep:?}");
    // Nothing runs after a prepare that fails.
    let mut stages = 0;
    let outcome = formatter.orchestrate(bad, &mut |stage, code| {
        stages += 1;
        formatter.run_stage(stage, code)
    });
    assert_eq!(stages, 1);
    assert_eq!(outcome.code, bad);
    assert!(outcome.error.is_some());
    let added = formatter.run_stage(
        Stage::Step(FormatStep::AddMissingTypingImports),
        "def f(x: List[int]) -> int:\n    return 1\n",
    );
    assert!(added.changed);
    assert_eq!(added.note.as_deref(), Some("added from typing import List"));
    // The step's output, as a traced op records it.
    let json = serde_json::to_value(&added).unwrap();
    assert_eq!(json["changed"], true);
    assert!(json.get("error").is_none());
}

// ---------------------------------------------------------------- assembly

#[test]
fn assembly_normalises_indentation() {
    let sig = "def add(a: int, b: int) -> int:";
    let doc = "\"\"\"Add two numbers.\n\n        Returns the sum.\n        \"\"\"";
    let expected = "def add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\n\n    Returns the sum.\n    \"\"\"\n    total = a + b\n    if total > 10:\n        return total\n    return total\n";
    let logics = [
        // Already indented by four.
        "    total = a + b\n    if total > 10:\n        return total\n    return total\n",
        // At column 0.
        "total = a + b\nif total > 10:\n    return total\nreturn total",
        // First line at column 0, the rest indented (the model typed after the prefix).
        "total = a + b\n    if total > 10:\n        return total\n    return total\n",
        // Tabs.
        "\ttotal = a + b\n\tif total > 10:\n\t\treturn total\n\treturn total\n",
        // Indented by eight, with a Markdown fence.
        "```python\n        total = a + b\n        if total > 10:\n            return total\n        return total\n```\n",
    ];
    for logic in logics {
        let code = assemble("", "add", &parts(sig, doc, logic)).code;
        assert_eq!(code, expected, "for {logic:?}");
    }
}

#[test]
fn assembly_first_line_block_opener() {
    // First line at column 0 ends with ':' and the rest is indented relative to a
    // base of four: only the shifted reading parses.
    let logic = "if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n";
    let code = assemble("", "fib", &parts("def fib(n)", "", logic)).code;
    assert_eq!(
        code,
        "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n"
    );
    // A lone block at column 0 whose body is indented stays as it is.
    let logic = "for x in xs:\n    print(x)\n";
    let code = assemble("", "show", &parts("show(xs)", "", logic)).code;
    assert_eq!(code, "def show(xs):\n    for x in xs:\n        print(x)\n");
}

#[test]
fn assembly_tolerates_repeated_def_and_sloppy_signature() {
    // The model repeats the whole function in code_logic.
    let logic = "def inc(x: int) -> int:\n    return x + 1\n";
    let a = assemble(
        "",
        "inc",
        &parts("inc(x: int) -> int", "\"\"\"Inc.\"\"\"", logic),
    );
    assert_eq!(a.code, "def inc(x: int) -> int:\n    return x + 1\n");
    assert!(
        a.notes.iter().any(|n| n.contains("repeats")),
        "{:?}",
        a.notes
    );

    // The model repeats only the def line and puts the body at column 0.
    let logic = "def inc(x):\nreturn x + 1\n";
    let code = assemble("", "inc", &parts("def inc(x)", "Increment x.", logic)).code;
    assert_eq!(
        code,
        "def inc(x):\n    \"\"\"Increment x.\"\"\"\n    return x + 1\n"
    );
}

#[test]
fn assembly_keeps_multiline_strings_verbatim() {
    let logic = "    text = \"\"\"first\n  second\n\"\"\"\n    return text\n";
    let code = assemble("", "f", &parts("def f():", "", logic)).code;
    assert_eq!(
        code,
        "def f():\n    text = \"\"\"first\n  second\n\"\"\"\n    return text\n"
    );
}

#[test]
fn assembly_uses_prompt_header_when_signature_is_wrong() {
    let prompt =
        "import math\n\n\ndef area(r: float) -> float:\n    \"\"\"Area of a circle.\"\"\"\n";
    let a = assemble(
        prompt,
        "area",
        &parts("def circle_area(r):", "", "return math.pi * r * r"),
    );
    assert_eq!(
        a.code,
        "import math\n\n\ndef area(r: float) -> float:\n    \"\"\"Area of a circle.\"\"\"\n    return math.pi * r * r\n"
    );
    assert_eq!(a.notes.len(), 2, "{:?}", a.notes);
}

#[test]
fn assembly_keeps_statements_the_prompt_puts_in_the_body() {
    // Shape of HumanEval/115: an import before the docstring.
    let prompt = "\ndef buckets(xs, size):\n    import math\n    \"\"\"Number of buckets.\"\"\"\n";
    let code = assemble(
        prompt,
        "buckets",
        &parts(
            "def buckets(xs, size):",
            "",
            "    return math.ceil(len(xs) / size)\n",
        ),
    )
    .code;
    assert_eq!(
        code,
        "def buckets(xs, size):\n    \"\"\"Number of buckets.\"\"\"\n    import math\n    return math.ceil(len(xs) / size)\n"
    ); // Also when the model repeats the def (without the import).
    let logic = "def buckets(xs, size):\n    return math.ceil(len(xs) / size)\n";
    let code = assemble(
        prompt,
        "buckets",
        &parts("def buckets(xs, size):", "", logic),
    )
    .code;
    assert!(
        code.contains("    import math\n    return math.ceil"),
        "{code}"
    );
    assert!(parses(&code));
}

#[test]
fn assembly_keeps_helper_of_make_palindrome() {
    let p = problem("HumanEval/10");
    assert_eq!(p.entry_point, "make_palindrome");
    let header = p
        .prompt
        .lines()
        .find(|l| l.starts_with("def make_palindrome("))
        .expect("header in prompt");
    let generated = parts(
        header,
        "\"\"\"Shortest palindrome starting with string.\"\"\"",
        &p.canonical_solution,
    );
    let code = assemble(&p.prompt, &p.entry_point, &generated).code;
    assert!(parses(&code), "{code}");
    assert!(defines(&code, "is_palindrome"), "{code}");
    assert!(code.contains("return string == string[::-1]"), "{code}");
    assert!(defines(&code, "make_palindrome"), "{code}");
    assert!(
        code.contains("while not is_palindrome(string[beginning_of_suffix:]):"),
        "{code}"
    );
    // Helper before the target, and the target defined once.
    assert!(code.find("def is_palindrome").unwrap() < code.find("def make_palindrome").unwrap());
    assert_eq!(code.matches("def make_palindrome(").count(), 1);

    let outcome = CodeFormatter::default().format_all(&code);
    assert!(outcome.error.is_none(), "{outcome:?}");
    assert!(defines(&outcome.code, "is_palindrome") && defines(&outcome.code, "make_palindrome"));
}

#[test]
fn assembly_keeps_helper_of_decode_cyclic() {
    let p = problem("HumanEval/38");
    assert_eq!(p.entry_point, "decode_cyclic");
    // Sloppy signature (no `def`, no colon) and an empty docstring: the prompt's
    // docstring is used.
    let generated = parts("decode_cyclic(s: str)", "", &p.canonical_solution);
    let code = assemble(&p.prompt, &p.entry_point, &generated).code;
    assert!(parses(&code), "{code}");
    assert!(defines(&code, "encode_cyclic"), "{code}");
    assert!(
        code.contains("groups = [s[(3 * i):min((3 * i + 3), len(s))]"),
        "{code}"
    );
    assert!(
        code.contains("def decode_cyclic(s: str):\n    \"\"\"\n    takes as input string encoded"),
        "{code}"
    );
    assert!(
        code.contains("    return encode_cyclic(encode_cyclic(s))\n"),
        "{code}"
    );
}

#[test]
fn assembly_of_every_canonical_solution_parses() {
    for p in humaneval() {
        let header = p
            .prompt
            .lines()
            .find(|l| l.starts_with(&format!("def {}(", p.entry_point)))
            .unwrap_or_default()
            .to_string();
        let generated = parts(&header, "", &p.canonical_solution);
        let code = assemble(&p.prompt, &p.entry_point, &generated).code;
        assert!(parses(&code), "{}: {code}", p.task_id);
        assert!(defines(&code, &p.entry_point), "{}: {code}", p.task_id);
    }
}

// ---------------------------------------------------------------- HumanEval

#[test]
fn format_all_preserves_every_humaneval_solution() {
    let formatter = CodeFormatter::default();
    for p in humaneval() {
        let src = format!("{}{}", p.prompt, p.canonical_solution);
        let outcome = formatter.format_all(&src);
        assert!(outcome.error.is_none(), "{}: {outcome:?}", p.task_id);
        assert!(
            !outcome.notes.iter().any(|n| n.contains("skipped")),
            "{}: {:?}",
            p.task_id,
            outcome.notes
        );
        assert!(parses(&outcome.code), "{}", p.task_id);
        assert!(
            defines(&outcome.code, &p.entry_point),
            "{}: {}",
            p.task_id,
            outcome.code
        );
        // Idempotent on real code too.
        assert_eq!(
            formatter.format_all(&outcome.code).code,
            outcome.code,
            "{}",
            p.task_id
        );
    }
}
