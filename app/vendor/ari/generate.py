"""Generate ``app/vendor/ari/operations.json`` from Asterisk's ARI Swagger 1.1 specs.

Usage::

    python app/vendor/ari/generate.py [SPEC_DIR] [OUTPUT]

``SPEC_DIR`` defaults to ``../shared/ari-api-docs`` relative to the repository root
and ``OUTPUT`` to ``app/vendor/ari/operations.json``. The output is a compact,
deterministic table (sorted, ``indent=1``) of every operation of every resource
file, so re-running the script on the same specs gives a byte-identical file.

Each entry looks like::

    {"resource": "channels", "nickname": "continueInDialplan", "method": "POST",
     "path": "/channels/{channelId}/continue",
     "params": {"channelId": "path", "context": "query", ...},
     "required": ["channelId"], "multiple": [], "since": ["12.0.0"],
     "errors": [404, 409, 412], "upgrade": null}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_SPEC_DIR = REPO_ROOT.parent / "shared" / "ari-api-docs"
DEFAULT_OUTPUT = Path(__file__).resolve().with_name("operations.json")


def build_operations(spec_dir: Path) -> list[dict[str, Any]]:
    """Read every ``*.json`` resource listing in ``spec_dir`` into one flat table.

    Args:
        spec_dir: Folder holding Asterisk's ``rest-api/api-docs/*.json`` files.

    Returns:
        Operations sorted by (path, method, resource, nickname).

    Raises:
        FileNotFoundError: When ``spec_dir`` holds no JSON file.
    """
    files = sorted(spec_dir.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no ARI spec files in {spec_dir}")
    operations: list[dict[str, Any]] = []
    for spec_file in files:
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        resource = spec_file.stem
        for api in spec.get("apis", []):
            for op in api.get("operations", []):
                params: dict[str, str] = {}
                required: list[str] = []
                multiple: list[str] = []
                for param in op.get("parameters", []):
                    name = param["name"]
                    params[name] = param["paramType"]
                    # Path parameters are always required even where the spec omits it.
                    if param.get("required") or param["paramType"] == "path":
                        required.append(name)
                    if param.get("allowMultiple"):
                        multiple.append(name)
                operations.append(
                    {
                        "resource": resource,
                        "nickname": op["nickname"],
                        "method": op["httpMethod"].upper(),
                        "path": api["path"],
                        "params": dict(sorted(params.items())),
                        "required": sorted(required),
                        "multiple": sorted(multiple),
                        "since": list(op.get("since", [])),
                        "errors": sorted(int(e["code"]) for e in op.get("errorResponses", [])),
                        "upgrade": op.get("upgrade"),
                    }
                )
    operations.sort(key=lambda o: (o["path"], o["method"], o["resource"], o["nickname"]))
    return operations


def render(operations: list[dict[str, Any]]) -> str:
    """Serialise the table deterministically.

    Args:
        operations: Output of :func:`build_operations`.

    Returns:
        JSON text with ``indent=1``, sorted keys and a trailing newline.
    """
    return json.dumps(operations, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Command-line entry point.

    Args:
        argv: ``[SPEC_DIR, OUTPUT]``, both optional.

    Returns:
        Process exit status.
    """
    spec_dir = Path(argv[0]) if argv else DEFAULT_SPEC_DIR
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    try:
        operations = build_operations(spec_dir)
    except FileNotFoundError:
        sys.stderr.write(
            f"ari-ops: no ARI spec files (*.json) in {spec_dir}; put Asterisk's "
            "rest-api/api-docs there or pass the folder: python -m app.vendor.ari.generate SPEC_DIR\n"
        )
        return 2
    output.write_text(render(operations), encoding="utf-8")
    sys.stderr.write(f"wrote {len(operations)} operations to {output}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
