"""The shape of the code, read from its syntax trees, held where issue 37 left it: a method is one file
behind one interface, so no code outside the strategy files switches on what a strategy is; modules and
functions stay short; transfer nodes are a call and a return; each method knob is declared once."""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "headstart"
ML = SOURCE / "ml"
STRATEGY_FILES = ML / "strategies"


def trees(root: Path = SOURCE):
    for path in sorted(root.rglob("*.py")):
        yield path, ast.parse(path.read_text())


def compared_names(node: ast.Compare) -> set[str]:
    """Attribute and variable names on either side of a comparison (`config.procedure == ...` → procedure)."""
    names = set()
    for side in [node.left, *node.comparators]:
        for part in ast.walk(side):
            if isinstance(part, ast.Attribute):
                names.add(part.attr)
            elif isinstance(part, ast.Name):
                names.add(part.id)
    return names


def test_no_code_outside_the_strategy_files_switches_on_a_procedure_or_an_objective_kind():
    found = [
        f"{path.relative_to(SOURCE)}:{node.lineno}"
        for path, tree in trees()
        if STRATEGY_FILES not in path.parents
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare) and compared_names(node) & {"procedure", "adaptation", "kind_of_adaptation"}
    ]
    assert found == [], found


def test_at_most_two_comparisons_with_the_pixels_model():
    found = [
        f"{path.relative_to(SOURCE)}:{node.lineno}"
        for path, tree in trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare)
        and any(isinstance(part, ast.Constant) and part.value == "pixels" for part in ast.walk(node))
    ]
    assert len(found) <= 2, found


def test_no_ml_module_over_400_lines_and_params_at_most_600():
    long = {str(p.relative_to(SOURCE)): n for p in ML.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
    assert len((SOURCE / "params.py").read_text().splitlines()) <= 600


def test_no_function_over_80_lines():
    long = [
        f"{path.relative_to(SOURCE)}:{node.name} {node.end_lineno - node.lineno + 1}"
        for path, tree in trees()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80
    ]
    assert long == [], long


def test_every_transfer_node_is_at_most_25_lines():
    tree = ast.parse((SOURCE / "pipelines" / "transfer" / "nodes.py").read_text())
    long = [f"{n.name} {n.end_lineno - n.lineno + 1}" for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert [entry for entry in long if int(entry.split()[-1]) > 25] == []


def test_every_strategy_module_is_imported_by_name_and_registers_one_strategy():
    from headstart.ml import strategies

    init = ast.parse((STRATEGY_FILES / "__init__.py").read_text())
    imported = {alias.name for node in ast.walk(init) if isinstance(node, ast.ImportFrom) for alias in node.names}
    shared = {"__init__", "base", "tuning", "objective", "classical", "race"}  # what the strategies share
    for path in STRATEGY_FILES.glob("*.py"):
        if path.stem in shared:
            continue
        assert path.stem in imported, f"{path.name} is not imported in ml/strategies/__init__.py"
        registered = [
            node.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "register" for d in node.decorator_list)
        ]
        assert registered, f"{path.name} registers no strategy"
    assert {"fixmatch", "bss", "delta", "tradaboost", "l2_sp"} <= set(strategies.STRATEGIES)


def declared_fields(tree: ast.Module, class_name: str) -> dict[str, str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {
                item.target.id: ast.unparse(item.value)
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value is not None
            }
    raise AssertionError(f"{class_name} not found")


def first_value(declared: str) -> str:
    """The default of a declaration: `Field(0.5, ge=0)` → `0.5`."""
    return declared[len("Field(") :].split(",")[0].rstrip(")") if declared.startswith("Field(") else declared


def method_knobs() -> dict[str, dict[str, list[str]]]:
    """Every method's knobs (a strategy's Knobs classes, the advice's race, a multi-task weighting's
    constructor), by method: each knob's declarations (their defaults)."""
    import inspect

    from headstart.ml.multitask.weightings import WEIGHTINGS
    from headstart.ml.strategies import STRATEGIES, Knobs
    from headstart.params import StrategyRaceParams

    def declarations(cls) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for owner in cls.__mro__:
            if isinstance(owner, type) and issubclass(owner, Knobs | StrategyRaceParams):
                module = ast.parse(Path(inspect.getfile(owner)).read_text())
                for name, value in declared_fields(module, owner.__name__).items():
                    found.setdefault(name, []).append(first_value(value))
        return found

    knobs = {f"strategy {name}": declarations(type(strategy).Knobs) for name, strategy in STRATEGIES.items()}
    knobs["the advice's race"] = declarations(StrategyRaceParams)
    for name in WEIGHTINGS:
        parameters = inspect.signature(WEIGHTINGS[name].__init__).parameters.values()
        own = [p for p in parameters if p.default is not inspect.Parameter.empty]
        knobs[f"weighting {name}"] = {p.name: [repr(p.default)] for p in own}
    return knobs


def test_each_method_knob_is_declared_once():
    twice = {
        f"{method}: {name}": values
        for method, declared in method_knobs().items()
        for name, values in declared.items()
        if len(values) > 1
    }
    assert twice == {}, twice


def test_no_function_of_the_methods_gives_one_of_their_knobs_another_default():
    """In the methods' own code (the strategies, the race, the multi-task weightings and training)."""
    knobs: dict[str, set[str]] = {}
    for declared in method_knobs().values():
        for name, values in declared.items():
            knobs.setdefault(name, set()).update(values)
    found = []
    for path, tree in [*trees(STRATEGY_FILES), *trees(ML / "multitask")]:
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            arguments = node.args.args + node.args.kwonlyargs
            defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + node.args.defaults
            defaults += node.args.kw_defaults
            for argument, default in zip(arguments, defaults):
                literal = isinstance(default, ast.Constant) and isinstance(default.value, float | int)
                if argument.arg in knobs and literal and repr(default.value) not in knobs[argument.arg]:
                    found.append(f"{path.relative_to(SOURCE)}:{node.name}({argument.arg}={ast.unparse(default)})")
    assert found == [], found


def test_the_library_imports_neither_kedro_nor_mlflow():
    imported = set()
    for _, tree in trees(ML):
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert not imported & {"kedro", "mlflow"}
